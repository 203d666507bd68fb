"""Image manifests, indexes and configs (OCI image spec and Docker schema 2).

Parsing is strict about what matters for analysis (media types, digests,
layer order) and ignores the rest. Every document is untrusted: anything
malformed raises ImageFormatError with the reason.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from scans.engine.errors import ImageFormatError
from scans.engine.models import Platform

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"

INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
# What a registry client asks for, best first.
ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))

# Layer media types mapped to their compression; None means a plain tar.
LAYER_COMPRESSION: dict[str, str | None] = {
    "application/vnd.oci.image.layer.v1.tar": None,
    "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar": None,
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": "zstd",
    "application/vnd.docker.image.rootfs.diff.tar": None,
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.diff.tar.zstd": "zstd",
}

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Manifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


@dataclass(frozen=True)
class ImageConfig:
    platform: Platform
    diff_ids: tuple[str, ...]
    created: str = ""


def check_digest(value: object, what: str) -> str:
    if not isinstance(value, str) or not _DIGEST.match(value):
        raise ImageFormatError(f"{what}: {value!r} is not a sha256 digest")
    return value


def _load(raw: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ImageFormatError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ImageFormatError(f"{what} is not a JSON object")
    return doc


def _descriptor(item: object, what: str) -> Descriptor:
    if not isinstance(item, dict):
        raise ImageFormatError(f"{what}: descriptor is not an object")
    media_type = item.get("mediaType", "")
    size = item.get("size", 0)
    if not isinstance(media_type, str) or not isinstance(size, int) or size < 0:
        raise ImageFormatError(f"{what}: descriptor has a bad mediaType or size")
    platform = None
    plat = item.get("platform")
    if isinstance(plat, dict):
        platform = Platform(str(plat.get("os", "")), str(plat.get("architecture", "")), str(plat.get("variant", "")))
    annotations = item.get("annotations") or {}
    pairs = tuple(sorted((str(k), str(v)) for k, v in annotations.items())) if isinstance(annotations, dict) else ()
    return Descriptor(media_type, check_digest(item.get("digest"), what), size, platform, pairs)


def media_type_of(raw: bytes, declared: str = "") -> str:
    """The media type of a manifest or index: the declared one, else its own field, else by shape."""
    doc = _load(raw, "manifest")
    own = doc.get("mediaType")
    if isinstance(own, str) and own:
        return own
    if declared:
        return declared
    return OCI_INDEX if "manifests" in doc else OCI_MANIFEST


def parse_index(raw: bytes) -> tuple[Descriptor, ...]:
    doc = _load(raw, "image index")
    items = doc.get("manifests")
    if not isinstance(items, list):
        raise ImageFormatError("image index has no manifests list")
    return tuple(_descriptor(item, "image index") for item in items)


def parse_manifest(raw: bytes, media_type: str = "") -> Manifest:
    doc = _load(raw, "image manifest")
    media_type = media_type or str(doc.get("mediaType") or OCI_MANIFEST)
    if doc.get("schemaVersion") != 2:
        raise ImageFormatError(f"unsupported manifest schemaVersion {doc.get('schemaVersion')!r} (only 2 is supported)")
    if media_type not in MANIFEST_TYPES:
        raise ImageFormatError(f"unsupported manifest media type {media_type!r}")
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise ImageFormatError("image manifest has no layers list")
    parsed = tuple(_descriptor(item, "manifest layer") for item in layers)
    for layer in parsed:
        if layer.media_type not in LAYER_COMPRESSION:
            raise ImageFormatError(f"layer {layer.digest} has unknown media type {layer.media_type!r}")
    return Manifest(media_type, _descriptor(doc.get("config"), "manifest config"), parsed)


def parse_config(raw: bytes) -> ImageConfig:
    doc = _load(raw, "image config")
    rootfs = doc.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list):
        raise ImageFormatError("image config has no rootfs.diff_ids")
    platform = Platform(str(doc.get("os", "")), str(doc.get("architecture", "")), str(doc.get("variant", "") or ""))
    created = doc.get("created")
    return ImageConfig(
        platform,
        tuple(check_digest(d, "config diff_id") for d in diff_ids),
        created if isinstance(created, str) else "",
    )


def select_platform(manifests: tuple[Descriptor, ...], wanted: Platform) -> Descriptor:
    """The index entry for `wanted`; a missing variant matches any variant.

    Attestation manifests (BuildKit's `unknown/unknown`) never match.
    """
    candidates = [
        m
        for m in manifests
        if m.platform is not None
        and m.platform.os == wanted.os
        and m.platform.architecture == wanted.architecture
        and (not wanted.variant or m.platform.variant == wanted.variant)
    ]
    if not candidates:
        # A single-entry index without platform (common in OCI layouts) is taken as is.
        untagged = [m for m in manifests if m.platform is None and m.media_type in MANIFEST_TYPES | {""}]
        if len(manifests) == 1 and untagged:
            return untagged[0]
        offered = ", ".join(str(m.platform) for m in manifests if m.platform) or "none"
        raise ImageFormatError(f"no manifest for platform {wanted} in the index (offered: {offered})")
    return candidates[0]
