"""An in-memory kept file, for calling a cataloger's parse() without a layer reader."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO


@dataclass
class MemFile:
    path: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    def read_bytes(self) -> bytes:
        return self.data

    def open(self) -> BinaryIO:
        return io.BytesIO(self.data)

    def local_path(self) -> str:
        raise NotImplementedError("no cataloger of text files needs a local path")

    @classmethod
    def from_fixture(cls, root: Path, path: str) -> MemFile:
        return cls(path, (root / path).read_bytes())
