"""Analysis of one image: read its layers once, detect its distro, catalog it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from scans.engine import distro as distro_mod
from scans.engine.catalogers import default_catalogers
from scans.engine.catalogers.base import Cataloger, ExecutableCataloger
from scans.engine.errors import ParseError
from scans.engine.layers import KeptFile, LayerReader, Limits, Node, Tree
from scans.engine.models import Analysis, Layer, Package
from scans.engine.purls import OS_TYPES, purl_for
from scans.engine.sources import ImageSource

_DISTRO_FILES = frozenset(distro_mod.RELEASE_FILES)


@dataclass
class _Inspection:
    """What the catalogers of binaries found in one binary, taken while the reader held its bytes."""

    packages: list[Package] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class Analyzer:
    """Runs the layer reader and the catalogers over one image source."""

    def __init__(
        self, workdir: Path, *, limits: Limits | None = None, catalogers: Sequence[Cataloger] | None = None
    ) -> None:
        self.workdir = workdir
        self.limits = limits or Limits()
        self.catalogers = tuple(catalogers) if catalogers is not None else default_catalogers()
        self._binary_catalogers = tuple(c for c in self.catalogers if isinstance(c, ExecutableCataloger))

    def wants(self, path: str) -> bool:
        return path in _DISTRO_FILES or any(c.wants(path) for c in self.catalogers)

    def wants_executable(self, path: str, size: int) -> bool:
        return any(c.wants_executable(path, size) for c in self._binary_catalogers)

    def run(self, source: ImageSource) -> Analysis:
        # Without a cataloger of binaries the reader never sniffs: OS-only analysis costs what it did.
        sniff = self.wants_executable if self._binary_catalogers else None
        reader = LayerReader(self.wants, self.workdir, self.limits, sniff, self._inspect)
        if source.rootfs is not None:
            reader.apply_directory(source.rootfs, Layer(0, "", ""))
        reader.apply_all(source.blobs)
        warnings = list(source.warnings)
        files, binaries = self._resolve_wanted(reader, source)
        tree = reader.tree
        distro = distro_mod.detect(
            lambda p: files[p].read_bytes() if p in files else None,
            has_dpkg_status_dir=tree.get(distro_mod.DPKG_STATUS_DIR) is not None,
        )
        layers = {layer.index: layer for layer in source.meta.layers}
        packages = self._catalog_files(files, tree.history, layers, warnings)
        packages += self._binary_packages(binaries, layers, warnings)
        packages = self._drop_owned(packages, files, warnings)
        for package in packages:
            if package.type in OS_TYPES:  # language catalogers set their own purls
                package.purl = purl_for(package, distro)
        packages.sort(key=lambda p: (p.type, p.name, p.version, p.arch, p.path))
        return Analysis(
            image=source.meta,
            distro=distro,
            packages=packages,
            warnings=warnings + reader.stats.warnings,
            analyzers={c.name: c.version for c in self.catalogers},
        )

    def _catalog_files(
        self,
        files: dict[str, KeptFile],
        history: dict[str, list[KeptFile | None]],
        layers: dict[int, Layer],
        warnings: list[str],
    ) -> list[Package]:
        packages: list[Package] = []
        for cataloger in self.catalogers:
            found: list[Package] = []
            for path in sorted(files):
                if cataloger.wants(path) or path in getattr(cataloger, "paths", ()):
                    found.extend(self._catalog(cataloger, files[path], history, layers, warnings))
            merge = getattr(cataloger, "merge", None)
            # A cataloger that reads several kinds of file (installed trees and lockfiles)
            # reconciles them across the image.
            packages.extend(merge(found, files) if merge is not None else found)
        return packages

    @staticmethod
    def _binary_packages(binaries: dict[str, KeptFile], layers: dict[int, Layer], warnings: list[str]) -> list[Package]:
        packages: list[Package] = []
        for path in sorted(binaries):
            # Binaries were catalogued as they were read; those still in the final tree count.
            inspection = binaries[path].inspection
            if isinstance(inspection, _Inspection):
                for package in inspection.packages:
                    package.layer = layers.get(binaries[path].layer)
                packages.extend(inspection.packages)
                warnings.extend(inspection.warnings)
        return packages

    def _drop_owned(self, packages: list[Package], files: dict[str, KeptFile], warnings: list[str]) -> list[Package]:
        """Language packages whose file an OS package owns stay the OS package's: never reported twice.

        Ownership comes from the package managers' own file lists: dpkg's
        info/*.list (and distroless md5sums), apk's R: lines, rpm's file tags.
        """
        owned: set[str] = set()
        for cataloger in self.catalogers:
            owned_files = getattr(cataloger, "owned_files", None)
            if owned_files is None:
                continue
            for path, file in files.items():
                if cataloger.wants(path):
                    try:
                        owned |= owned_files(file)
                    except ParseError as exc:
                        warnings.append(f"{cataloger.name}: {exc}")
        if not owned:
            return packages
        return [p for p in packages if p.type in OS_TYPES or p.path.split("!/", 1)[0] not in owned]

    def _inspect(self, file: KeptFile) -> _Inspection:
        inspection = _Inspection()
        for cataloger in self._binary_catalogers:
            if cataloger.wants_executable(file.path, file.size):
                try:
                    inspection.packages.extend(cataloger.parse(file))
                except ParseError as exc:
                    inspection.warnings.append(f"{cataloger.name}: {exc}")
        return inspection

    # -- finding the files -------------------------------------------------

    def _resolve_wanted(
        self, reader: LayerReader, source: ImageSource
    ) -> tuple[dict[str, KeptFile], dict[str, KeptFile]]:
        """Each wanted path of the final tree mapped to the bytes it resolves to, and the binaries kept.

        Links are followed inside the image root. A link can lead to a file
        the first pass did not keep (say `lib` -> `usr/lib`); those files are
        read in a second pass over just the layers that hold them. Binaries
        are taken where they lie: a link to one would only report it twice.
        """
        tree = reader.tree
        explicit = [p for c in self.catalogers for p in getattr(c, "paths", ())]
        candidates, binaries = self._walk_kept(tree)
        candidates.update(explicit)
        candidates.update(_DISTRO_FILES)
        resolved: dict[str, tuple[str, Node]] = {}
        for path in candidates:
            found = tree.resolve(path)  # raises when a link leads out of the root
            if found is not None and found[1].kind == "file":
                resolved[path] = found
        missing: dict[int, set[str]] = defaultdict(set)
        for real, node in resolved.values():
            if node.kept is None:
                missing[node.layer].add(real)
        if missing:
            self._second_pass(reader, source, missing)
        files = {path: node.kept for path, (_, node) in resolved.items() if node.kept is not None}
        return files, binaries

    def _walk_kept(self, tree: Tree) -> tuple[set[str], dict[str, KeptFile]]:
        """Paths `wants` selects in the final tree, and the binaries in it."""
        candidates: set[str] = set()
        binaries: dict[str, KeptFile] = {}
        for path, node in tree.walk():
            if node.kept is not None and node.kept.executable:
                binaries[path] = node.kept
            elif node.kind == "file":
                if node.kept is not None:  # the reader kept it because `wants` said so: no need to ask again
                    candidates.add(path)
            elif node.kind != "dir" and self.wants(path):
                candidates.add(path)  # a link, resolved by the caller
        return candidates, binaries

    @staticmethod
    def _second_pass(reader: LayerReader, source: ImageSource, missing: dict[int, set[str]]) -> None:
        if source.rootfs is not None:
            reader.apply_directory(source.rootfs, Layer(0, "", ""), only=missing.get(0, set()))
            return
        for spec in source.blobs:
            if spec.layer.index in missing:
                reader.apply(spec, only=missing[spec.layer.index])

    # -- cataloging ----------------------------------------------------------

    def _catalog(
        self,
        cataloger: Cataloger,
        file: KeptFile,
        history: dict[str, list[KeptFile | None]],
        layers: dict[int, Layer],
        warnings: list[str],
    ) -> list[Package]:
        try:
            packages = cataloger.parse(file)
        except ParseError as exc:
            warnings.append(f"{cataloger.name}: {exc}")
            return []
        introduced = _introducing_layers(cataloger, file, history.get(file.path, []), packages)
        for package in packages:
            package.layer = layers.get(introduced.get(package.identity(), file.layer))
        return packages


def _introducing_layers(
    cataloger: Cataloger, file: KeptFile, versions: list[KeptFile | None], packages: Iterable[Package]
) -> dict[tuple[str, str, str, str], int]:
    """For each package, the oldest layer since which the database has listed it.

    Package databases are rewritten whole by every layer that installs
    something, so a package is credited to the oldest of the unbroken run
    of database versions (newest first) that list it.
    """
    introduced = {p.identity(): file.layer for p in packages}
    older = [v for v in versions if v is None or v.layer < file.layer]
    candidates = set(introduced)
    for version in reversed(older):
        if version is None or not candidates:
            break
        try:
            listed = {p.identity() for p in cataloger.parse(version)}
        except ParseError:
            break
        candidates &= listed
        for identity in candidates:
            introduced[identity] = version.layer
    return introduced
