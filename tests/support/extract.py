"""Files of a corpus image, taken out with tarfile alone: a reference independent of the engine's reader."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path


def extract_files(archive: Path, dest: Path, wanted: Callable[[str], bool]) -> dict[str, Path]:
    """Regular files whose member name `wanted` accepts, from every layer in order (later layers win).

    Only for images whose later layers do not delete these files: whiteouts are not applied.
    """
    found: dict[str, Path] = {}
    with tarfile.open(archive) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))[0]  # a docker archive
        for index, layer_name in enumerate(manifest["Layers"]):
            blob = outer.extractfile(layer_name).read()
            if blob[:2] == b"\x1f\x8b":
                blob = gzip.decompress(blob)
            with tarfile.open(fileobj=io.BytesIO(blob)) as layer:
                for member in layer:
                    name = member.name.removeprefix("./").lstrip("/")
                    if member.isreg() and wanted(name):
                        target = dest / str(index) / name
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(layer.extractfile(member).read())
                        target.chmod(member.mode & 0o777)
                        found[name] = target
    return found
