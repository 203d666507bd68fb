"""The contract between the layer reader and the catalogers.

A cataloger declares the files it needs before any layer is opened
(`wants`), so that the reader streams every layer once and keeps only those
files. It then turns one such file into packages (`parse`). The reader calls
`wants` for every path of every layer, so it must be cheap: a set lookup or a
few string tests.

Binaries carry no tell-tale path, so a cataloger of binaries also declares
`wants_executable(path, size)`: the reader then keeps the executables it
accepts whose first bytes are a binary's magic number, and `parse` gets
those too.
"""

from __future__ import annotations

from typing import BinaryIO, Protocol, runtime_checkable

from scans.engine.models import Package


class FileContent(Protocol):
    """A file kept from a layer; its bytes live in memory or in the work dir."""

    path: str  # image path, no leading slash
    size: int

    def read_bytes(self) -> bytes: ...

    def open(self) -> BinaryIO: ...

    def local_path(self) -> str:
        """A path on local disk holding the bytes, for readers that need one (SQLite)."""
        ...


class Cataloger(Protocol):
    name: str
    # Bumped whenever the cataloger's output changes for the same input, so
    # that inventories made by an older version can be found and redone.
    version: int

    def wants(self, path: str) -> bool: ...

    def parse(self, file: FileContent) -> list[Package]:
        """Packages recorded in `file`. Raises ParseError when it is malformed."""
        ...


@runtime_checkable
class ExecutableCataloger(Cataloger, Protocol):
    """A cataloger that also reads binaries found anywhere in the image."""

    def wants_executable(self, path: str, size: int) -> bool:
        """Whether to keep a regular file with an executable bit at `path`; called before its bytes are read."""
        ...
