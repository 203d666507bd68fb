"""Analysis of one image: read its layers once, detect its distro, catalog it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from scans.engine import distro as distro_mod
from scans.engine.catalogers import default_catalogers
from scans.engine.catalogers.base import Cataloger
from scans.engine.errors import ParseError
from scans.engine.layers import KeptFile, LayerReader, Limits, Node
from scans.engine.models import Analysis, Layer, Package
from scans.engine.purls import OS_TYPES, purl_for
from scans.engine.sources import ImageSource

_DISTRO_FILES = frozenset(distro_mod.RELEASE_FILES)


class Analyzer:
    """Runs the layer reader and the catalogers over one image source."""

    def __init__(
        self, workdir: Path, *, limits: Limits | None = None, catalogers: Sequence[Cataloger] | None = None
    ) -> None:
        self.workdir = workdir
        self.limits = limits or Limits()
        self.catalogers = tuple(catalogers) if catalogers is not None else default_catalogers()

    def wants(self, path: str) -> bool:
        return path in _DISTRO_FILES or any(c.wants(path) for c in self.catalogers)

    def run(self, source: ImageSource) -> Analysis:
        reader = LayerReader(self.wants, self.workdir, self.limits)
        if source.rootfs is not None:
            reader.apply_directory(source.rootfs, Layer(0, "", ""))
        reader.apply_all(source.blobs)
        warnings = list(source.warnings)
        files = self._resolve_wanted(reader, source)
        tree = reader.tree
        distro = distro_mod.detect(
            lambda p: files[p].read_bytes() if p in files else None,
            has_dpkg_status_dir=tree.get(distro_mod.DPKG_STATUS_DIR) is not None,
        )
        layers = {layer.index: layer for layer in source.meta.layers}
        packages: list[Package] = []
        for cataloger in self.catalogers:
            for path in sorted(files):
                if cataloger.wants(path) or path in getattr(cataloger, "paths", ()):
                    packages.extend(self._catalog(cataloger, files[path], tree.history, layers, warnings))
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

    # -- finding the files -------------------------------------------------

    def _resolve_wanted(self, reader: LayerReader, source: ImageSource) -> dict[str, KeptFile]:
        """Each wanted path of the final tree mapped to the bytes it resolves to.

        Links are followed inside the image root. A link can lead to a file
        the first pass did not keep (say `lib` -> `usr/lib`); those files are
        read in a second pass over just the layers that hold them.
        """
        tree = reader.tree
        explicit = [p for c in self.catalogers for p in getattr(c, "paths", ())]
        candidates = {path for path, node in tree.walk() if node.kind != "dir" and self.wants(path)}
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
        return {path: node.kept for path, (_, node) in resolved.items() if node.kept is not None}

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
