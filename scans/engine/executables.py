"""Executable files: the sniff the layer reader applies, and a bounded ELF reader.

Go and Rust binaries can live at any path, so no `wants(path)` selects them.
The reader keeps instead a regular file with an executable bit whose first
bytes are the magic number of a binary format (`looks_like_binary`), and the
catalogers read from it only the few structures they need: the ELF header,
program and section headers, one section. Every byte of an image is
untrusted, so every offset, count and length read from the file is checked
against the file's size and against the caps below before it is used.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

SNIFF_BYTES = 4  # enough for every magic below

ELF_MAGIC = b"\x7fELF"
_MAGICS = (
    ELF_MAGIC,
    b"MZ",  # PE (Windows)
    b"\xfe\xed\xfa\xce",  # Mach-O 32-bit, big-endian
    b"\xfe\xed\xfa\xcf",  # Mach-O 64-bit, big-endian
    b"\xce\xfa\xed\xfe",  # Mach-O 32-bit, little-endian
    b"\xcf\xfa\xed\xfe",  # Mach-O 64-bit, little-endian
    b"\xca\xfe\xba\xbe",  # Mach-O universal (also a Java class file; those rarely carry an executable bit)
)

PT_LOAD = 1
PF_X = 1
PF_W = 2
SHT_NOBITS = 8
_MAX_HEADERS = 1 << 16  # program or section headers; real executables have a few dozen
_MAX_NAMES = 16 << 20  # section name table
MAX_READ = 64 << 20  # one read of a structure or section


def looks_like_binary(head: bytes) -> bool:
    """Whether the first bytes of a file are those of an ELF, PE or Mach-O binary."""
    return head.startswith(_MAGICS)


class BinaryFormatError(ValueError):
    """The file claims a binary format but its structures are out of bounds or inconsistent."""


@dataclass(frozen=True)
class Segment:
    type: int
    flags: int
    offset: int
    vaddr: int
    filesz: int


@dataclass(frozen=True)
class Section:
    name: str
    type: int
    addr: int
    offset: int
    size: int


# (header after e_ident, program header, section header) layouts for ELFCLASS32 and ELFCLASS64.
_LAYOUTS = {
    1: ("HHIIIIIHHHHHH", "IIIIIIII", "IIIIIIIIII"),
    2: ("HHIQQQIHHHHHH", "IIQQQQQQ", "IIQQQQIIQQ"),
}


class Elf:
    """An ELF file read lazily from a seekable stream.

    Opening reads the header, the program headers, the section header table
    and the section names, a few KiB; a section is decoded only when asked
    for by name. Most binaries of an image are neither Go nor Rust, so the
    usual answer, "no such section", costs one substring test.
    """

    def __init__(self, stream: BinaryIO, size: int) -> None:
        self.stream = stream
        self.size = size
        ident = self.read_at(0, 16)
        if ident[:4] != ELF_MAGIC or ident[4] not in _LAYOUTS or ident[5] not in (1, 2):
            raise BinaryFormatError("not an ELF file of a known class and byte order")
        self.bits = 32 if ident[4] == 1 else 64
        self.endian = "<" if ident[5] == 1 else ">"
        header_fmt, self._phdr_fmt, self._shdr_fmt = _LAYOUTS[ident[4]]
        fields = self._unpack(header_fmt, self.read_at(16, struct.calcsize(self.endian + header_fmt)))
        phoff, shoff, phentsize, phnum, shentsize, shnum, shstrndx = (fields[i] for i in (4, 5, 8, 9, 10, 11, 12))
        if shoff and (shnum == 0 or shstrndx == 0xFFFF or phnum == 0xFFFF):
            # Extended numbering: counts too large for the header live in section 0.
            first = self._table(shoff, shentsize, 1, self._shdr_fmt)[0]
            shnum = first[5] if shnum == 0 else shnum
            shstrndx = first[6] if shstrndx == 0xFFFF else shstrndx
            phnum = first[7] if phnum == 0xFFFF else phnum
        self.segments = [self._segment(raw) for raw in self._table(phoff, phentsize, phnum, self._phdr_fmt)]
        self._shdrs, self._shentsize, self._names = self._section_table(shoff, shentsize, shnum, shstrndx)

    # -- reading -----------------------------------------------------------------

    def read_at(self, offset: int, length: int) -> bytes:
        """Exactly `length` bytes at file `offset`, or BinaryFormatError."""
        if offset < 0 or length < 0 or length > MAX_READ or offset + length > self.size:
            raise BinaryFormatError(f"{length} bytes at offset {offset} lie outside the {self.size}-byte file")
        self.stream.seek(offset)
        data = self.stream.read(length)
        if len(data) != length:
            raise BinaryFormatError(f"file ends before offset {offset + length}")
        return data

    def read_addr(self, addr: int, length: int, *, partial: bool = False) -> bytes:
        """Bytes at virtual address `addr` as the loadable segments map it.

        With `partial`, fewer bytes when the segment ends first (as Go's
        debug/buildinfo reads); otherwise exactly `length` or an error.
        """
        for seg in self.segments:
            if seg.type == PT_LOAD and seg.vaddr <= addr < seg.vaddr + seg.filesz:
                available = seg.vaddr + seg.filesz - addr
                if length > available and not partial:
                    raise BinaryFormatError(f"{length} bytes at address {addr:#x} run past their segment")
                return self.read_at(seg.offset + addr - seg.vaddr, min(length, available))
        raise BinaryFormatError(f"address {addr:#x} is in no loadable segment")

    def section(self, name: str) -> Section | None:
        """The first section called `name`, or None."""
        if name.encode("latin-1") + b"\0" not in self._names:
            return None
        return next((s for s in self.sections() if s.name == name), None)

    def sections(self) -> list[Section]:
        # Fields: name, type, flags, addr, offset, size, link, info, addralign, entsize.
        raws = (
            struct.unpack_from(self.endian + self._shdr_fmt, self._shdrs, at)
            for at in range(0, len(self._shdrs), self._shentsize)
        )
        return [Section(_name(self._names, raw[0]), raw[1], raw[3], raw[4], raw[5]) for raw in raws]

    def section_data(self, section: Section, limit: int) -> bytes:
        if section.type == SHT_NOBITS:
            return b""
        if section.size > limit:
            raise BinaryFormatError(f"section {section.name} is {section.size} bytes, over the {limit}-byte limit")
        return self.read_at(section.offset, section.size)

    # -- headers -----------------------------------------------------------------

    def _unpack(self, fmt: str, data: bytes) -> tuple[int, ...]:
        return struct.unpack(self.endian + fmt, data)

    def _table(self, offset: int, entsize: int, count: int, fmt: str) -> list[tuple[int, ...]]:
        data = self._table_bytes(offset, entsize, count, fmt)
        return [struct.unpack_from(self.endian + fmt, data, at) for at in range(0, len(data), entsize)]

    def _table_bytes(self, offset: int, entsize: int, count: int, fmt: str) -> bytes:
        if count == 0 or offset == 0:
            return b""
        if count > _MAX_HEADERS or entsize < struct.calcsize(self.endian + fmt):
            raise BinaryFormatError(f"header table of {count} entries of {entsize} bytes is malformed")
        return self.read_at(offset, entsize * count)

    def _segment(self, raw: tuple[int, ...]) -> Segment:
        if self.bits == 32:
            p_type, offset, vaddr, _, filesz, _, flags, _ = raw
        else:
            p_type, flags, offset, vaddr, _, filesz, _, _ = raw
        return Segment(p_type, flags, offset, vaddr, filesz)

    def _section_table(self, shoff: int, shentsize: int, shnum: int, shstrndx: int) -> tuple[bytes, int, bytes]:
        table = self._table_bytes(shoff, shentsize, shnum, self._shdr_fmt)
        names = b""
        if 0 < shstrndx < shnum and table:
            strtab = struct.unpack_from(self.endian + self._shdr_fmt, table, shstrndx * shentsize)
            if strtab[5] > _MAX_NAMES:
                raise BinaryFormatError(f"section name table of {strtab[5]} bytes is too large")
            names = self.read_at(strtab[4], strtab[5])
        return table, max(shentsize, 1), names


def _name(table: bytes, offset: int) -> str:
    if offset >= len(table):
        return ""
    end = table.find(b"\0", offset)
    return table[offset : end if end >= 0 else len(table)].decode("latin-1")
