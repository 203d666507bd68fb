"""Small images of our own making, built in tests: layers as tar entries.

`F`, `D`, `L` (symlink), `H` (hard link) and `dev` describe entries; the
builders write real OCI layouts and docker archives, the formats the
engine reads from ../shared/corpus.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

import zstandard


@dataclass(frozen=True)
class Entry:
    name: str
    kind: str = "file"  # file, dir, symlink, hardlink, chardev, fifo
    data: bytes = b""
    link: str = ""
    mode: int = 0o644


def F(name: str, data: bytes | str = b"", mode: int = 0o644) -> Entry:  # noqa: N802 - reads like a table
    return Entry(name, "file", data.encode() if isinstance(data, str) else data, mode=mode)


def D(name: str) -> Entry:  # noqa: N802
    return Entry(name, "dir", mode=0o755)


def L(name: str, target: str) -> Entry:  # noqa: N802
    return Entry(name, "symlink", link=target)


def H(name: str, target: str) -> Entry:  # noqa: N802
    return Entry(name, "hardlink", link=target)


def dev(name: str) -> Entry:
    return Entry(name, "chardev")


_TYPES = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "chardev": tarfile.CHRTYPE,
    "fifo": tarfile.FIFOTYPE,
}


def layer_tar(entries: list[Entry], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.type = _TYPES[e.kind]
            info.mode = e.mode
            info.linkname = e.link
            if e.kind == "file":
                info.size = len(e.data)
                tar.addfile(info, io.BytesIO(e.data))
            else:
                tar.addfile(info)
    return out.getvalue()


def compress(data: bytes, how: str) -> bytes:
    if how == "gzip":
        return gzip.compress(data, mtime=0)
    if how == "zstd":
        return zstandard.ZstdCompressor().compress(data)
    return data


_LAYER_TYPES = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    "none": "application/vnd.oci.image.layer.v1.tar",
}


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _put(root: Path, data: bytes) -> str:
    digest = sha256(data)
    path = root / "blobs" / "sha256" / digest[7:]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return digest


def _config(tars: list[bytes], arch: str = "amd64") -> bytes:
    return json.dumps(
        {
            "architecture": arch,
            "os": "linux",
            "created": "2026-11-27T00:00:00Z",
            "rootfs": {"type": "layers", "diff_ids": [sha256(t) for t in tars]},
        }
    ).encode()


def oci_layout(
    root: Path,
    layers: list[list[Entry]] | list[bytes],
    *,
    compression: str = "gzip",
    layer_media_type: str | None = None,
    arch: str = "amd64",
    tag: str = "latest",
) -> Path:
    """Write an OCI image layout; layers are entry lists or raw (uncompressed) tars."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    tars = [raw if isinstance(raw, bytes) else layer_tar(raw) for raw in layers]
    descriptors = []
    for tar in tars:
        blob = compress(tar, compression)
        media_type = layer_media_type or _LAYER_TYPES[compression]
        descriptors.append({"mediaType": media_type, "digest": _put(root, blob), "size": len(blob)})
    config = _config(tars, arch)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _put(root, config),
                "size": len(config),
            },
            "layers": descriptors,
        }
    ).encode()
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": _put(root, manifest),
                "size": len(manifest),
                "platform": {"os": "linux", "architecture": arch},
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (root / "index.json").write_text(json.dumps(index))
    return root


def docker_archive(path: Path, layers: list[list[Entry]] | list[bytes], *, compression: str = "none") -> Path:
    """Write a `docker save` archive (layer files named <n>/layer.tar)."""
    tars = [raw if isinstance(raw, bytes) else layer_tar(raw) for raw in layers]
    config = _config(tars)
    config_name = sha256(config)[7:] + ".json"
    names = [f"{i}/layer.tar" for i in range(len(tars))]
    manifest = [{"Config": config_name, "RepoTags": ["test/image:latest"], "Layers": names}]
    with tarfile.open(path, "w") as out:
        for name, data in [(config_name, config), ("manifest.json", json.dumps(manifest).encode())] + [
            (n, compress(t, compression)) for n, t in zip(names, tars, strict=True)
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    return path
