"""The rpm cataloger and its database readers, checked against rpm itself.

Expected packages always come from real rpm: run here on the corpus databases
(Debian's rpm 4.18 reads BDB with bdb_ro and SQLite), or saved next to a
fixture by the script that made it (NDB needs an rpm built with ndb; see
fixtures/rpm/README.md).
"""

from __future__ import annotations

import contextlib
import functools
import io
import shutil
import sqlite3
import struct
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scans.engine.catalogers.base import Cataloger
from scans.engine.catalogers.rpm import RpmCataloger, split_source_rpm
from scans.engine.errors import ParseError
from scans.engine.models import Package
from scans.engine.rpmdb import Header, iter_bdb_blobs, iter_ndb_blobs, iter_sqlite_blobs
from scans.engine.rpmdb import header as tags

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / ".." / "shared" / "corpus"
FIXTURES = Path(__file__).parent / "fixtures" / "rpm"
RPM = Path("/usr/bin/rpm")
DB_LOAD = shutil.which("db5.3_load")
QUERY_TAGS = ("NAME", "EPOCH", "VERSION", "RELEASE", "ARCH", "SOURCERPM", "MODULARITYLABEL", "LICENSE")
QUERY = "\\t".join(f"%{{{tag}}}" for tag in QUERY_TAGS) + "\\n"  # rpm reads the escapes
NONE = "(none)"  # what rpm's query format prints for a missing tag

needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"the image corpus is not at {CORPUS}")
needs_rpm = pytest.mark.skipif(not RPM.exists(), reason=f"rpm is not installed at {RPM}")
needs_db_load = pytest.mark.skipif(DB_LOAD is None, reason="db5.3_load (Debian package db5.3-util) is missing")


@dataclass
class LocalFile:
    """A FileContent kept on local disk, as the layer reader keeps big files."""

    path: str
    local: Path
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.size = self.local.stat().st_size

    def read_bytes(self) -> bytes:
        return self.local.read_bytes()

    def open(self) -> BinaryIO:
        return self.local.open("rb")

    def local_path(self) -> str:
        return str(self.local)


@dataclass
class InMemoryFile:
    """A FileContent held in memory, as the layer reader keeps small files."""

    path: str
    data: bytes
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.size = len(self.data)

    def read_bytes(self) -> bytes:
        return self.data

    def open(self) -> BinaryIO:
        return io.BytesIO(self.data)

    def local_path(self) -> str:
        raise AssertionError("only SQLite needs a local path")


def parse(root: Path, path: str) -> list[Package]:
    cataloger = RpmCataloger()
    assert cataloger.wants(path)
    return cataloger.parse(LocalFile(path, root / path))


def rpm_listing(dbpath: Path, backend: str) -> list[tuple[str, ...]]:
    """What Debian's rpm lists for a database, one row per header, sorted."""
    result = subprocess.run(  # noqa: S603 - fixed program, arguments from the test
        [str(RPM), "--dbpath", str(dbpath), "--define", f"_db_backend {backend}", "-qa", "--qf", QUERY],
        capture_output=True,
        text=True,
        check=True,
    )
    return rows(result.stdout)


def rows(text: str) -> list[tuple[str, ...]]:
    return sorted(tuple(line.split("\t")) for line in text.splitlines())


def as_rpm_rows(packages: list[Package]) -> list[tuple[str, ...]]:
    """Our packages in rpm_listing's shape."""
    result = []
    for p in packages:
        assert p.type == "rpm"
        assert p.version.endswith("-" + p.release)
        source = f"{p.source_name}-{p.source_version}.src.rpm" if p.source_name else NONE
        row = (
            p.name,
            NONE if p.epoch is None else str(p.epoch),
            p.version.removesuffix("-" + p.release),
            p.release,
            p.arch or NONE,
            source,
            p.modularity_label or NONE,
            p.licenses[0] if p.licenses else NONE,
        )
        result.append(row)
    return sorted(result)


