"""Go modules: the build info embedded in Go binaries, and go.mod files.

Binaries. `go build` (Go 1.13 and later) writes a 32-byte header starting
`\\xff Go buildinf:` at the start of the data segment (ELF section
`.go.buildinfo`), 16-byte aligned. Byte 14 is the pointer size, byte 15 the
flags: bit 1 set (Go 1.18+) means the Go version and the module info follow
the header inline as varint-prefixed strings; otherwise (Go 1.13 to 1.17)
the header holds two pointers to Go string headers (data pointer, length)
that are resolved through the ELF program headers, in the byte order of
flag bit 0. This is what Go's own debug/buildinfo does; it is re-done here
with every offset and length bounded, because the file is untrusted.
Non-ELF binaries (PE, Mach-O) are searched for the inline format only.

What is reported, all as purl type `golang`:
- every `dep` line, or its replacement when a `=>` line follows (the code
  in the binary is the replacement's); a replacement by a local directory
  (`=> ../fork (devel)`) is part of the project, has no version to match,
  and is left out;
- the main module (`mod` line); `go build` in a source tree records its
  version as `(devel)`, which is reported as an empty version: the module
  is there, but no advisory range can be checked against an unknown version;
- the Go toolchain as a package named `stdlib`, its version converted to
  SemVer without `go` or `v` as OSV's Go advisories and govulncheck write
  it: go1.17.2 -> 1.17.2, go1.21 -> 1.21.0, go1.21rc2 -> 1.21.0-rc.2.
Module versions are kept as Go writes them (`v1.2.3`); the SemVer reading
of versions accepts the `v`.

go.mod. `require` lines and blocks (`// indirect` means not direct) with
`replace` directives applied as above. The file's own module is the
project being scanned, not a dependency, and is not reported; the `go` line
states a language version, not the toolchain that builds it, so it gives no
`stdlib`. go.mod files under a module cache (`/pkg/mod/`) or `vendor/` are
copies of dependencies' manifests and are not read.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from scans.engine.catalogers.base import FileContent
from scans.engine.errors import ParseError
from scans.engine.executables import ELF_MAGIC, PF_W, PF_X, PT_LOAD, SHT_NOBITS, BinaryFormatError, Elf
from scans.engine.models import Package
from scans.engine.purls import language_purl

MAGIC = b"\xff Go buildinf:"
_ALIGN = 16
_HEADER = 32
_SEARCH = 64 << 10  # Go looks for the header in the first 64 KiB of the data segment
_MAX_STRING = 16 << 20  # a version or module-info string
_SCAN_CHUNK = 4 << 20  # non-ELF binaries are scanned for the header in steps of this size
_MAX_GO_MOD = 16 << 20
_SKIPPED_DIRS = ("/pkg/mod/", "/vendor/")
STDLIB = "stdlib"

# Reads `length` bytes at a position: a virtual address for ELF, a file offset otherwise.
_Read = Callable[[int, int], bytes]


class GoCataloger:
    name = "go"
    version = 1

    def wants(self, path: str) -> bool:
        if path != "go.mod" and not path.endswith("/go.mod"):
            return False
        return not any(d in "/" + path for d in _SKIPPED_DIRS)

    def wants_executable(self, path: str, size: int) -> bool:
        return True  # a Go binary can sit anywhere, under any name

    def parse(self, file: FileContent) -> list[Package]:
        if file.path.rsplit("/", 1)[-1] == "go.mod":
            return parse_go_mod(file)
        info = read_build_info(file)
        return [] if info is None else build_info_packages(info, file.path)


# --------------------------------------------------------------------------
# Binaries


@dataclass(frozen=True)
class BuildInfo:
    go_version: str  # as the binary writes it: go1.17.2
    modinfo: str  # the text `go version -m` prints, one `mod`/`dep`/`=>`/`path`/`build` line each


def read_build_info(file: FileContent) -> BuildInfo | None:
    """The build info of a Go binary; None for any other file; ParseError when it is malformed."""
    with file.open() as stream:
        try:
            return _read_build_info(stream, file.size)
        except (BinaryFormatError, struct.error, UnicodeDecodeError) as exc:
            raise ParseError(f"{file.path}: malformed Go build info ({exc})") from None


def _read_build_info(stream: BinaryIO, size: int) -> BuildInfo | None:
    if stream.read(4) == ELF_MAGIC:
        elf = Elf(stream, size)
        start = _data_start(elf)
        if start is None:
            return None
        data = elf.read_addr(start, _SEARCH, partial=True)
        found = _find_header(data)
        if found is None:
            return None
        return _decode(data[found : found + _HEADER], start + found, lambda at, n: elf.read_addr(at, n))
    found = _scan_for_header(stream, size)
    if found is None:
        return None
    stream.seek(found)
    header = stream.read(_HEADER)
    if not header[15] & 2:
        raise BinaryFormatError("only the Go 1.18+ build info format is read from non-ELF binaries")
    return _decode(header, found, lambda at, n: _read_exact(stream, size, at, n))


def _data_start(elf: Elf) -> int | None:
    section = elf.section(".go.buildinfo")
    if section is not None:
        # A separate debug file (objcopy --only-keep-debug) keeps the header but not the bytes.
        return None if section.type == SHT_NOBITS else section.addr
    # Stripped of section headers: Go then looks in the first writable, non-executable segment.
    for segment in elf.segments:
        if segment.type == PT_LOAD and segment.flags & (PF_X | PF_W) == PF_W:
            return segment.vaddr
    return None


def _find_header(data: bytes) -> int | None:
    at = 0
    while (found := data.find(MAGIC, at)) >= 0:
        if len(data) - found < _HEADER:
            return None
        if found % _ALIGN == 0:
            return found
        at = (found + _ALIGN - 1) & ~(_ALIGN - 1)
    return None


def _scan_for_header(stream: BinaryIO, size: int) -> int | None:
    """The file offset of an aligned header, read in bounded chunks that overlap by a header's length."""
    offset = 0
    stream.seek(0)
    while offset < size:
        chunk = stream.read(_SCAN_CHUNK + _HEADER)
        found = _find_header(chunk)
        if found is not None:
            return offset + found
        if len(chunk) <= _HEADER:
            return None
        offset += _SCAN_CHUNK
        stream.seek(offset)
    return None


