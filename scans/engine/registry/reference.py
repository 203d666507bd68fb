"""Image references: `registry.example:5000/team/app:1.0@sha256:<hex>`.

The grammar is distribution's (github.com/distribution/reference), as Docker
applies it: the first path component is a registry host only when it holds a
'.' or ':' or is `localhost`; anything else is Docker Hub shorthand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DOCKER_HUB = "registry-1.docker.io"
# Hostnames people write for Docker Hub; the API lives at DOCKER_HUB.
DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"})

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::(?P<port>[0-9]+))?")
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[_.]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_DIGEST = re.compile(r"(?P<algorithm>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*):(?P<hex>[0-9a-fA-F]{32,})")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
NAME_MAX_LENGTH = 255
_TAG_RULE = "tags are up to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'"


@dataclass(frozen=True)
class ImageReference:
    """A parsed reference. `tag` is `latest` when neither a tag nor a digest was given."""

    registry: str  # host[:port] of the registry API
    repository: str  # path inside the registry, e.g. `library/alpine`
    tag: str = ""
    digest: str = ""  # sha256:<hex>; when set, it names the image and the tag is informative

    @property
    def reference(self) -> str:
        """What goes into /v2/<repository>/manifests/<reference>: the digest when there is one."""
        return self.digest or self.tag

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def _split_digest(text: str) -> tuple[str, str]:
    name, at, digest = text.partition("@")
    if not at:
        return text, ""
    match = _DIGEST.fullmatch(digest)
    if match is None:
        raise ValueError(f"invalid digest {digest!r} in image reference")
    if match["algorithm"] != "sha256" or not _SHA256_HEX.fullmatch(match["hex"]):
        raise ValueError(f"unsupported digest {digest!r}: only sha256 with 64 lowercase hex digits is supported")
    return name, digest


def _split_tag(name: str) -> tuple[str, str]:
    # A colon after the last slash starts the tag; one before it belongs to the host's port.
    colon = name.rfind(":")
    if colon <= name.rfind("/"):
        return name, ""
    tag = name[colon + 1 :]
    if not _TAG.fullmatch(tag):
        raise ValueError(f"invalid tag {tag!r}: {_TAG_RULE}")
    return name[:colon], tag


def _split_registry(name: str) -> tuple[str, str]:
    first, slash, rest = name.partition("/")
    names_host = bool(slash) and (any(c in first for c in ".:") or first == "localhost")
    if not names_host:
        # Docker Hub shorthand: `alpine` is `library/alpine`, `team/app` stays as it is.
        return DOCKER_HUB, name if slash else f"library/{name}"
    match = _DOMAIN.fullmatch(first)
    if match is None:
        raise ValueError(f"invalid registry host {first!r}")
    port = match["port"]
    if port is not None and not 0 < int(port) < 65536:
        raise ValueError(f"invalid port in registry host {first!r}")
    if first.lower() in DOCKER_HUB_ALIASES:
        return DOCKER_HUB, rest if "/" in rest else f"library/{rest}"
    return first, rest


def check_repository(repository: str) -> str:
    """`repository` if it is a valid repository path; ValueError otherwise."""
    if len(repository) > NAME_MAX_LENGTH or not all(_PATH_COMPONENT.fullmatch(c) for c in repository.split("/")):
        raise ValueError(
            f"invalid repository {repository[:NAME_MAX_LENGTH]!r}: path components are lowercase letters and digits "
            "joined by '.', '_', '__' or dashes"
        )
    return repository


def check_tag_or_digest(reference: str) -> str:
    """`reference` if it is a valid tag or sha256 digest; ValueError otherwise."""
    if ":" in reference:
        return _split_digest("@" + reference)[1]
    if not _TAG.fullmatch(reference):
        raise ValueError(f"invalid tag {reference!r}: {_TAG_RULE}")
    return reference


def parse_reference(text: str) -> ImageReference:
    """Parse `[host[:port]/]path[:tag][@sha256:hex]`; raises ValueError saying what is wrong."""
    if not text or text != text.strip():
        raise ValueError(f"invalid image reference {text!r}: empty or surrounded by whitespace")
    name, digest = _split_digest(text)
    name, tag = _split_tag(name)
    if len(name) > NAME_MAX_LENGTH:
        raise ValueError(f"repository name {name[:40]!r}... is longer than {NAME_MAX_LENGTH} characters")
    registry, repository = _split_registry(name)
    check_repository(repository)
    if not tag and not digest:
        tag = "latest"
    return ImageReference(registry, repository, tag, digest)
