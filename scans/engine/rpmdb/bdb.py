"""Berkeley DB hash `Packages`, the rpm database before rpm 4.16.

Read the way rpm's own read-only backend (lib/backend/bdb_ro.c) reads it:
walk the hash buckets in order, follow each bucket's chain of pages, and
collect values stored on the page or in a chain of overflow pages. The file is
read one page at a time, so memory holds a page and the header being built,
whatever the file's size. Either byte order is read: the meta page's magic
says which one the file was written in.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO

from scans.engine.errors import ParseError
from scans.engine.rpmdb.header import MAX_BLOB

_HASH_MAGIC = 0x00061561
_HASH_VERSIONS = range(8, 11)  # the hash versions rpm's reader accepts

# Page layout: lsn(8) pgno(4) prev(4) next(4) entries(2) hf_offset(2) level(1) type(1).
_PAGE_HEADER = 26
_P_HASH_UNSORTED = 2
_P_OVERFLOW = 7
_P_HASH = 13
_HASH_PAGES = (_P_HASH_UNSORTED, _P_HASH)

# Item types on hash pages.
_H_KEYDATA = 1  # the bytes follow the type byte
_H_OFFPAGE = 3  # type(1) pad(3) first overflow page(4) total length(4)
_OFFPAGE_SIZE = 12

_META_SIZE = 512
_SPARES = 32


class _Meta:
    """The hash meta page (page 0), in the file's byte order."""

    def __init__(self, raw: bytes) -> None:
        if len(raw) < _META_SIZE:
            raise ParseError("Berkeley DB file is shorter than its meta page")
        for order in ("<", ">"):
            if struct.unpack_from(order + "I", raw, 12)[0] == _HASH_MAGIC:
                self.order = order
                break
        else:
            raise ParseError("not a Berkeley DB hash database (bad magic)")
        version, self.pagesize = struct.unpack_from(self.order + "II", raw, 16)
        self.lastpage: int = struct.unpack_from(self.order + "I", raw, 32)[0]
        self.maxbucket: int = struct.unpack_from(self.order + "I", raw, 72)[0]
        self.spares: tuple[int, ...] = struct.unpack_from(f"{self.order}{_SPARES}I", raw, 96)
        if version not in _HASH_VERSIONS:
            raise ParseError(f"unsupported Berkeley DB hash version {version}")
        if self.pagesize not in {1 << n for n in range(9, 17)}:
            raise ParseError(f"Berkeley DB page size {self.pagesize} is not a power of two from 512 to 64K")

    def bucket_page(self, bucket: int) -> int:
        # Buckets are allocated in doubling groups; spares[i] is the page offset of group i.
        group = bucket.bit_length()
        if group >= _SPARES:
            raise ParseError(f"Berkeley DB bucket {bucket} is beyond the last bucket group")
        return bucket + self.spares[group]


