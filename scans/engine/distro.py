"""The operating system of an image, from its release files."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable

from scans.engine.models import Distro

# Looked up in this order; the first that names a distribution wins.
RELEASE_FILES = (
    "etc/os-release",
    "usr/lib/os-release",
    "etc/alpine-release",
    "etc/centos-release",
    "etc/redhat-release",
    "etc/debian_version",
)
DPKG_STATUS_DIR = "var/lib/dpkg/status.d"
_MAX_RELEASE_FILE = 64 << 10
_RELEASE_LINE = re.compile(r"^(?P<name>.+?) release (?P<version>\d+(?:\.\d+)*)")
_RELEASE_IDS = {
    "centos": "centos",
    "red hat enterprise linux": "rhel",
    "rocky linux": "rocky",
    "almalinux": "almalinux",
    "fedora": "fedora",
    "oracle linux": "ol",
    "amazon linux": "amzn",
}


def parse_os_release(text: str) -> dict[str, str]:
    """KEY=value lines with shell quoting, as os-release(5) defines them."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if not sep or not key or key.startswith("#"):
            continue
        try:
            words = shlex.split(value)
        except ValueError:
            words = [value.strip("\"'")]
        fields[key.strip()] = words[0] if words else ""
    return fields


def _from_os_release(text: str) -> Distro | None:
    fields = parse_os_release(text)
    if not fields.get("ID"):
        return None
    return Distro(
        id=fields["ID"].lower(),
        version_id=fields.get("VERSION_ID", ""),
        codename=fields.get("VERSION_CODENAME", ""),
        pretty_name=fields.get("PRETTY_NAME", ""),
    )


def _from_release_line(text: str) -> Distro | None:
    match = _RELEASE_LINE.match(text.strip())
    if not match:
        return None
    name = match["name"].lower()
    distro_id = next((v for k, v in _RELEASE_IDS.items() if name.startswith(k)), name.split()[0])
    return Distro(id=distro_id, version_id=match["version"], pretty_name=text.strip())


def _from_debian_version(text: str) -> Distro | None:
    version = text.strip()
    if re.match(r"^\d+(\.\d+)*$", version):
        return Distro(id="debian", version_id=version.split(".")[0], pretty_name=f"Debian {version}")
    # Testing and unstable write a codename such as "trixie/sid".
    return Distro(id="debian", codename=version.split("/")[0]) if version else None


_PARSERS: dict[str, Callable[[str], Distro | None]] = {
    "etc/os-release": _from_os_release,
    "usr/lib/os-release": _from_os_release,
    "etc/alpine-release": lambda t: Distro(id="alpine", version_id=t.strip()) if t.strip() else None,
    "etc/centos-release": _from_release_line,
    "etc/redhat-release": _from_release_line,
    "etc/debian_version": _from_debian_version,
}


def detect(read: Callable[[str], bytes | None], has_dpkg_status_dir: bool = False) -> Distro | None:
    """The distro named by the first release file that `read` returns.

    `read(path)` gives a release file's bytes, or None when it is absent.
    """
    for path in RELEASE_FILES:
        data = read(path)
        if data is None:
            continue
        found = _PARSERS[path](data[:_MAX_RELEASE_FILE].decode("utf-8", "replace"))
        if found is None:
            continue
        if has_dpkg_status_dir:
            # Google's distroless images keep one dpkg status file per package.
            found = Distro(found.id, found.version_id, found.codename, found.pretty_name, "distroless")
        return found
    return None


def describe(distro: Distro | None) -> str:
    if distro is None:
        return "unknown"
    name = distro.pretty_name or f"{distro.id} {distro.version_id}".strip()
    return f"{name} (distroless)" if distro.variant == "distroless" else name
