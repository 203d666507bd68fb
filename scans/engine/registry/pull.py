"""Pull one image for one platform from a registry into an OCI image layout."""

from __future__ import annotations

import json
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from scans.engine.errors import ImageFormatError
from scans.engine.manifests import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_INDEX,
    Descriptor,
    parse_config,
    parse_index,
    parse_manifest,
    select_platform,
)
from scans.engine.models import Platform
from scans.engine.registry.client import RegistryClient

REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"
LAYER_DOWNLOADS = 3
# Configs are read whole; real ones are a few KiB, big ones (long histories) under 1 MiB.
MAX_CONFIG_SIZE = 8 << 20


@dataclass(frozen=True)
class PulledImage:
    layout_dir: Path
    top_digest: str  # what `reference` names: the index when there is one, else the manifest
    top_media_type: str
    manifest_digest: str
    index_digest: str  # '' when `reference` names a manifest


def _blob_path(layout: Path, digest: str) -> Path:
    # Digests reaching here passed check_digest (sha256:<64 hex>), so the name is safe.
    return layout / "blobs" / "sha256" / digest.removeprefix("sha256:")


def _write_document(layout: Path, digest: str, raw: bytes) -> None:
    _blob_path(layout, digest).write_bytes(raw)


def _resolve_manifest(
    client: RegistryClient, repository: str, layout: Path, platform: Platform, top: tuple[bytes, str, str]
) -> tuple[bytes, str, str]:
    """The image manifest for `platform`: `top` itself, or the index entry it selects."""
    raw, media_type, digest = top
    if media_type in MANIFEST_TYPES:
        return top
    if media_type not in INDEX_TYPES:
        raise ImageFormatError(f"{repository}@{digest} has unsupported media type {media_type!r}")
    chosen = select_platform(parse_index(raw), platform)
    if chosen.media_type and chosen.media_type not in MANIFEST_TYPES:
        raise ImageFormatError(
            f"the index entry for {platform} in {repository}@{digest} is a {chosen.media_type!r}, not an image manifest"
        )
    manifest = client.get_manifest(repository, chosen.digest)
    if manifest[1] not in MANIFEST_TYPES:
        raise ImageFormatError(f"{repository}@{chosen.digest} has unsupported media type {manifest[1]!r}")
    _write_document(layout, manifest[2], manifest[0])
    return manifest


def _fetch_blobs(
    client: RegistryClient, repository: str, layout: Path, blobs: list[Descriptor], max_blob_size: int
) -> None:
    unique = list({blob.digest: blob for blob in blobs}.values())
    with ThreadPoolExecutor(max_workers=LAYER_DOWNLOADS, thread_name_prefix="vigil-pull") as pool:
        futures = [
            pool.submit(
                client.fetch_blob,
                repository,
                blob.digest,
                _blob_path(layout, blob.digest),
                max_size=max_blob_size,
                size=blob.size,
            )
            for blob in unique
        ]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for future in pending:
            future.cancel()  # stop queued downloads; running ones finish or fail on their own
        for future in done:
            future.result()  # re-raises the first failure


def _write_layout(layout: Path, top_digest: str, top_media_type: str, top_size: int, tag: str) -> None:
    descriptor: dict[str, object] = {"mediaType": top_media_type, "digest": top_digest, "size": top_size}
    if tag:
        descriptor["annotations"] = {REF_NAME_ANNOTATION: tag}
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor]}
    (layout / "index.json").write_text(json.dumps(index, indent=2) + "\n")
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}) + "\n")


def pull_image(
    client: RegistryClient,
    repository: str,
    reference: str,
    workdir: Path,
    platform: Platform,
    *,
    max_blob_size: int,
) -> PulledImage:
    """Fetch `repository`:`reference` (tag or digest) for `platform` into an OCI layout in `workdir`.

    The layout holds the document `reference` names (an index is kept as it
    is), the platform's manifest, its config and its layers, each verified
    against its digest. Unknown layer types fail before any layer is fetched.
    """
    (workdir / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    top = client.get_manifest(repository, reference)
    top_raw, top_media_type, top_digest = top
    _write_document(workdir, top_digest, top_raw)
    manifest_raw, manifest_media_type, manifest_digest = _resolve_manifest(client, repository, workdir, platform, top)
    manifest = parse_manifest(manifest_raw, manifest_media_type)
    # The config first: a bad one fails the pull before the bulk of the layers is fetched.
    config_path = _blob_path(workdir, manifest.config.digest)
    config_limit = min(max_blob_size, MAX_CONFIG_SIZE)
    client.fetch_blob(repository, manifest.config.digest, config_path, max_size=config_limit, size=manifest.config.size)
    parse_config(config_path.read_bytes())
    _fetch_blobs(client, repository, workdir, list(manifest.layers), max_blob_size)
    tag = "" if reference.startswith("sha256:") else reference
    _write_layout(workdir, top_digest, top_media_type, len(top_raw), tag)
    return PulledImage(
        layout_dir=workdir,
        top_digest=top_digest,
        top_media_type=top_media_type,
        manifest_digest=manifest_digest,
        index_digest=top_digest if top_digest != manifest_digest else "",
    )
