"""The catalogers the engine runs, in one explicit list.

A new cataloger is added here and nowhere else; modules never register
themselves on import.
"""

from __future__ import annotations

from scans.engine.catalogers.apk import ApkCataloger
from scans.engine.catalogers.base import Cataloger
from scans.engine.catalogers.dpkg import DpkgCataloger
from scans.engine.catalogers.rpm import RpmCataloger


def default_catalogers() -> tuple[Cataloger, ...]:
    return (DpkgCataloger(), ApkCataloger(), RpmCataloger())
