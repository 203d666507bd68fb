"""Feed importers, listed explicitly here (no import-time registration).

Everything in this package is Django-free: parsers are plain functions over
documents, tested without a database.
"""

from __future__ import annotations

import importlib

from advisories.importers.base import Importer

# source name -> "module:Class"; imported on first use so one importer's
# dependencies never slow or break the others.
IMPORTERS: dict[str, str] = {
    "osv": "advisories.importers.osv:OsvImporter",
    "alpine-secdb": "advisories.importers.alpine_secdb:AlpineSecdbImporter",
    "debian-tracker": "advisories.importers.debian_tracker:DebianTrackerImporter",
    "ubuntu": "advisories.importers.ubuntu:UbuntuImporter",
    "redhat-csaf": "advisories.importers.redhat_csaf:RedHatCsafImporter",
    "nvd": "advisories.importers.nvd:NvdImporter",
    "kev": "advisories.importers.kev:KevImporter",
    "epss": "advisories.importers.epss:EpssImporter",
}


def get_importer(source: str) -> Importer:
    if source not in IMPORTERS:
        raise KeyError(f"unknown source {source!r}; choose one of {', '.join(IMPORTERS)}")
    module, _, name = IMPORTERS[source].partition(":")
    importer: Importer = getattr(importlib.import_module(module), name)()
    return importer