def _read_exact(stream: BinaryIO, size: int, offset: int, length: int) -> bytes:
    if offset < 0 or length > _MAX_STRING or offset + length > size:
        raise BinaryFormatError(f"{length} bytes at offset {offset} lie outside the file")
    stream.seek(offset)
    data = stream.read(length)
    if len(data) != length:
        raise BinaryFormatError("file is truncated")
    return data


def _decode(header: bytes, where: int, read: _Read) -> BuildInfo | None:
    ptr_size, flags = header[14], header[15]
    if flags & 2:
        version, after = _inline_string(read, where + _HEADER)
        modinfo, _ = _inline_string(read, after)
    elif ptr_size in (4, 8):
        fmt = (">" if flags & 1 else "<") + ("I" if ptr_size == 4 else "Q")
        version_at, modinfo_at = struct.unpack(fmt[0] + 2 * fmt[1], header[16 : 16 + 2 * ptr_size])
        version = _pointed_string(read, fmt, ptr_size, version_at)
        modinfo = _pointed_string(read, fmt, ptr_size, modinfo_at)
    else:
        raise BinaryFormatError(f"pointer size {ptr_size} is neither 4 nor 8")
    if not version:
        return None  # as Go's debug/buildinfo: no version, not a Go binary
    return BuildInfo(version.decode("utf-8"), _unframe(modinfo).decode("utf-8"))


def _inline_string(read: _Read, at: int) -> tuple[bytes, int]:
    length, shift, used = 0, 0, 0
    for byte in _varint_bytes(read, at):
        used += 1
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
    else:
        raise BinaryFormatError("unterminated string length")
    if length > _MAX_STRING:
        raise BinaryFormatError(f"string of {length} bytes is too long")
    return (read(at + used, length) if length else b""), at + used + length


def _varint_bytes(read: _Read, at: int) -> bytes:
    # A length takes at most 10 bytes; near the end of the data fewer can be read.
    for count in (10, 5, 3, 1):
        try:
            return read(at, count)
        except BinaryFormatError:
            continue
    raise BinaryFormatError("string length lies outside the file")


def _pointed_string(read: _Read, fmt: str, ptr_size: int, at: int) -> bytes:
    header = read(at, 2 * ptr_size)
    (data_at,) = struct.unpack(fmt, header[:ptr_size])
    (length,) = struct.unpack(fmt, header[ptr_size:])
    if length > _MAX_STRING:
        raise BinaryFormatError(f"string of {length} bytes is too long")
    return read(data_at, length) if length else b""


def _unframe(modinfo: bytes) -> bytes:
    # cmd/go wraps the module info in two 16-byte sentinels (modload's infoStart and infoEnd).
    if len(modinfo) >= 33 and modinfo[-17:-16] == b"\n":
        return modinfo[16:-16]
    return b""


@dataclass
class _Module:
    path: str
    version: str
    replaced_by: _Module | None = None


def parse_modinfo(modinfo: str) -> tuple[_Module | None, list[_Module]]:
    """The main module and the dependencies, as debug.ParseBuildInfo reads the text."""
    main: _Module | None = None
    deps: list[_Module] = []
    last: _Module | None = None
    for line in modinfo.splitlines():
        kind, _, rest = line.partition("\t")
        if kind not in ("mod", "dep", "=>"):
            continue  # path, build, and lines of newer toolchains
        fields = rest.split("\t")
        if len(fields) not in (2, 3) or not fields[0]:
            raise ValueError(f"malformed {kind!r} line {line!r}")
        module = _Module(fields[0], fields[1])
        if kind == "=>":
            if last is None or last.replaced_by is not None:
                raise ValueError(f"replacement {line!r} follows no module")
            last.replaced_by = module
        elif kind == "mod":
            main = last = module
        else:
            deps.append(module)
            last = module
    return main, deps


