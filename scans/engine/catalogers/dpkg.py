"""Debian packages from dpkg's status database (and distroless status.d)."""

from __future__ import annotations

from debian.deb822 import Deb822

from scans.engine.catalogers.base import FileContent
from scans.engine.errors import ParseError
from scans.engine.models import Package

STATUS = "var/lib/dpkg/status"
STATUS_DIR = "var/lib/dpkg/status.d/"
INFO_DIR = "var/lib/dpkg/info/"
# dpkg keeps paragraphs for removed packages whose config files remain, and
# for packages it knows but never installed; their files are not on disk.
_NOT_ON_DISK = {"not-installed", "config-files"}


class DpkgCataloger:
    name = "dpkg"
    version = 1
    paths = (STATUS,)

    def wants(self, path: str) -> bool:
        if path == STATUS:
            return True
        # Distroless keeps `<package>` and `<package>.md5sums` files side by side; dpkg's
        # info/<package>.list files say which files each package owns.
        if path.startswith(STATUS_DIR):
            return "/" not in path[len(STATUS_DIR) :]
        return path.startswith(INFO_DIR) and path.endswith(".list") and "/" not in path[len(INFO_DIR) :]

    def owned_files(self, file: FileContent) -> set[str]:
        """Files a package owns, from a `.list` (one path per line) or `.md5sums` (`<md5>  <path>`)."""
        if not file.path.endswith((".list", ".md5sums")):
            return set()
        owned = set()
        for line in file.read_bytes().decode("utf-8", "replace").splitlines():
            path = line.split("  ", 1)[1] if file.path.endswith(".md5sums") and "  " in line else line
            if path.strip():
                owned.add(path.strip().lstrip("/"))
        return owned

    def parse(self, file: FileContent) -> list[Package]:
        if file.path.endswith((".list", ".md5sums")):
            return []  # ownership only; see owned_files
        try:
            text = file.read_bytes().decode("utf-8", "replace")
            paragraphs = list(Deb822.iter_paragraphs(text.splitlines(keepends=True)))
        except Exception as exc:  # python-debian raises assorted errors on garbage
            raise ParseError(f"{file.path}: unreadable dpkg status ({exc})") from None
        packages = []
        for para in paragraphs:
            package = _package(para, file.path)
            if package is not None:
                packages.append(package)
        return packages


def _package(para: Deb822, path: str) -> Package | None:
    name = para.get("Package", "").strip()
    version = para.get("Version", "").strip()
    status = para.get("Status", "install ok installed").split()
    if not name or not version or (len(status) == 3 and status[2] in _NOT_ON_DISK):
        return None
    source_name, source_version = name, version
    source = para.get("Source", "").strip()
    if source:
        # "Source: glibc (2.36-9+deb12u14)" when the source version differs.
        source_name, _, rest = source.partition(" ")
        if rest.startswith("(") and rest.endswith(")"):
            source_version = rest[1:-1].strip()
    return Package(
        type="deb",
        name=name,
        version=version,
        arch=para.get("Architecture", "").strip(),
        source_name=source_name,
        source_version=source_version,
        path=path,
    )
