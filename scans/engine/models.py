"""Plain data passed between the engine's parts and out to its callers."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Platform:
    os: str = "linux"
    architecture: str = "amd64"
    variant: str = ""

    @classmethod
    def parse(cls, text: str) -> Platform:
        """`linux/amd64`, `linux/arm64/v8`."""
        parts = text.strip().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"platform must look like os/arch[/variant], not {text!r}")
        return cls(*parts)

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True)
class Layer:
    """One filesystem layer, bottom first.

    `digest` is the blob digest as the manifest names it (compressed for
    registry and OCI images); `diff_id` is the digest of the uncompressed tar.
    A docker archive records only diff_ids, so there both are the diff_id.
    """

    index: int
    digest: str
    diff_id: str
    media_type: str = ""
    size: int = 0


@dataclass(frozen=True)
class Distro:
    """The operating system of an image, from its release files."""

    id: str  # os-release ID: debian, ubuntu, alpine, rhel, centos, amzn ...
    version_id: str = ""  # os-release VERSION_ID: 12, 3.11.13, 8.8, 2023
    codename: str = ""
    pretty_name: str = ""
    variant: str = ""  # "distroless" when dpkg status.d is the package database

    @property
    def major(self) -> str:
        return self.version_id.split(".")[0]


@dataclass
class Package:
    """An installed package as its package manager records it."""

    type: str  # purl type: deb, apk, rpm
    name: str
    # As the purl carries it: deb with its epoch (`1:2.3-4`), apk `1.2-r0`, rpm `<version>-<release>`
    # with the epoch kept apart in `epoch`.
    version: str
    arch: str = ""
    source_name: str = ""
    source_version: str = ""
    epoch: int | None = None  # rpm only; None when the header has no epoch
    release: str = ""  # rpm only
    modularity_label: str = ""  # rpm only
    licenses: tuple[str, ...] = ()
    # Language packages: whether a lockfile marks it as a development dependency, whether the
    # project depends on it directly (None: the source does not say), and the purls it depends
    # on where the source gives a graph.
    dev: bool = False
    direct: bool | None = None
    dependencies: tuple[str, ...] = ()
    path: str = ""  # the file the package was read from (image path, no leading slash; "a.jar!/b.jar" inside archives)
    layer: Layer | None = None  # the layer that introduced it
    purl: str = ""

    def identity(self) -> tuple[str, str, str, str]:
        return (self.type, self.name, self.version, self.arch)


@dataclass(frozen=True)
class ImageMeta:
    """What identifies the analysed image; digests are `sha256:<hex>`."""

    reference: str = ""  # what the user asked for: a path or a registry reference
    manifest_digest: str = ""
    config_digest: str = ""
    index_digest: str = ""  # set when a manifest list / OCI index led to the manifest
    media_type: str = ""
    platform: Platform = field(default_factory=Platform)
    repo_tags: tuple[str, ...] = ()
    layers: tuple[Layer, ...] = ()
    created: str = ""


@dataclass
class Analysis:
    """The engine's result: image identity, distro and package inventory."""

    image: ImageMeta
    distro: Distro | None
    packages: list[Package]
    warnings: list[str] = field(default_factory=list)
    analyzers: dict[str, int] = field(default_factory=dict)  # cataloger name -> version
