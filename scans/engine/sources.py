"""Where images come from: archives, OCI layouts and root file systems.

A source turns a target into image metadata plus one BlobSpec per layer.
Archives are read in place (tar members are read at their offsets); nothing
is unpacked. Registry references are pulled into an OCI layout in the work
dir first (scans.engine.registry.pull) and then read like any layout.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

from scans.engine import manifests as mf
from scans.engine.errors import DigestMismatchError, ImageFormatError
from scans.engine.layers import BlobSpec
from scans.engine.models import ImageMeta, Layer, Platform

_MAX_DOCUMENT = 4 << 20  # manifests, indexes and configs are small; refuse more
_MAX_INDEX_DEPTH = 4


@dataclass
class ImageSource:
    meta: ImageMeta
    blobs: list[BlobSpec] = field(default_factory=list)
    rootfs: Path | None = None  # set for a directory target instead of blobs
    warnings: list[str] = field(default_factory=list)
    _resources: ExitStack = field(default_factory=ExitStack)

    def on_close(self, callback: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        self._resources.callback(callback, *args, **kwargs)

    def close(self) -> None:
        self._resources.close()

    def __enter__(self) -> ImageSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _read_bounded(fileobj: BinaryIO, what: str) -> bytes:
    data = fileobj.read(_MAX_DOCUMENT + 1)
    if len(data) > _MAX_DOCUMENT:
        raise ImageFormatError(f"{what} is larger than {_MAX_DOCUMENT} bytes")
    return data


# --------------------------------------------------------------------------
# Blob stores: an OCI layout is the same whether it is a directory or a tar.


class _BlobStore:
    def open(self, name: str) -> BinaryIO:
        raise NotImplementedError

    def exists(self, name: str) -> bool:
        raise NotImplementedError

    def read(self, name: str, what: str) -> bytes:
        if not self.exists(name):
            raise ImageFormatError(f"{what} ({name}) is missing from the archive")
        with self.open(name) as f:
            return _read_bounded(f, what)

    def blob_name(self, digest: str) -> str:
        algorithm, _, hexpart = digest.partition(":")
        return f"blobs/{algorithm}/{hexpart}"

    def document(self, digest: str, what: str) -> bytes:
        raw = self.read(self.blob_name(digest), what)
        if _sha256(raw) != digest:
            raise DigestMismatchError(f"{what} {digest} has digest {_sha256(raw)}")
        return raw


class _DirStore(_BlobStore):
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, name: str) -> Path:
        # Names come from digests checked by mf.check_digest or from fixed
        # names, so they cannot leave the layout directory.
        return self.root / name

    def open(self, name: str) -> BinaryIO:
        return open(self._path(name), "rb")  # noqa: SIM115 - the caller closes it

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()


class _TarStore(_BlobStore):
    """Members of an uncompressed tar, read at their offsets in the file.

    Each open() gets its own file handle, so layers can be read by several
    threads at once (the analyzer reads the next layer ahead).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with tarfile.open(path, mode="r:") as tar:
                members = tar.getmembers()
        except (tarfile.TarError, EOFError) as exc:
            raise ImageFormatError(f"{path} is not a readable tar archive ({exc})") from None
        self.members = {m.name.removeprefix("./"): m for m in members if m.isreg() and not m.issparse()}

    def open(self, name: str) -> BinaryIO:
        member = self.members.get(name)
        if member is None:
            raise ImageFormatError(f"{name} is missing from the archive")
        f = open(self.path, "rb")  # noqa: SIM115 - returned; the caller closes it
        f.seek(member.offset_data)
        return cast(BinaryIO, _Slice(f, member.size))

    def exists(self, name: str) -> bool:
        return name in self.members


class _Slice(io.RawIOBase):
    """`size` bytes of `f` from its current position."""

    def __init__(self, f: BinaryIO, size: int) -> None:
        self.f = f
        self.left = size

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = self.f.read(n)
        self.left -= len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.f.close()
        super().close()


# --------------------------------------------------------------------------
# Docker archives (`docker save` before Docker 25)