def without_keys(listing: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """rpm lists its signing keys as gpg-pubkey entries, which the cataloger skips."""
    assert any(row[0] == "gpg-pubkey" for row in listing), "the database should hold a key to skip"
    return [row for row in listing if row[0] != "gpg-pubkey"]


def extract(image: str, member: str, root: Path) -> Path:
    """Copy one file out of a corpus image's single layer to root/member."""
    target = root / member
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(CORPUS / f"{image}.docker.tar") as archive:
        layer = next(m for m in archive.getmembers() if m.name.endswith("/layer.tar"))
        layer_file = archive.extractfile(layer)
        assert layer_file is not None
        with tarfile.open(fileobj=layer_file) as rootfs:
            source = rootfs.extractfile(member)
            assert source is not None
            target.write_bytes(source.read())
    return target


def write_bdb(blobs: list[bytes], target: Path, byte_order: str, page_size: int) -> None:
    """A BDB hash Packages file as rpm lays it out, written by Berkeley DB itself."""
    dump = [f"VERSION=3\nformat=bytevalue\ntype=hash\ndb_pagesize={page_size}\nHEADER=END\n"]
    records = [(0, struct.pack("<I", len(blobs)))] + list(enumerate(blobs, start=1))
    for key, value in records:  # record 0 is rpm's bookkeeping record, which it skips
        dump.append(f" {struct.pack('<I', key).hex()}\n {value.hex()}\n")
    dump.append("DATA=END\n")
    assert DB_LOAD is not None
    subprocess.run(  # noqa: S603 - fixed program, arguments from the test
        [DB_LOAD, "-c", f"db_lorder={byte_order}", str(target)], input="".join(dump), text=True, check=True
    )


def make_header(entries: list[tuple[int, int, bytes]]) -> bytes:
    """A header blob with each entry's data stored one after another."""
    index, data = b"", b""
    for tag, type_, value in entries:
        data += b"\0" * (-len(data) % 4)
        index += struct.pack(">IIII", tag, type_, len(data), 1)
        data += value
    return struct.pack(">II", len(entries), len(data)) + index + data


def make_ndb(blobs: list[bytes]) -> bytes:
    """An NDB Packages.db as rpmpkg.c lays it out: one slot page, then the blobs."""
    slots, body = [], b""
    block = 4096 // 16
    for pkgidx, blob in enumerate(blobs, start=1):
        blkcnt = -(-(16 + len(blob) + 12) // 16)
        pad = blkcnt * 16 - 16 - len(blob) - 12
        slots.append(struct.pack("<4sIII", b"Slot", pkgidx, block, blkcnt))
        body += struct.pack("<4sIII", b"BlbS", pkgidx, 0, len(blob)) + blob + b"\0" * pad
        body += struct.pack("<II4s", 0, len(blob), b"BlbE")
        block += blkcnt
    page = struct.pack("<4sIIII", b"RpmP", 0, 0, 1, len(blobs) + 1) + b"\0" * 12 + b"".join(slots)
    page += struct.pack("<4sIII", b"Slot", 0, 0, 0) * ((4096 - len(page)) // 16)
    return page + body


# -- which files, and small parts ------------------------------------------------


@pytest.mark.parametrize("directory", ["var/lib/rpm", "usr/lib/sysimage/rpm"])
@pytest.mark.parametrize("name", ["Packages", "Packages.db", "rpmdb.sqlite"])
def test_wants_the_three_databases_in_both_places(directory: str, name: str) -> None:
    assert RpmCataloger().wants(f"{directory}/{name}")


@pytest.mark.parametrize(
    "path",
    [
        "var/lib/rpm/Name",
        "var/lib/rpm/rpmdb.sqlite-wal",
        "var/lib/rpm/Index.db",
        "/var/lib/rpm/Packages",
        "usr/share/rpm/Packages",
        "var/lib/dpkg/status",
        "var/lib/rpm/Packages/x",
    ],
)
def test_wants_nothing_else(path: str) -> None:
    assert not RpmCataloger().wants(path)


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("util-linux-2.32.1-42.el8_8.src.rpm", ("util-linux", "2.32.1-42.el8_8")),
        ("perl-Foo-Bar-1.0-3.module+el8+1.nosrc.rpm", ("perl-Foo-Bar", "1.0-3.module+el8+1")),
        ("", ("", "")),
        ("nodashes.src.rpm", ("", "")),
        ("only-one.src.rpm", ("", "")),
    ],
)
def test_split_source_rpm(filename: str, expected: tuple[str, str]) -> None:
    assert split_source_rpm(filename) == expected


def test_cataloger_is_named_and_versioned() -> None:
    cataloger: Cataloger = RpmCataloger()  # mypy checks the protocol here

    assert (cataloger.name, cataloger.version) == ("rpm", 1)


# -- real databases against real rpm --------------------------------------------


@needs_corpus
@needs_rpm
def test_bdb_corpus_database_matches_rpm(tmp_path: Path) -> None:
    database = extract("rpm-rhel8-bdb", "var/lib/rpm/Packages", tmp_path)
    expected = rpm_listing(database.parent, "bdb_ro")

    packages = parse(tmp_path, "var/lib/rpm/Packages")

    assert len(expected) == 1
    assert as_rpm_rows(packages) == expected
    (libuuid,) = packages
    assert libuuid.path == "var/lib/rpm/Packages"
    assert libuuid.source_name == "util-linux"


@needs_corpus
@needs_rpm
def test_sqlite_corpus_database_matches_rpm(tmp_path: Path) -> None:
    ours, theirs = tmp_path / "ours", tmp_path / "rpm"
    database = extract("rpm-amzn2023", "var/lib/rpm/rpmdb.sqlite", ours)
    (theirs / "rpmdb").mkdir(parents=True)
    shutil.copy(database, theirs / "rpmdb" / "rpmdb.sqlite")
    expected = rpm_listing(theirs / "rpmdb", "sqlite")

    packages = parse(ours, "var/lib/rpm/rpmdb.sqlite")

    assert len(expected) == 103
    assert as_rpm_rows(packages) == without_keys(expected)
    # Opened immutable: no journal, -wal or -shm file appears beside it.
    assert [p.name for p in database.parent.iterdir()] == ["rpmdb.sqlite"]


@pytest.mark.parametrize(
    "database",
    ["ndb/usr/lib/sysimage/rpm/Packages.db", "bdb-be/var/lib/rpm/Packages"],
)
def test_fixture_matches_the_listing_rpm_made_of_it(database: str) -> None:
    fixture, path = database.split("/", 1)
    expected = rows((FIXTURES / fixture / "rpm-qa.tsv").read_text())

    packages = parse(FIXTURES / fixture, path)

    assert as_rpm_rows(packages) == without_keys(expected)
    modular = next(p for p in packages if p.name == "vigil-fixture-modular")
    assert modular.epoch == 2
    assert modular.modularity_label.startswith("vigil-fixture:1.2:")


@needs_rpm
def test_big_endian_fixture_matches_rpm_now(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "bdb-be/var/lib/rpm/Packages", tmp_path / "Packages")
    expected = rpm_listing(tmp_path, "bdb_ro")

    assert as_rpm_rows(parse(FIXTURES / "bdb-be", "var/lib/rpm/Packages")) == without_keys(expected)


@needs_corpus
@needs_rpm
@needs_db_load
@pytest.mark.parametrize(("byte_order", "page_size"), [("1234", 4096), ("4321", 512), ("4321", 65536)])
def test_bdb_with_many_packages_in_either_byte_order_matches_rpm(
    tmp_path: Path, byte_order: str, page_size: int
) -> None:
    source = extract("rpm-amzn2023", "var/lib/rpm/rpmdb.sqlite", tmp_path / "source")
    with sqlite3.connect(source) as connection:
        blobs = [bytes(row[0]) for row in connection.execute("SELECT blob FROM Packages ORDER BY hnum")]
    database = tmp_path / "var/lib/rpm/Packages"
    database.parent.mkdir(parents=True)
    write_bdb(blobs, database, byte_order, page_size)
    expected = rpm_listing(database.parent, "bdb_ro")

    packages = parse(tmp_path, "var/lib/rpm/Packages")

    assert len(expected) == 103
    assert as_rpm_rows(packages) == without_keys(expected)


# -- malformed input -------------------------------------------------------------


@pytest.mark.parametrize("path", ["var/lib/rpm/Packages", "var/lib/rpm/Packages.db", "var/lib/rpm/rpmdb.sqlite"])
@pytest.mark.parametrize("content", [b"", b"\0" * 4096, b"not a database" * 500])
def test_garbage_is_a_parse_error_naming_the_file(tmp_path: Path, path: str, content: bytes) -> None:
    (tmp_path / path).parent.mkdir(parents=True)
    (tmp_path / path).write_bytes(content)

    with pytest.raises(ParseError, match=path):
        parse(tmp_path, path)


def test_header_without_name_is_a_parse_error() -> None:
    blob = make_header([(tags.TAG_VERSION, 6, b"1\0")])

    with pytest.raises(ParseError, match="no tag 1000"):
        RpmCataloger().parse(InMemoryFile("var/lib/rpm/Packages.db", make_ndb([blob])))


def test_made_ndb_is_read_back() -> None:
    """make_ndb follows the format closely enough for the property tests to start from it."""
    blobs = [make_header([(tags.TAG_NAME, 6, b"a\0")]), make_header([(tags.TAG_NAME, 6, b"b\0")])]
    assert list(iter_ndb_blobs(io.BytesIO(make_ndb(blobs)))) == blobs


def test_ndb_slots_sharing_one_blob_stop_early() -> None:
    blob = make_header([(tags.TAG_NAME, 6, b"a\0")])
    data = bytearray(make_ndb([blob]))
    first_slot = data[32:48]
    data[48:4096] = first_slot * ((4096 - 48) // 16)  # every slot names the same blob

    with pytest.raises(ParseError, match="overlapping"):
        list(iter_ndb_blobs(io.BytesIO(bytes(data))))


def test_bdb_page_that_links_to_itself_stops_early() -> None:
    data = bytearray((FIXTURES / "bdb-be/var/lib/rpm/Packages").read_bytes())
    page_size = 16384
    data[page_size + 16 : page_size + 20] = struct.pack(">I", 1)  # bucket 0's page 1: next page 1

    with pytest.raises(ParseError, match="loop"):
        list(iter_bdb_blobs(io.BytesIO(bytes(data))))


# -- property tests: arbitrary, truncated and bit-flipped bytes ------------------

HEADER_TAGS = [v for k, v in vars(tags).items() if k.startswith("TAG_")]
NDB_FIXTURE = (FIXTURES / "ndb/usr/lib/sysimage/rpm/Packages.db").read_bytes()
BDB_FIXTURE = (FIXTURES / "bdb-be/var/lib/rpm/Packages").read_bytes()
HEADERS = list(iter_ndb_blobs(io.BytesIO(NDB_FIXTURE)))
# A deadline flags any input that makes a reader crawl; page and byte budgets
# keep every loop linear in the file's size.
FUZZ = settings(max_examples=150, deadline=timedelta(seconds=2), suppress_health_check=[HealthCheck.too_slow])


@st.composite
def damaged(draw: st.DrawFn, original: bytes) -> bytes:
    """The original with a few bytes changed (often in its first pages) and maybe cut short."""
    data = bytearray(original)
    hot = min(len(data), 4096 * 2)
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.one_of(st.integers(0, hot - 1), st.integers(0, len(data) - 1)))
        data[position] ^= draw(st.integers(1, 255))
    if draw(st.booleans()):
        del data[draw(st.integers(0, len(data))) :]
    return bytes(data)


def only_parse_errors(read: Callable[[], object]) -> None:
    with contextlib.suppress(ParseError):
        read()


def read_header(blob: bytes) -> None:
    header = Header(blob)
    for tag in HEADER_TAGS:
        header.string(tag)
        header.int32(tag)


@FUZZ
@given(st.binary(max_size=600))
def test_header_parser_takes_arbitrary_bytes(blob: bytes) -> None:
    only_parse_errors(lambda: read_header(blob))


@FUZZ
@given(st.sampled_from(HEADERS).flatmap(damaged))
def test_header_parser_takes_damaged_headers(blob: bytes) -> None:
    only_parse_errors(lambda: read_header(blob))


@FUZZ
@given(
    st.lists(
        st.tuples(
            st.sampled_from(HEADER_TAGS),
            st.integers(0, 12),
            st.integers(0, 2**32 - 1) | st.integers(0, 64),
            st.integers(0, 2**32 - 1) | st.integers(0, 4),
        ),
        max_size=12,
    ),
    st.binary(max_size=64),
)
def test_header_parser_takes_any_index(entries: list[tuple[int, int, int, int]], data: bytes) -> None:
    index = b"".join(struct.pack(">IIII", *entry) for entry in entries)
    blob = struct.pack(">II", len(entries), len(data)) + index + data
    only_parse_errors(lambda: read_header(blob))


def drain(blobs: Iterator[bytes]) -> None:
    for blob in blobs:
        read_header(blob)


@FUZZ
@given(damaged(BDB_FIXTURE) | st.binary(max_size=2048).map(lambda b: bytes(12) + b"\x61\x15\x06\x00" + b))
def test_bdb_reader_takes_damaged_files(data: bytes) -> None:
    only_parse_errors(lambda: drain(iter_bdb_blobs(io.BytesIO(data))))


@FUZZ
@given(damaged(NDB_FIXTURE) | st.sampled_from(HEADERS).map(lambda b: make_ndb([b, b])).flatmap(damaged))
def test_ndb_reader_takes_damaged_files(data: bytes) -> None:
    only_parse_errors(lambda: drain(iter_ndb_blobs(io.BytesIO(data))))


@functools.cache
def small_sqlite_database() -> bytes:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "rpmdb.sqlite"
        with sqlite3.connect(path) as connection:
            connection.execute("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)")
            connection.executemany("INSERT INTO Packages (blob) VALUES (?)", [(b,) for b in HEADERS])
        connection.close()
        return path.read_bytes()


@FUZZ
@given(st.data())
def test_sqlite_reader_takes_damaged_files(data: st.DataObject) -> None:
    damaged_file = data.draw(damaged(small_sqlite_database()))
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "rpmdb.sqlite"
        path.write_bytes(damaged_file)
        only_parse_errors(lambda: drain(iter_sqlite_blobs(str(path))))


@pytest.mark.parametrize(
    "schema",
    [
        "CREATE VIEW Packages AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
        "SELECT i AS hnum, x'00' AS blob FROM n",
        "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, x BLOB, blob BLOB AS (zeroblob(100000000)))",
        "CREATE TABLE Other (hnum INTEGER PRIMARY KEY, blob BLOB)",
    ],
)
def test_sqlite_reader_refuses_tables_that_compute(tmp_path: Path, schema: str) -> None:
    path = tmp_path / "rpmdb.sqlite"
    with sqlite3.connect(path) as connection:
        connection.execute(schema)
    connection.close()

    with pytest.raises(ParseError, match="Packages"):
        list(iter_sqlite_blobs(str(path)))


@FUZZ
@given(damaged(NDB_FIXTURE))
def test_cataloger_names_the_file_of_any_damage(data: bytes) -> None:
    file = InMemoryFile("usr/lib/sysimage/rpm/Packages.db", data)
    try:
        RpmCataloger().parse(file)
    except ParseError as err:
        message = str(err)
    else:
        return
    assert message.startswith(file.path + ": ")


# -- no Django -------------------------------------------------------------------


def test_rpm_modules_import_no_django() -> None:
    code = (
        "import sys, scans.engine.catalogers.rpm, scans.engine.rpmdb; "
        "assert 'django' not in sys.modules, sorted(m for m in sys.modules if m.startswith('django'))"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)  # noqa: S603 - our own interpreter
