"""SBOMs uploaded to the service: inventories without an image, matched like one."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from advisories.findings import match_analysis
from scans.choices import ImageKind, ScanState
from scans.engine.sbom import read_sbom
from scans.models import Image, ScanJob
from scans.services.findings import store_report
from scans.services.inventory import store_analysis


def scan_sbom(document: bytes) -> ScanJob:
    """Store the SBOM's packages as an image keyed by the document's digest, match them, keep the findings.

    Raises ValueError when the document is not a CycloneDX or SPDX JSON SBOM.
    """
    digest = "sha256:" + hashlib.sha256(document).hexdigest()
    work_root = Path(settings.VIGIL_WORK_DIR)
    work_root.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=work_root, suffix=".json") as upload:
        upload.write(document)
        upload.flush()
        analysis = read_sbom(Path(upload.name))
    with transaction.atomic():
        image, _ = Image.objects.get_or_create(digest=digest, defaults={"kind": ImageKind.SBOM})
        store_analysis(image, analysis)
        now = timezone.now()
        job = ScanJob.objects.create(
            image=image, reference=f"sbom@{digest}", state=ScanState.DONE, started_at=now, finished_at=now
        )
        store_report(job, match_analysis(analysis))
    return job
