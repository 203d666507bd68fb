"""NDB `Packages.db`, rpm's own package store (SUSE's default backend).

Layout (rpm's lib/backend/ndb/rpmpkg.c; all numbers little-endian): the file
is counted in 16-byte blocks. The first `slotnpages` 4096-byte pages hold a
32-byte file header, then 16-byte slots (magic, package index, first block,
block count); a slot whose first block is 0 is free. Each used slot points to
a blob: a 16-byte head (magic, package index, generation, length), the header
blob, zero padding and a 12-byte tail (adler32, length, magic) in its last
block.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from typing import BinaryIO

from scans.engine.errors import ParseError
from scans.engine.rpmdb.header import MAX_BLOB

_FILE_MAGIC = int.from_bytes(b"RpmP", "little")
_SLOT_MAGIC = int.from_bytes(b"Slot", "little")
_BLOB_HEAD_MAGIC = int.from_bytes(b"BlbS", "little")
_BLOB_TAIL_MAGIC = int.from_bytes(b"BlbE", "little")
_VERSION = 0

_PAGE = 4096
_BLOCK = 16
_FILE_HEADER = struct.Struct("<IIIII")  # magic, version, generation, slotnpages, next package index
_FILE_HEADER_SIZE = 32  # the first two slots' room
_SLOT = struct.Struct("<IIII")  # magic, package index, first block, block count
_BLOB_HEAD = struct.Struct("<IIII")  # magic, package index, generation, length
_BLOB_TAIL = struct.Struct("<III")  # adler32, length, magic


def iter_ndb_blobs(file: BinaryIO) -> Iterator[bytes]:
    """The header blobs of an NDB `Packages.db` file, in slot order."""
    size = file.seek(0, os.SEEK_END)
    file.seek(0)
    raw = file.read(_FILE_HEADER_SIZE)
    if len(raw) < _FILE_HEADER_SIZE:
        raise ParseError("NDB file is shorter than its header")
    magic, version, _generation, slotnpages, _next = _FILE_HEADER.unpack_from(raw)
    if magic != _FILE_MAGIC:
        raise ParseError("not an NDB package database (bad magic)")
    if version != _VERSION:
        raise ParseError(f"unsupported NDB version {version}")
    if size % _BLOCK or not 0 < slotnpages * _PAGE <= size:
        raise ParseError(f"NDB file of {size} bytes does not fit its {slotnpages} slot pages")
    # Sound blobs never overlap, so together they are no larger than the file;
    # more means slots share blocks, and reading on could take quadratic time.
    budget = size
    for pkgidx, blkoff, blkcnt in _slots(file, slotnpages, size // _BLOCK):
        budget -= blkcnt * _BLOCK
        if budget < 0:
            raise ParseError("NDB slots point to overlapping blobs")
        yield _read_blob(file, pkgidx, blkoff, blkcnt)


def _slots(file: BinaryIO, slotnpages: int, fileblks: int) -> Iterator[tuple[int, int, int]]:
    """The used slots, read one slot page at a time."""
    first_data_block = slotnpages * _PAGE // _BLOCK
    for page_number in range(slotnpages):
        file.seek(page_number * _PAGE)
        page = file.read(_PAGE)
        start = _FILE_HEADER_SIZE if page_number == 0 else 0
        for magic, pkgidx, blkoff, blkcnt in _SLOT.iter_unpack(page[start:]):
            if magic != _SLOT_MAGIC:
                raise ParseError(f"NDB slot page {page_number} holds a bad slot")
            if blkoff == 0:
                continue  # a free slot
            if pkgidx == 0 or blkcnt == 0 or blkoff < first_data_block or blkoff + blkcnt > fileblks:
                raise ParseError(f"NDB slot of package {pkgidx} points outside the file")
            yield pkgidx, blkoff, blkcnt


def _read_blob(file: BinaryIO, pkgidx: int, blkoff: int, blkcnt: int) -> bytes:
    """One package's header blob, with its head and tail checked as rpm does."""
    file.seek(blkoff * _BLOCK)
    raw = file.read(blkcnt * _BLOCK)
    if len(raw) != blkcnt * _BLOCK or len(raw) < _BLOB_HEAD.size + _BLOB_TAIL.size:
        raise ParseError(f"NDB blob of package {pkgidx} is truncated")
    magic, owner, _generation, length = _BLOB_HEAD.unpack_from(raw)
    if magic != _BLOB_HEAD_MAGIC or owner != pkgidx:
        raise ParseError(f"NDB blob of package {pkgidx} has a bad head")
    if length > MAX_BLOB or blkcnt != -(-(_BLOB_HEAD.size + length + _BLOB_TAIL.size) // _BLOCK):
        raise ParseError(f"NDB blob of package {pkgidx} does not fill its {blkcnt} blocks")
    # rpm does not check the adler32 when it reads a package either; the
    # header parser checks what is read from the blob.
    _adler, tail_length, tail_magic = _BLOB_TAIL.unpack_from(raw, len(raw) - _BLOB_TAIL.size)
    if tail_length != length or tail_magic != _BLOB_TAIL_MAGIC:
        raise ParseError(f"NDB blob of package {pkgidx} has a bad tail")
    return raw[_BLOB_HEAD.size : _BLOB_HEAD.size + length]