def build_info_packages(info: BuildInfo, path: str) -> list[Package]:
    try:
        main, deps = parse_modinfo(info.modinfo)
    except ValueError as exc:
        raise ParseError(f"{path}: malformed Go module info ({exc})") from None
    packages = [_package(STDLIB, go_semver(info.go_version), path)]
    if main is not None:
        packages.append(_package(main.path, "" if main.version == "(devel)" else main.version, path))
    for dep in deps:
        module = dep.replaced_by or dep
        if not _is_local(module.path):
            packages.append(_package(module.path, module.version, path))
    return packages


def _is_local(module_path: str) -> bool:
    """A replacement by a directory (`=> ../fork`), which go.mod writes without a version and builds as (devel)."""
    if module_path in (".", "..") or module_path.startswith(("./", "../", "/", ".\\", "..\\")):
        return True
    return len(module_path) > 1 and module_path[1] == ":"  # a Windows drive


_GO_TAG = re.compile(r"go(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:(beta|rc)(\d+))?")


def go_semver(tag: str) -> str:
    """A toolchain version as SemVer, like govulncheck's GoTagToSemver; "" when it is not a release tag.

    Newer toolchains append settings after a space (`go1.22.0 X:boringcrypto`); development builds
    (`devel go1.23-abc`) have no release to compare.
    """
    m = _GO_TAG.fullmatch(tag.split(" ", 1)[0])
    if m is None:
        return ""
    major, minor, patch, kind, number = m.groups()
    version = f"{major}.{minor or 0}.{patch or 0}"
    return f"{version}-{kind}.{number}" if kind else version


def _package(name: str, version: str, path: str, *, direct: bool | None = None) -> Package:
    return Package(
        type="golang",
        name=name,
        version=version,
        direct=direct,
        path=path,
        purl=language_purl("golang", name, version),
    )


# --------------------------------------------------------------------------
# go.mod


@dataclass
class _GoMod:
    requires: list[tuple[str, str, bool]]  # path, version, direct
    replaces: dict[tuple[str, str], tuple[str, str]]  # (old path, old version or "") -> (new path, new version)


def parse_go_mod(file: FileContent) -> list[Package]:
    if file.size > _MAX_GO_MOD:
        raise ParseError(f"{file.path}: {file.size} bytes is too large for a go.mod")
    try:
        text = file.read_bytes().decode("utf-8")
        mod = _read_go_mod(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ParseError(f"{file.path}: malformed go.mod ({exc})") from None
    packages = []
    for path, version, direct in mod.requires:
        new = mod.replaces.get((path, version)) or mod.replaces.get((path, ""))
        if new is not None:
            path, version = new
        if not _is_local(path):
            packages.append(_package(path, version, file.path, direct=direct))
    return packages


def _read_go_mod(text: str) -> _GoMod:
    mod = _GoMod([], {})
    block = ""
    for number, raw in enumerate(text.splitlines(), 1):
        line, _, comment = raw.partition("//")
        words = _words(line, number)
        if block:
            if words == [")"]:
                block = ""
            elif words:
                _directive(mod, block, words, comment, number)
        elif len(words) == 2 and words[1] == "(":
            block = words[0]
        elif len(words) == 3 and words[1:] == ["(", ")"]:
            continue  # an empty block
        elif words:
            _directive(mod, words[0], words[1:], comment, number)
    if block:
        raise ValueError(f"{block} block is not closed")
    return mod


def _directive(mod: _GoMod, verb: str, args: list[str], comment: str, number: int) -> None:
    if verb == "require":
        if len(args) != 2:
            raise ValueError(f"line {number}: require needs a module path and a version")
        # cmd/go writes `// indirect`, and reads `// indirect; other words` the same way.
        indirect = comment.strip() == "indirect" or comment.strip().startswith("indirect;")
        mod.requires.append((args[0], args[1], not indirect))
    elif verb == "replace":
        if "=>" not in args:
            raise ValueError(f"line {number}: replace lacks =>")
        split = args.index("=>")
        old, new = args[:split], args[split + 1 :]
        if len(old) not in (1, 2) or len(new) not in (1, 2):
            raise ValueError(f"line {number}: malformed replace")
        mod.replaces[(old[0], old[1] if len(old) == 2 else "")] = (new[0], new[1] if len(new) == 2 else "")
    # module, go, toolchain, exclude, retract, godebug: nothing to report.


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|`[^`]*`|=>|[()]|[^\s()"`]+')


def _words(line: str, number: int) -> list[str]:
    words = []
    for token in _TOKEN.findall(line):
        if token[0] in '"`':
            token = token[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        words.append(token)
    if line.count('"') % 2 or line.count("`") % 2:
        raise ValueError(f"line {number}: unterminated quoted string")
    return words
