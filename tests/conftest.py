from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CORPUS = SHARED / "corpus"


def corpus_file(name: str) -> Path:
    """A file of ../shared/corpus; the test is skipped, saying why, when it is absent."""
    path = CORPUS / name
    if not path.exists():
        pytest.skip(f"{path} is missing: the shared image corpus must sit beside the repository (../shared/corpus)")
    return path