class _Pages:
    """Page reads from the file, each checked, with a budget against link loops."""

    def __init__(self, file: BinaryIO, meta: _Meta) -> None:
        self._file = file
        self._meta = meta
        self._entries = struct.Struct(meta.order + "HH")
        self._links = struct.Struct(meta.order + "II")
        # In a sound file every page has one role (bucket page or overflow
        # page), so a walk reads each at most once; twice the page count is
        # generous and still stops a cycle of page links in linear time.
        self._budget = 2 * meta.lastpage

    def read(self, pgno: int, types: tuple[int, ...]) -> bytes:
        pagesize = self._meta.pagesize
        if not 1 <= pgno <= self._meta.lastpage:
            raise ParseError(f"Berkeley DB page {pgno} is outside the file's {self._meta.lastpage} pages")
        if self._budget <= 0:
            raise ParseError("Berkeley DB page links form a loop")
        self._budget -= 1
        self._file.seek(pgno * pagesize)
        page = self._file.read(pagesize)
        if len(page) != pagesize:
            raise ParseError(f"Berkeley DB file is truncated at page {pgno}")
        if struct.unpack_from(self._meta.order + "I", page, 8)[0] != pgno or page[25] not in types:
            raise ParseError(f"Berkeley DB page {pgno} is not the page its link says")
        return page

    def next_page(self, page: bytes) -> int:
        return int(struct.unpack_from(self._meta.order + "I", page, 16)[0])

    def item_offsets(self, page: bytes) -> tuple[int, ...]:
        """Where each item of a hash page starts."""
        count, _ = self._entries.unpack_from(page, 20)
        if _PAGE_HEADER + 2 * count > len(page):
            raise ParseError(f"Berkeley DB hash page claims {count} entries")
        return struct.unpack_from(f"{self._meta.order}{count}H", page, _PAGE_HEADER)

    def overflow_length(self, page: bytes) -> int:
        """How many bytes of an overflow page hold data (its hf_offset field)."""
        _, used = self._entries.unpack_from(page, 20)
        return int(used)

    def overflow(self, item: bytes) -> bytes:
        """The value an H_OFFPAGE item points to, joined from its overflow pages."""
        if len(item) != _OFFPAGE_SIZE:
            raise ParseError("Berkeley DB off-page item has the wrong size")
        pgno, length = self._links.unpack_from(item, 4)
        limit = min(MAX_BLOB, self._meta.lastpage * self._meta.pagesize)
        if not 0 < length <= limit:
            raise ParseError(f"Berkeley DB off-page item claims {length} bytes")
        value = bytearray()
        while len(value) < length:
            page = self.read(pgno, (_P_OVERFLOW,))
            used = self.overflow_length(page)
            if used == 0 or _PAGE_HEADER + used > len(page) or len(value) + used > length:
                raise ParseError(f"Berkeley DB overflow page {pgno} has a bad length")
            value += page[_PAGE_HEADER : _PAGE_HEADER + used]
            pgno = self.next_page(page)
        return bytes(value)


def iter_bdb_blobs(file: BinaryIO) -> Iterator[bytes]:
    """The header blobs of a Berkeley DB hash `Packages` file, in rpm's order."""
    file.seek(0)
    meta = _Meta(file.read(_META_SIZE))
    pages = _Pages(file, meta)
    # range() is lazy and every bucket reads a page, so the page budget also
    # bounds a bogus bucket count.
    for bucket in range(meta.maxbucket + 1):
        pgno = meta.bucket_page(bucket)
        while pgno:
            page = pages.read(pgno, _HASH_PAGES)
            yield from _page_values(page, pages)
            pgno = pages.next_page(page)


def _page_values(page: bytes, pages: _Pages) -> Iterator[bytes]:
    """The header blobs of one hash page's key/value pairs."""
    offsets = pages.item_offsets(page)
    first_item = _PAGE_HEADER + 2 * len(offsets)
    # Items fill the page from its end backwards: an item ends where the
    # item before it in the index starts.
    for i in range(0, len(offsets) - 1, 2):
        key_start, value_start = offsets[i], offsets[i + 1]
        key_end = len(page) if i == 0 else offsets[i - 1]
        if not first_item <= value_start < key_start < key_end <= len(page):
            raise ParseError("Berkeley DB hash page has items out of bounds")
        key, value = page[key_start:key_end], page[value_start:key_start]
        if not _is_package_key(key):
            continue
        if value[0] == _H_KEYDATA:
            yield value[1:]
        elif value[0] == _H_OFFPAGE:
            yield pages.overflow(value)
        else:
            raise ParseError(f"Berkeley DB hash item has unknown type {value[0]}")


def _is_package_key(key: bytes) -> bool:
    """Whether a record is a package: its key is a nonzero 4-byte header number.

    rpm keeps a bookkeeping record under header number 0 and skips it, and
    any other key is no header number either.
    """
    if key[0] not in (_H_KEYDATA, _H_OFFPAGE):
        raise ParseError(f"Berkeley DB hash item has unknown type {key[0]}")
    return key[0] == _H_KEYDATA and len(key) == 5 and key[1:] != b"\0\0\0\0"
