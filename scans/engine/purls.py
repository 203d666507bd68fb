"""Package URLs for OS packages, with the distro release as a qualifier.

Later stages match advisories by these purls, so the distro qualifier must
name the release the package was built for: `distro=debian-12` for deb,
`distro=centos-7` for rpm (os-release ID and VERSION_ID), and
`distro=3.11.13` for apk (the Alpine release alone, as Trivy writes it).
"""

from __future__ import annotations

from packageurl import PackageURL

from scans.engine.models import Distro, Package

OS_TYPES = frozenset({"deb", "apk", "rpm"})
# Namespaces used when an image has no release file to name its distro.
_FALLBACK_NAMESPACE = {"deb": "debian", "apk": "alpine", "rpm": "redhat"}


def distro_qualifier(package_type: str, distro: Distro | None) -> str:
    if distro is None or not distro.version_id:
        return ""
    if package_type == "apk":
        return distro.version_id
    return f"{distro.id}-{distro.version_id}"


def purl_for(package: Package, distro: Distro | None) -> str:
    namespace = distro.id if distro is not None else _FALLBACK_NAMESPACE.get(package.type, "")
    qualifiers: dict[str, str] = {}
    if package.arch:
        qualifiers["arch"] = package.arch
    if package.type == "rpm":
        qualifiers["epoch"] = str(package.epoch or 0)
    qualifier = distro_qualifier(package.type, distro)
    if qualifier:
        qualifiers["distro"] = qualifier
    return PackageURL(
        type=package.type, namespace=namespace, name=package.name, version=package.version, qualifiers=qualifiers
    ).to_string()


def language_purl(package_type: str, name: str, version: str, **qualifiers: str) -> str:
    """The purl of a language package from its name as the ecosystem writes it.

    Maven `group:artifact`, npm `@scope/name`, Go `host/path/module`,
    Composer `vendor/package` carry their namespace in the name; the purl
    spec puts it in the namespace field.
    """
    namespace = None
    if package_type == "maven" and ":" in name:
        namespace, name = name.split(":", 1)
    elif package_type in ("npm", "golang", "composer") and "/" in name:
        namespace, name = name.rsplit("/", 1)
    return PackageURL(
        type=package_type, namespace=namespace, name=name, version=version or None, qualifiers=qualifiers or None
    ).to_string()
