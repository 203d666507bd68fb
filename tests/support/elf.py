"""Minimal ELF files of our own making, for the Go and Rust binary readers.

`elf(sections)` lays out the ELF header, one PT_LOAD program header per
section that has an address, the section bytes (16-byte aligned), the
section name table and the section header table, in either class and byte
order. Nothing here is executable; it only has to be readable the way
Go's debug/elf and cargo-auditable's readers read real binaries.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

PF_X, PF_W, PF_R = 1, 2, 4
SHT_PROGBITS, SHT_STRTAB = 1, 3


@dataclass(frozen=True)
class Sec:
    name: str
    data: bytes
    addr: int = 0  # 0: not loaded (no program header)
    flags: int = PF_R  # segment flags when loaded


def _align(n: int, to: int = 16) -> int:
    return (n + to - 1) & ~(to - 1)


def elf(sections: list[Sec], *, bits: int = 64, endian: str = "<", section_headers: bool = True) -> bytes:
    ehsize, phentsize, shentsize = (64, 56, 64) if bits == 64 else (52, 32, 40)
    loaded = [s for s in sections if s.addr]
    offset = _align(ehsize + phentsize * len(loaded))
    offsets = []
    for s in sections:
        offsets.append(offset)
        offset = _align(offset + len(s.data))
    names = b"\0" + b"".join(s.name.encode() + b"\0" for s in sections) + b".shstrtab\0"
    names_at = offset
    shoff = _align(names_at + len(names)) if section_headers else 0
    shnum = len(sections) + 2 if section_headers else 0
    ident = b"\x7fELF" + bytes([2 if bits == 64 else 1, 1 if endian == "<" else 2, 1]) + bytes(9)
    header_fmt = "HHIQQQIHHHHHH" if bits == 64 else "HHIIIIIHHHHHH"
    header = ident + struct.pack(
        endian + header_fmt, 2, 62, 1, 0, ehsize, shoff, 0, ehsize, phentsize, len(loaded), shentsize, shnum,
        shnum - 1 if section_headers else 0,
    )  # fmt: skip
    phdrs = b"".join(_phdr(bits, endian, offsets[sections.index(s)], s.addr, len(s.data), s.flags) for s in loaded)
    out = bytearray(header + phdrs)
    for s, at in zip(sections, offsets, strict=True):
        out += bytes(at - len(out)) + s.data
    out += bytes(names_at - len(out)) + names
    if section_headers:
        out += bytes(shoff - len(out)) + bytes(shentsize)  # the null section
        name_at = 1
        for s, at in zip(sections, offsets, strict=True):
            out += _shdr(bits, endian, name_at, SHT_PROGBITS, s.addr, at, len(s.data))
            name_at += len(s.name) + 1
        out += _shdr(bits, endian, name_at, SHT_STRTAB, 0, names_at, len(names))
    return bytes(out)


def _phdr(bits: int, endian: str, offset: int, vaddr: int, size: int, flags: int) -> bytes:
    if bits == 64:
        return struct.pack(endian + "IIQQQQQQ", 1, flags, offset, vaddr, vaddr, size, size, 16)
    return struct.pack(endian + "IIIIIIII", 1, offset, vaddr, vaddr, size, size, flags, 16)


def _shdr(bits: int, endian: str, name: int, kind: int, addr: int, offset: int, size: int) -> bytes:
    if bits == 64:
        return struct.pack(endian + "IIQQQQIIQQ", name, kind, 0, addr, offset, size, 0, 0, 1, 0)
    return struct.pack(endian + "IIIIIIIIII", name, kind, 0, addr, offset, size, 0, 0, 1, 0)


# -- Go build info ------------------------------------------------------------------

GO_MAGIC = b"\xff Go buildinf:"
# cmd/go's modload infoStart / infoEnd: the framing around the module info.
INFO_START = bytes.fromhex("3077af0c9274080241e1c107e6d618e6")
INFO_END = bytes.fromhex("f932433186182072008242104116d8f2")


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def go_inline(version: str, modinfo: str, *, ptr_size: int = 8) -> bytes:
    """A `.go.buildinfo` section as Go 1.18+ writes it: header, then the two strings."""
    mod = INFO_START + modinfo.encode() + INFO_END
    header = GO_MAGIC + bytes([ptr_size, 2]) + bytes(16)
    # Padding as in real binaries, where more data follows: Go's reader refuses a string that ends its data.
    return header + _uvarint(len(version)) + version.encode() + _uvarint(len(mod)) + mod + bytes(16)


def go_pointer_binary(
    version: str, modinfo: str, *, bits: int = 64, endian: str = "<", section_headers: bool = True
) -> bytes:
    """An ELF laid out as Go 1.13-1.17 binaries are: pointers to string headers pointing at the bytes."""
    ptr = "Q" if bits == 64 else "I"
    size = bits // 8
    # As Go's linker does, the build info opens the first writable segment.
    rodata_at, info_at, strings_at = 0x400000, 0x500000, 0x510000
    mod = INFO_START + modinfo.encode() + INFO_END
    rodata = version.encode() + mod
    headers = struct.pack(endian + 4 * ptr, rodata_at, len(version), rodata_at + len(version), len(mod))
    info = GO_MAGIC + bytes([size, 1 if endian == ">" else 0])
    info += struct.pack(endian + 2 * ptr, strings_at, strings_at + 2 * size)
    info += bytes(32 - len(info))
    return elf(
        [
            Sec(".rodata", rodata, rodata_at),
            Sec(".go.buildinfo", info, info_at, PF_R | PF_W),
            Sec(".noptrdata", headers, strings_at, PF_R | PF_W),
        ],
        bits=bits,
        endian=endian,
        section_headers=section_headers,
    )


_TEXT = Sec(".text", b"\x90" * 64, 0x401000, PF_R | PF_X)


def go_inline_binary(version: str, modinfo: str, *, bits: int = 64, endian: str = "<") -> bytes:
    info = Sec(".go.buildinfo", go_inline(version, modinfo), 0x500000, PF_R | PF_W)
    return elf([_TEXT, info], bits=bits, endian=endian)


# -- cargo-auditable -----------------------------------------------------------------


def auditable_binary(doc: bytes, *, bits: int = 64, endian: str = "<") -> bytes:
    """An ELF with a `.dep-v0` section holding `doc` zlib-compressed, as cargo-auditable embeds it."""
    return elf([_TEXT, Sec(".dep-v0", zlib.compress(doc))], bits=bits, endian=endian)
