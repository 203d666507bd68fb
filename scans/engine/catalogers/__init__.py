"""The catalogers the engine runs, in one explicit list.

A new cataloger is added here and nowhere else; modules never register
themselves on import.
"""

from __future__ import annotations

from scans.engine.catalogers.apk import ApkCataloger
from scans.engine.catalogers.base import Cataloger
from scans.engine.catalogers.dotnet import DotnetCataloger
from scans.engine.catalogers.dpkg import DpkgCataloger
from scans.engine.catalogers.golang import GoCataloger
from scans.engine.catalogers.java import JavaCataloger
from scans.engine.catalogers.node import NodeCataloger
from scans.engine.catalogers.php import PhpCataloger
from scans.engine.catalogers.python import PythonCataloger
from scans.engine.catalogers.rpm import RpmCataloger
from scans.engine.catalogers.ruby import RubyCataloger
from scans.engine.catalogers.rust import RustCataloger


def os_catalogers() -> tuple[Cataloger, ...]:
    return (DpkgCataloger(), ApkCataloger(), RpmCataloger())


def default_catalogers() -> tuple[Cataloger, ...]:
    return (
        *os_catalogers(),
        PythonCataloger(),
        NodeCataloger(),
        JavaCataloger(),
        GoCataloger(),
        RustCataloger(),
        RubyCataloger(),
        PhpCataloger(),
        DotnetCataloger(),
    )
