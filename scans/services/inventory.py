"""Inventories between the engine's dataclasses and the database.

An image is indexed once per digest (Clair's model); SBOMs are rendered
from the stored rows, so the image is never pulled again to answer a query.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from scans.choices import ImageKind
from scans.engine import models as engine
from scans.models import Image, ImageLayer, Package

# Fields a stored Package row and the engine's Package share, value for value.
_COPIED_FIELDS = (
    "type", "name", "version", "arch", "epoch", "release", "source_name", "source_version",
    "modularity_label", "path", "purl",
)  # fmt: skip


@transaction.atomic
def store_analysis(image: Image, analysis: engine.Analysis) -> None:
    """Replace the image's inventory with `analysis`."""
    meta, distro = analysis.image, analysis.distro
    image.manifest_digest = meta.manifest_digest
    image.config_digest = meta.config_digest
    image.platform = str(meta.platform)
    image.image_created = meta.created
    if meta.index_digest and meta.index_digest == image.digest:
        image.kind = ImageKind.INDEX
    image.os_id = distro.id if distro else ""
    image.os_version = distro.version_id if distro else ""
    image.os_codename = distro.codename if distro else ""
    image.os_pretty_name = distro.pretty_name if distro else ""
    image.os_variant = distro.variant if distro else ""
    image.analyzers = analysis.analyzers
    image.warnings = analysis.warnings
    image.analyzed_at = timezone.now()
    image.save()
    image.packages.all().delete()
    image.layers.all().delete()
    layers = ImageLayer.objects.bulk_create(
        ImageLayer(
            image=image,
            index=layer.index,
            digest=layer.digest,
            diff_id=layer.diff_id,
            media_type=layer.media_type,
            size=layer.size,
        )
        for layer in meta.layers
    )
    by_index = {layer.index: layer for layer in layers}
    Package.objects.bulk_create(
        (
            Package(
                image=image,
                layer=by_index.get(p.layer.index) if p.layer else None,
                licenses=list(p.licenses),
                **{name: getattr(p, name) for name in _COPIED_FIELDS},
            )
            for p in analysis.packages
        ),
        batch_size=1000,
    )


def _layer(row: ImageLayer) -> engine.Layer:
    return engine.Layer(row.index, row.digest, row.diff_id, row.media_type, row.size)


def analysis_from_image(image: Image) -> engine.Analysis:
    """The stored inventory as the engine's Analysis, for the SBOM writers."""
    layers = {row.id: _layer(row) for row in image.layers.all()}
    tags = tuple(
        f"{t.repository.registry.name}/{t.repository.name}:{t.name}"
        for t in image.tags.select_related("repository__registry").order_by("repository__name", "name")
    )
    platform = engine.Platform.parse(image.platform) if image.platform.count("/") in (1, 2) else engine.Platform()
    meta = engine.ImageMeta(
        reference=tags[0] if tags else image.digest,
        manifest_digest=image.manifest_digest or image.digest,
        config_digest=image.config_digest,
        index_digest=image.digest if image.kind == ImageKind.INDEX else "",
        media_type=image.media_type,
        platform=platform,
        repo_tags=tags,
        layers=tuple(sorted(layers.values(), key=lambda layer: layer.index)),
        created=image.image_created,
    )
    distro = (
        engine.Distro(image.os_id, image.os_version, image.os_codename, image.os_pretty_name, image.os_variant)
        if image.os_id
        else None
    )
    packages = [
        engine.Package(
            layer=layers.get(p.layer_id) if p.layer_id else None,
            licenses=tuple(p.licenses),
            **{name: getattr(p, name) for name in _COPIED_FIELDS},
        )
        for p in image.packages.all()
    ]
    return engine.Analysis(meta, distro, packages, list(image.warnings), dict(image.analyzers))
