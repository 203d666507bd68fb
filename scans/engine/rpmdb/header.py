"""The rpm header blob: what every rpm database stores for one package.

Layout (rpm's lib/header.c; all numbers big-endian): `il` and `dl`, then `il`
index entries of 16 bytes (tag, type, offset into the data, count), then `dl`
bytes of data. Databases store the blob without the 8-byte magic that
precedes headers in .rpm files.
"""

from __future__ import annotations

import struct

from scans.engine.errors import ParseError

TAG_NAME = 1000
TAG_VERSION = 1001
TAG_RELEASE = 1002
TAG_EPOCH = 1003
TAG_VENDOR = 1011
TAG_LICENSE = 1014
TAG_ARCH = 1022
TAG_SOURCERPM = 1044
TAG_MODULARITYLABEL = 5096
TAG_DIRINDEXES = 1116
TAG_BASENAMES = 1117
TAG_DIRNAMES = 1118

_TYPE_INT32 = 4
_TYPE_STRING = 6
_TYPE_STRING_ARRAY = 8
_TYPE_I18NSTRING = 9  # one string per locale; the first is the untranslated one

# rpm's own limits (HEADER_TAGS_MAX, HEADER_DATA_MAX): it refuses larger headers.
MAX_ENTRIES = 0xFFFF
MAX_DATA = 0x0FFFFFFF
MAX_BLOB = 8 + 16 * MAX_ENTRIES + MAX_DATA

_COUNTS = struct.Struct(">II")
_ENTRY = struct.Struct(">IIII")
_INT32 = struct.Struct(">I")


class Header:
    """The index of one header blob; values are decoded when asked for.

    Only the entries that are read get checked beyond the blob's outer
    bounds, so an odd tag the catalogers never read cannot fail a package.
    """

    def __init__(self, blob: bytes) -> None:
        if len(blob) < _COUNTS.size:
            raise ParseError(f"header blob of {len(blob)} bytes is too short")
        il, dl = _COUNTS.unpack_from(blob)
        if il > MAX_ENTRIES or dl > MAX_DATA:
            raise ParseError(f"header claims {il} entries and {dl} data bytes, over rpm's limits")
        data_start = _COUNTS.size + _ENTRY.size * il
        if len(blob) < data_start + dl:
            raise ParseError(f"header blob of {len(blob)} bytes is shorter than its index says")
        self._data = blob[data_start : data_start + dl]
        # Later entries win: rpm appends entries after the signed region
        # ("dribbles") to replace the ones inside it.
        self._entries = {
            tag: (type_, offset, count)
            for tag, type_, offset, count in _ENTRY.iter_unpack(blob[_COUNTS.size : data_start])
        }

    def string(self, tag: int) -> str | None:
        """The tag's string, or None when the header lacks the tag."""
        entry = self._entries.get(tag)
        if entry is None:
            return None
        type_, offset, _count = entry
        if type_ not in (_TYPE_STRING, _TYPE_I18NSTRING):
            raise ParseError(f"header tag {tag} has type {type_}, not a string")
        end = self._data.find(b"\0", offset)
        if offset >= len(self._data) or end < 0:
            raise ParseError(f"header tag {tag} points outside the header's data")
        # Old packages carry Latin-1 in free text; a replaced byte beats a failed scan.
        return self._data[offset:end].decode("utf-8", "replace")

    def int32(self, tag: int) -> int | None:
        """The tag's first 32-bit number, or None when the header lacks the tag."""
        entry = self._entries.get(tag)
        if entry is None:
            return None
        type_, offset, count = entry
        if type_ != _TYPE_INT32 or count < 1:
            raise ParseError(f"header tag {tag} has type {type_} and count {count}, not an int32")
        if offset % 4 or offset + 4 > len(self._data):
            raise ParseError(f"header tag {tag} points outside the header's data")
        (value,) = _INT32.unpack_from(self._data, offset)
        return int(value)

    def strings(self, tag: int) -> list[str]:
        """The tag's string array (empty when the header lacks the tag)."""
        entry = self._entries.get(tag)
        if entry is None:
            return []
        type_, offset, count = entry
        if type_ not in (_TYPE_STRING_ARRAY, _TYPE_STRING):
            raise ParseError(f"header tag {tag} has type {type_}, not a string array")
        values = []
        for _ in range(count):
            end = self._data.find(b"\0", offset)
            if offset >= len(self._data) or end < 0:
                raise ParseError(f"header tag {tag} points outside the header's data")
            values.append(self._data[offset:end].decode("utf-8", "replace"))
            offset = end + 1
        return values

    def int32s(self, tag: int) -> list[int]:
        """The tag's 32-bit numbers (empty when the header lacks the tag)."""
        entry = self._entries.get(tag)
        if entry is None:
            return []
        type_, offset, count = entry
        if type_ != _TYPE_INT32 or offset % 4 or offset + 4 * count > len(self._data):
            raise ParseError(f"header tag {tag} is not an int32 array inside the header's data")
        return [int(v) for v in struct.unpack_from(f">{count}I", self._data, offset)]
