"""Feeds as published: a zip or tar.gz of records, a directory tree, or one file.

Documents are yielded one at a time and read lazily, so a feed is never
held in memory whole. A document's `open()` is valid until the next one is
yielded (tar members are read in archive order).
"""

from __future__ import annotations

import functools
import os
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import zstandard

from advisories.importers.base import Document

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
MAX_DOCUMENT_BYTES = 512 << 20  # a single feed file (NVD pages, CSAF VEX, the Debian tracker JSON)


class FeedFormatError(ValueError):
    """The feed file or archive cannot be read at all."""


def read_bounded(document: Document, limit: int = MAX_DOCUMENT_BYTES) -> bytes:
    """The whole document, refusing more than `limit` bytes (zip bombs, runaway files)."""
    with document.open() as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise FeedFormatError(f"{document.name} is larger than {limit} bytes")
    return data


def _zip_documents(path: Path) -> Iterator[Document]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise FeedFormatError(f"{path} is not a readable zip archive ({exc})") from None
    with archive:
        for info in archive.infolist():
            if not info.is_dir():
                yield Document(info.filename, functools.partial(archive.open, info))


def _tar_documents(path: Path) -> Iterator[Document]:
    with path.open("rb") as raw:
        # tarfile reads gzip, bzip2 and xz itself; zstd (Red Hat's VEX bundle) goes through zstandard.
        stream: IO[bytes] = raw
        if raw.read(4) == _ZSTD_MAGIC:
            raw.seek(0)
            stream = zstandard.ZstdDecompressor().stream_reader(raw)
        else:
            raw.seek(0)
        try:
            with tarfile.open(fileobj=stream, mode="r|*") as archive:
                for member in archive:
                    if member.isreg():
                        yield Document(member.name, functools.partial(_extract, archive, member))
        except (tarfile.TarError, EOFError, OSError, zstandard.ZstdError) as exc:
            raise FeedFormatError(f"{path}: not a readable tar archive ({exc})") from None


def _extract(archive: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    f = archive.extractfile(member)
    if f is None:
        raise FeedFormatError(f"{member.name} cannot be read")
    return f


def _file_opener(path: Path) -> Callable[[], IO[bytes]]:
    def open_file() -> IO[bytes]:
        return path.open("rb")

    return open_file


def _directory_documents(root: Path) -> Iterator[Document]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            full = Path(dirpath) / name
            if full.is_file() and not full.is_symlink():
                yield Document(str(full.relative_to(root)), _file_opener(full))


def iter_documents(path: Path) -> Iterator[Document]:
    """Every document of a feed at `path`: zip, tar(.gz), directory, or a single file."""
    if path.is_dir():
        yield from _directory_documents(path)
    elif not path.is_file():
        raise FeedFormatError(f"{path}: no such file or directory")
    elif zipfile.is_zipfile(path):
        yield from _zip_documents(path)
    elif path.name.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar.zst")):
        yield from _tar_documents(path)
    else:
        yield Document(path.name, _file_opener(path))