def _docker_archive(store: _TarStore, source: ImageSource) -> None:
    entries = _json(store.read("manifest.json", "manifest.json"), "manifest.json")
    if not isinstance(entries, list) or not entries or not isinstance(entries[0], dict):
        raise ImageFormatError("manifest.json of the docker archive lists no image")
    if len(entries) > 1:
        source.warnings.append(f"docker archive holds {len(entries)} images; analysing the first")
    entry = entries[0]
    config_name = str(entry.get("Config", ""))
    raw_config = store.read(config_name, "image config")
    config_digest = _sha256(raw_config)
    named = "sha256:" + Path(config_name).name.removesuffix(".json")
    if len(named) == 71 and named != config_digest:
        raise DigestMismatchError(f"image config {config_name} has digest {config_digest}")
    config = mf.parse_config(raw_config)
    layer_names = entry.get("Layers")
    if not isinstance(layer_names, list) or len(layer_names) != len(config.diff_ids):
        raise ImageFormatError("docker archive: Layers does not match the config's rootfs.diff_ids")
    for index, (name, diff_id) in enumerate(zip(layer_names, config.diff_ids, strict=True)):
        name = str(name)
        if not store.exists(name):
            raise ImageFormatError(f"docker archive: layer {name} is missing")
        # The archive records only diff_ids; the tar of each layer is checked against it.
        layer = Layer(index, diff_id, diff_id, "", store.members[name].size)
        source.blobs.append(BlobSpec(layer, _opener(store, name), "auto", verify_blob=False, verify_diff_id=True))
    tags = entry.get("RepoTags") or []
    source.meta = ImageMeta(
        reference=source.meta.reference,
        config_digest=config_digest,
        media_type="docker-archive",
        platform=config.platform,
        repo_tags=tuple(str(t) for t in tags) if isinstance(tags, list) else (),
        layers=tuple(b.layer for b in source.blobs),
        created=config.created,
    )


def _opener(store: _BlobStore, name: str) -> Callable[[], BinaryIO]:
    return lambda: store.open(name)


def _json(raw: bytes, what: str) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ImageFormatError(f"{what} is not valid JSON: {exc}") from None


# --------------------------------------------------------------------------
# OCI image layouts (directory or tar)


def _oci_layout(store: _BlobStore, source: ImageSource, platform: Platform, *, verify_blobs: bool = True) -> None:
    top = mf.parse_index(store.read("index.json", "index.json"))
    if not top:
        raise ImageFormatError("index.json lists no manifest")
    descriptor = mf.select_platform(top, platform) if len(top) > 1 else top[0]
    tags = tuple(v for k, v in descriptor.annotations if k == "org.opencontainers.image.ref.name")
    index_digest = ""
    for _ in range(_MAX_INDEX_DEPTH):
        raw = store.document(descriptor.digest, "manifest")
        media_type = mf.media_type_of(raw, descriptor.media_type)
        if media_type not in mf.INDEX_TYPES:
            break
        index_digest = index_digest or descriptor.digest
        descriptor = mf.select_platform(mf.parse_index(raw), platform)
    else:
        raise ImageFormatError("image indexes nest too deeply")
    manifest = mf.parse_manifest(raw, media_type)
    config = mf.parse_config(store.document(manifest.config.digest, "image config"))
    if len(config.diff_ids) != len(manifest.layers):
        raise ImageFormatError("manifest layers do not match the config's rootfs.diff_ids")
    for index, (blob, diff_id) in enumerate(zip(manifest.layers, config.diff_ids, strict=True)):
        name = store.blob_name(blob.digest)
        if not store.exists(name):
            raise ImageFormatError(f"layer blob {blob.digest} is missing")
        layer = Layer(index, blob.digest, diff_id, blob.media_type, blob.size)
        compression = mf.LAYER_COMPRESSION[blob.media_type]
        source.blobs.append(
            # The uncompressed tar is checked against the config too: a config that lies about
            # its layers must not pass.
            BlobSpec(layer, _opener(store, name), compression, verify_blob=verify_blobs, verify_diff_id=True)
        )
    source.meta = ImageMeta(
        reference=source.meta.reference,
        manifest_digest=descriptor.digest,
        config_digest=manifest.config.digest,
        index_digest=index_digest,
        media_type=manifest.media_type,
        platform=config.platform,
        repo_tags=tags,
        layers=tuple(b.layer for b in source.blobs),
        created=config.created,
    )


# --------------------------------------------------------------------------
# Entry point


def open_local(target: str, platform: Platform, *, verify_blobs: bool = True) -> ImageSource:
    """An archive, OCI layout or root file system on local disk."""
    path = Path(target)
    source = ImageSource(ImageMeta(reference=target))
    try:
        if path.is_dir():
            if (path / "oci-layout").is_file():
                _oci_layout(_DirStore(path), source, platform, verify_blobs=verify_blobs)
            else:
                source.rootfs = path
                source.meta = ImageMeta(reference=target, media_type="rootfs")
        elif path.is_file():
            store = _TarStore(path)
            if store.exists("oci-layout") and store.exists("index.json"):
                _oci_layout(store, source, platform, verify_blobs=verify_blobs)
            elif store.exists("manifest.json"):
                _docker_archive(store, source)
            else:
                raise ImageFormatError(f"{target} is neither a docker archive nor an OCI archive")
        else:
            raise ImageFormatError(f"{target}: no such file or directory")
    except BaseException:
        source.close()
        raise
    return source
