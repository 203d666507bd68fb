"""Push an OCI layout to a registry byte for byte, with the distribution HTTP API.

skopeo checks and may rewrite what it copies (it recompresses, refuses
unknown layer types and bad digests); hostile test images must reach the
registry exactly as built, so blobs and manifests are uploaded raw here.
`replace_layer` edits a layout first, e.g. to truncate a layer and name it
by the digest of its truncated bytes.
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from pathlib import Path
from typing import Any

import requests

from tests.support.registry import OCI_INDEX

TIMEOUT = (5.0, 30.0)
INDEX_TYPES = (OCI_INDEX, "application/vnd.docker.distribution.manifest.list.v2+json")


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _blob_path(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / digest.removeprefix("sha256:")


def _top(layout: Path) -> dict[str, Any]:
    descriptor: dict[str, Any] = json.loads((layout / "index.json").read_text())["manifests"][0]
    return descriptor


class Pusher:
    """Uploads to `base_url` (http://host:port), with Basic credentials when given."""

    def __init__(self, base_url: str, *, auth: tuple[str, str] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.auth = auth

    def blob(self, repository: str, data: bytes) -> str:
        """Monolithic upload: POST for a session, PUT the bytes with ?digest=; returns the digest."""
        digest = _sha256(data)
        start = self.session.post(f"{self.base_url}/v2/{repository}/blobs/uploads/", timeout=TIMEOUT)
        start.raise_for_status()
        location = urllib.parse.urljoin(self.base_url + "/", start.headers["Location"])
        separator = "&" if "?" in location else "?"
        done = self.session.put(
            f"{location}{separator}digest={digest}",
            data=data,
            headers={"Content-Type": "application/octet-stream"},
            timeout=TIMEOUT,
        )
        if done.status_code != 201:
            raise RuntimeError(f"blob upload {digest} to {repository}: HTTP {done.status_code} {done.text}")
        return digest

    def manifest(self, repository: str, reference: str, raw: bytes, media_type: str) -> str:
        response = self.session.put(
            f"{self.base_url}/v2/{repository}/manifests/{reference}",
            data=raw,
            headers={"Content-Type": media_type},
            timeout=TIMEOUT,
        )
        if response.status_code != 201:
            raise RuntimeError(f"manifest PUT {repository}:{reference}: HTTP {response.status_code} {response.text}")
        return _sha256(raw)

    def document(self, layout: Path, repository: str, descriptor: dict[str, Any], reference: str = "") -> str:
        """Push the manifest or index `descriptor` names, and everything it references first."""
        raw = _blob_path(layout, descriptor["digest"]).read_bytes()
        doc = json.loads(raw)
        media_type = descriptor.get("mediaType") or doc.get("mediaType")
        if media_type in INDEX_TYPES:
            for child in doc["manifests"]:
                self.document(layout, repository, child)
        else:
            for blob in [doc["config"], *doc["layers"]]:
                self.blob(repository, _blob_path(layout, blob["digest"]).read_bytes())
        return self.manifest(repository, reference or descriptor["digest"], raw, media_type)


def push_layout(
    base_url: str, repository: str, layout: Path, *, tag: str = "", auth: tuple[str, str] | None = None
) -> str:
    """Push the layout's first image (manifest or index) as `tag` (or by digest); returns its digest."""
    return Pusher(base_url, auth=auth).document(layout, repository, _top(layout), tag)


def replace_layer(layout: Path, index: int, data: bytes, *, media_type: str | None = None) -> str:
    """Swap layer `index` of the layout's manifest for `data`, named by its own digest; returns that digest.

    The config (and its diff_ids) is left alone, so the layer's uncompressed
    content no longer has to match: that is for the scanner to find out.
    """
    top = _top(layout)
    manifest = json.loads(_blob_path(layout, top["digest"]).read_bytes())
    digest = _sha256(data)
    _blob_path(layout, digest).write_bytes(data)
    layer = manifest["layers"][index]
    layer.update(digest=digest, size=len(data))
    if media_type is not None:
        layer["mediaType"] = media_type
    raw = json.dumps(manifest).encode()
    _blob_path(layout, _sha256(raw)).write_bytes(raw)
    top.update(digest=_sha256(raw), size=len(raw))
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [top]}))
    return digest


def layer_bytes(layout: Path, index: int = 0) -> bytes:
    """The stored (compressed) bytes of layer `index`."""
    manifest = json.loads(_blob_path(layout, _top(layout)["digest"]).read_bytes())
    return _blob_path(layout, manifest["layers"][index]["digest"]).read_bytes()
