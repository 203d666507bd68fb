"""The FIRST EPSS importer on the samples in ../shared/feeds/samples/epss, gzip-compressed and plain, and on
broken files."""

from __future__ import annotations

import gzip
import io
import shutil
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from advisories.importers.base import Document, DocumentError, EpssScore, Rejected
from advisories.importers.documents import iter_documents
from advisories.importers.epss import EpssImporter, parse_epss, parse_model_line

REPO = Path(__file__).resolve().parents[2]
EPSS = REPO.parent / "shared" / "feeds" / "samples" / "epss"
SAMPLES = {"claircore-data.csv": date(2024, 10, 25), "vunnel-example-1.csv": date(2025, 2, 20)}
COMMENT = "#model_version:v2023.03.01,score_date:2025-02-20T00:00:00+0000\n"
HEADER = "cve,epss,percentile\n"


def sample(name: str) -> Path:
    path = EPSS / name
    if not path.exists():
        pytest.skip(f"{path} is missing: the shared feeds must sit beside the repository (../shared/feeds)")
    return path


def parse(data: bytes, name: str = "epss.csv") -> list[EpssScore | Rejected]:
    return list(EpssImporter().parse(Document(name, lambda: io.BytesIO(data))))


def raw_rows(path: Path) -> list[tuple[str, float, float]]:
    """The data rows, read with str.split: everything after the comment line and the header."""
    lines = path.read_text().splitlines()[2:]
    return [(cve, float(score), float(percentile)) for cve, score, percentile in (line.split(",") for line in lines)]


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_samples(name):
    path = sample(name)
    expected = raw_rows(path)
    items = parse(path.read_bytes(), name)
    assert all(isinstance(i, EpssScore) for i in items), [i for i in items if isinstance(i, Rejected)]
    assert [(i.cve_id, i.score, i.percentile) for i in items] == expected
    assert {(i.date, i.model_version) for i in items} == {(SAMPLES[name], "v2023.03.01")}


def test_sample_counts():
    assert {name: len(raw_rows(sample(name))) for name in SAMPLES} == {
        "claircore-data.csv": 29,  # 30 newlines; the last row has none
        "vunnel-example-1.csv": 5,
    }


def test_gzip_as_published_gives_the_same_scores(tmp_path):
    for name in SAMPLES:
        with sample(name).open("rb") as src, gzip.open(tmp_path / f"{name}.gz", "wb") as dst:
            shutil.copyfileobj(src, dst)
    importer = EpssImporter()
    documents = [d for d in iter_documents(tmp_path) if importer.accepts(d.name)]
    assert sorted(d.name for d in documents) == sorted(f"{n}.gz" for n in SAMPLES)
    for document in documents:
        plain = parse(sample(document.name.removesuffix(".gz")).read_bytes())
        assert list(importer.parse(document)) == plain


def test_accepts_csv_and_gzip_csv():
    importer = EpssImporter()
    assert importer.source == "epss"
    assert importer.default_url.endswith(".csv.gz")
    assert importer.accepts("epss_scores-2025-02-20.csv.gz")
    assert importer.accepts("data.CSV")
    assert not importer.accepts("README.md")


def test_the_comment_line():
    assert parse_model_line(COMMENT) == ("v2023.03.01", date(2025, 2, 20))
    assert parse_model_line("#model_version:v2025.03.14,score_date:2025-03-20\r\n") == (
        "v2025.03.14",
        date(2025, 3, 20),
    )


@pytest.mark.parametrize(
    "text",
    [HEADER + "CVE-2024-0001,0.1,0.2\n", "#model_version:v1\n" + HEADER, "#score_date:someday\n" + HEADER, ""],
    ids=["no comment line", "no score_date", "bad score_date", "empty file"],
)
def test_without_a_dated_comment_line_the_file_is_one_rejected(text):
    (item,) = parse(text.encode(), "epss.csv")
    assert isinstance(item, Rejected)
    assert item.id == "epss.csv"


def test_without_the_header_the_file_is_one_rejected():
    (item,) = parse((COMMENT + "CVE-2024-0001,0.1,0.2\n").encode())
    assert isinstance(item, Rejected)
    assert "header" in item.reason


def test_bad_rows_are_rejected_and_blank_lines_skipped():
    rows = [
        "CVE-2024-0001,0.00383,0.73075",
        "",
        "CVE-2024-0002,abc,0.5",
        "CVE-2024-0003,nan,0.5",
        "CVE-2024-0004,0.5,inf",
        "CVE-2024-0005,1.5,0.5",
        "CVE-2024-0006,0.5,-0.1",
        "XYZ-1,0.5,0.5",
        ",0.5,0.5",
        "CVE-2024-0009,0.5",
        "CVE-2024-0010,0.5,0.5,extra",
        "   ",
        "CVE-2024-0012,1,0",
    ]
    items = parse((COMMENT + HEADER + "\r\n".join(rows) + "\r\n").encode(), "epss.csv")
    assert [type(i).__name__ for i in items] == ["EpssScore"] + ["Rejected"] * 9 + ["EpssScore"]
    rejected = {i.id: i.reason for i in items if isinstance(i, Rejected)}
    assert set(rejected) == {"CVE-2024-0002", "CVE-2024-0003", "CVE-2024-0004", "CVE-2024-0005", "CVE-2024-0006",
                             "XYZ-1", "epss.csv:11", "CVE-2024-0009", "CVE-2024-0010"}  # fmt: skip
    assert "not a number" in rejected["CVE-2024-0002"]
    assert "not a finite number" in rejected["CVE-2024-0003"]
    assert "outside 0-1" in rejected["CVE-2024-0005"]
    assert "3" in rejected["CVE-2024-0009"]
    assert items[-1] == EpssScore("CVE-2024-0012", 1.0, 0.0, date(2025, 2, 20), "v2023.03.01")


def test_a_truncated_gzip_is_a_document_error():
    data = gzip.compress((COMMENT + HEADER + "CVE-2024-0001,0.1,0.2\n" * 5000).encode())
    with pytest.raises(DocumentError, match="epss.csv.gz"):
        parse(data[: len(data) // 2], "epss.csv.gz")


@pytest.mark.parametrize(
    "data", [b"\x1f\x8b\x08\x00garbage", (COMMENT + HEADER + "CVE-2024-0001,0.1,0.2\n").encode() + b"\xff\xfe\n"]
)
def test_a_garbled_file_is_a_document_error(data):
    with pytest.raises(DocumentError):
        parse(data)


def test_parse_epss_reads_any_lines():
    lines = [COMMENT, HEADER, "CVE-2024-0001,0.5,0.25\n"]
    assert list(parse_epss(lines, "x")) == [EpssScore("CVE-2024-0001", 0.5, 0.25, date(2025, 2, 20), "v2023.03.01")]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(codec="utf-8"), max_size=40), max_size=12))
def test_untrusted_rows_never_raise(rows):
    items = parse((COMMENT + HEADER + "\n".join(rows)).encode())
    assert all(isinstance(i, EpssScore | Rejected) for i in items)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_untrusted_bytes_give_scores_rejections_or_a_document_error(data):
    try:
        items = parse(data)
    except DocumentError:
        return
    assert all(isinstance(i, EpssScore | Rejected) for i in items)
