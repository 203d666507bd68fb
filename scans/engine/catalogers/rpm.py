"""Installed rpm packages, from any of rpm's three database formats."""

from __future__ import annotations

from collections.abc import Iterator

from scans.engine.catalogers.base import FileContent
from scans.engine.errors import ParseError
from scans.engine.models import Package
from scans.engine.rpmdb import Header, iter_bdb_blobs, iter_ndb_blobs, iter_sqlite_blobs
from scans.engine.rpmdb import header as tags

# rpm < 4.16 kept the database in /var/lib/rpm; newer distributions keep it in
# /usr/lib/sysimage/rpm, often with /var/lib/rpm as a symlink to it.
_DIRECTORIES = ("var/lib/rpm/", "usr/lib/sysimage/rpm/")
_BDB, _NDB, _SQLITE = "Packages", "Packages.db", "rpmdb.sqlite"
_DATABASES = frozenset(d + f for d in _DIRECTORIES for f in (_BDB, _NDB, _SQLITE))

# rpm stores each imported signing key as a pseudo-package named gpg-pubkey:
# a key, not software, so it is no package to match advisories against.
_KEY_PSEUDO_PACKAGE = "gpg-pubkey"


class RpmCataloger:
    name = "rpm"
    version = 1

    def wants(self, path: str) -> bool:
        return path in _DATABASES

    def parse(self, file: FileContent) -> list[Package]:
        try:
            return [package for blob in _blobs(file) if (package := _package(Header(blob), file.path)) is not None]
        except ParseError as err:
            raise ParseError(f"{file.path}: {err}") from err

    def owned_files(self, file: FileContent) -> set[str]:
        """Every file the installed packages own, as image paths (no leading slash)."""
        owned: set[str] = set()
        try:
            for blob in _blobs(file):
                header = Header(blob)
                dirs = header.strings(tags.TAG_DIRNAMES)
                indexes = header.int32s(tags.TAG_DIRINDEXES)
                for base, index in zip(header.strings(tags.TAG_BASENAMES), indexes, strict=False):
                    if index < len(dirs):
                        owned.add((dirs[index] + base).lstrip("/"))
        except ParseError as err:
            raise ParseError(f"{file.path}: {err}") from err
        return owned


def _blobs(file: FileContent) -> Iterator[bytes]:
    filename = file.path.rsplit("/", 1)[-1]
    if filename == _SQLITE:
        yield from iter_sqlite_blobs(file.local_path())
        return
    with file.open() as stream:
        yield from (iter_bdb_blobs if filename == _BDB else iter_ndb_blobs)(stream)


def _package(header: Header, path: str) -> Package | None:
    name = _required(header, tags.TAG_NAME)
    if name == _KEY_PSEUDO_PACKAGE:
        return None
    version = _required(header, tags.TAG_VERSION)
    release = _required(header, tags.TAG_RELEASE)
    source_name, source_version = split_source_rpm(header.string(tags.TAG_SOURCERPM) or "")
    license_ = header.string(tags.TAG_LICENSE)
    return Package(
        type="rpm",
        name=name,
        version=f"{version}-{release}",
        epoch=header.int32(tags.TAG_EPOCH),
        release=release,
        arch=header.string(tags.TAG_ARCH) or "",
        source_name=source_name,
        source_version=source_version,
        modularity_label=header.string(tags.TAG_MODULARITYLABEL) or "",
        licenses=(license_,) if license_ else (),
        path=path,
    )


def _required(header: Header, tag: int) -> str:
    value = header.string(tag)
    if not value:
        raise ParseError(f"a package header has no tag {tag}")
    return value


def split_source_rpm(filename: str) -> tuple[str, str]:
    """`util-linux-2.32.1-42.el8_8.src.rpm` -> (`util-linux`, `2.32.1-42.el8_8`).

    A name that does not look like name-version-release.arch.rpm gives two
    empty strings: the binary package is still worth reporting without it.
    """
    stem = filename.removesuffix(".rpm").rpartition(".")[0]  # drop .src / .nosrc
    rest, _, release = stem.rpartition("-")
    name, _, version = rest.rpartition("-")
    if not (name and version and release):
        return "", ""
    return name, f"{version}-{release}"
