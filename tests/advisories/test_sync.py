"""Syncing real feeds into PostgreSQL: counts, change detection, atomicity, air-gap bundles."""

from __future__ import annotations

import http.server
import json
import shutil
import tarfile
import threading
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from advisories.bundle import BundleError, export_bundle, import_bundle
from advisories.models import Advisory, Affected, Alias, Epss, FeedSync, Kev, Severity, SyncState
from advisories.sync import sync_feed
from tests.conftest import SHARED

FEEDS = SHARED / "feeds"
pytestmark = pytest.mark.django_db


def feed_path(relative: str) -> Path:
    path = FEEDS / relative
    if not path.exists():
        pytest.skip(f"{path} is missing: the shared feeds must sit beside the repository (../shared/feeds)")
    return path


# -- independent counts of the records in the published files -------------------------


def count_zip_json(path: Path) -> int:
    with zipfile.ZipFile(path) as archive:
        return sum(1 for name in archive.namelist() if name.endswith(".json"))


def count_tar(path: Path, suffixes: tuple[str, ...]) -> int:
    with tarfile.open(path) as archive:
        return sum(1 for m in archive if m.isreg() and m.name.endswith(suffixes))


def count_kev(path: Path) -> int:
    return len(json.loads(path.read_text())["vulnerabilities"])


def count_tracker(path: Path) -> int:
    return len({cve for package in json.loads(path.read_text()).values() for cve in package})


def count_nvd_page(path: Path) -> int:
    return len(json.loads(path.read_text())["vulnerabilities"])


def count_epss(path: Path) -> int:
    lines = [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return len(lines) - 1  # the header


def count_files(pattern: str) -> Callable[[Path], int]:
    return lambda root: sum(1 for p in root.rglob(pattern) if p.is_file())


FEED_CASES = [
    ("osv", "osv-go/all.zip", lambda p: count_zip_json(p)),
    ("osv", "osv-pypi/pypa-advisory-database-vulns.tar.gz", lambda p: count_tar(p, (".yaml",))),
    ("osv", "osv-ghsa/ghsa-advisories.tar.gz", lambda p: count_tar(p, (".json",))),
    ("kev", "kev/known_exploited_vulnerabilities.json", count_kev),
    ("debian-tracker", "debian-tracker-derived/bookworm.json", count_tracker),
    ("nvd", "samples/nvd-api-2.0/vunnel-full-page.json", count_nvd_page),
    ("epss", "samples/epss/claircore-data.csv", count_epss),
    ("ubuntu", "samples/ubuntu-osv", lambda p: count_files("USN-*.json")(p) + count_files("UBUNTU-CVE-*.json")(p)),
    ("redhat-csaf", "samples/redhat-csaf-vex", count_files("cve-*.json")),
]


def stored(run: FeedSync) -> int:
    if run.source == "kev":
        return Kev.objects.count()
    if run.source == "epss":
        return Epss.objects.count()
    return Advisory.objects.filter(feed=run.feed).count()


@pytest.mark.parametrize(("source", "relative", "count"), FEED_CASES, ids=[c[1] for c in FEED_CASES])
def test_every_record_of_the_feed_is_stored(source, relative, count):
    path = feed_path(relative)
    run = sync_feed(source, str(path))
    assert run.state == SyncState.SUCCEEDED, run.error
    assert run.rejected == 0
    assert stored(run) == count(path) == run.added


def test_withdrawn_records_are_counted(tmp_path):
    run = sync_feed("osv", str(feed_path("osv-go/all.zip")))
    withdrawn = Advisory.objects.filter(feed=run.feed, withdrawn__isnull=False).count()
    assert run.withdrawn == withdrawn == 17  # osv-go/README.md


# -- change detection --------------------------------------------------------------------


def snapshot(feed: str) -> dict[str, tuple[int, str]]:
    return {a.advisory_id: (a.pk, a.content_hash) for a in Advisory.objects.filter(feed=feed)}


def test_unchanged_resync_writes_nothing():
    path = str(feed_path("osv-go/all.zip"))
    first = sync_feed("osv", path)
    before = snapshot(first.feed), Alias.objects.count(), Affected.objects.count(), Severity.objects.count()
    again = sync_feed("osv", path)
    assert again.state == SyncState.UNCHANGED
    assert (again.added, again.updated, again.removed) == (0, 0, 0)
    assert (snapshot(first.feed), Alias.objects.count(), Affected.objects.count(), Severity.objects.count()) == before


def rewrite_zip(source: Path, target: Path, change: str) -> str:
    """Copy an OSV all.zip, bumping the first fixed version of record `change`; returns the new version."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == f"{change}.json":
                doc = json.loads(data)
                events = doc["affected"][0]["ranges"][0]["events"]
                fixed = next(e for e in events if "fixed" in e)
                fixed["fixed"] = new = fixed["fixed"] + ".1"
                data = json.dumps(doc).encode()
            dst.writestr(info, data)
    return new


def test_one_changed_record_updates_exactly_that_record(tmp_path):
    original = feed_path("osv-go/all.zip")
    feed = tmp_path / "all.zip"
    shutil.copy(original, feed)
    first = sync_feed("osv", str(feed))
    before = snapshot(first.feed)
    new_fixed = rewrite_zip(original, feed, "GO-2020-0001")
    again = sync_feed("osv", str(feed))
    assert again.state == SyncState.SUCCEEDED, again.error
    assert (again.added, again.updated, again.removed) == (0, 1, 0)
    assert again.unchanged == len(before) - 1
    after = snapshot(first.feed)
    changed = {k for k in before if before[k] != after[k]}
    assert changed == {"GO-2020-0001"}
    fixed = [
        v
        for a in Affected.objects.filter(advisory__feed=first.feed, advisory__advisory_id="GO-2020-0001")
        for r in a.ranges
        for kind, v in r["events"]
        if kind == "fixed"
    ]
    assert new_fixed in fixed


@pytest.mark.parametrize("damage", ["truncate", "garble"])
def test_a_broken_feed_file_fails_only_its_own_sync(tmp_path, damage):
    kev = feed_path("kev/known_exploited_vulnerabilities.json")
    go = sync_feed("osv", str(feed_path("osv-go/all.zip")))
    feed = tmp_path / "all.zip"
    shutil.copy(feed_path("osv-go/all.zip"), feed)
    first = sync_feed("osv", str(feed))
    kev_run = sync_feed("kev", str(kev))
    before = snapshot(first.feed)
    data = feed.read_bytes()
    feed.write_bytes(data[: len(data) // 2] if damage == "truncate" else data[:100] + b"\x00garbage" * 64 + data[200:])
    broken = sync_feed("osv", str(feed))
    assert broken.state == SyncState.FAILED
    assert broken.error
    assert snapshot(first.feed) == before  # the old data still answers
    assert Advisory.objects.filter(feed=go.feed).count() == go.added
    assert Kev.objects.count() == kev_run.added


def test_bad_records_are_counted_and_never_abort_the_feed(tmp_path):
    feed = tmp_path / "records"
    feed.mkdir()
    with zipfile.ZipFile(feed_path("osv-go/all.zip")) as archive:
        names = sorted(n for n in archive.namelist() if n.endswith(".json"))[:20]
        for name in names:
            (feed / name).write_bytes(archive.read(name))
    (feed / "GO-9999-0001.json").write_text('{"id": "GO-9999-0001", "affected": [{"ranges": [{"type": "NOPE"}]}]')
    (feed / "GO-9999-0002.json").write_text("{not json")
    run = sync_feed("osv", str(feed))
    assert run.state == SyncState.SUCCEEDED
    assert run.rejected == 2
    assert run.added == 20


def test_an_empty_feed_is_refused_rather_than_wiping_the_old_data(tmp_path):
    feed = tmp_path / "feed"
    feed.mkdir()
    (feed / "GO-2020-0001.json").write_bytes(zipfile.ZipFile(feed_path("osv-go/all.zip")).read("GO-2020-0001.json"))
    assert sync_feed("osv", str(feed)).state == SyncState.SUCCEEDED
    (feed / "GO-2020-0001.json").unlink()
    (feed / "README").write_text("nothing here")
    run = sync_feed("osv", str(feed))
    assert run.state == SyncState.FAILED
    assert "no osv records" in run.error
    assert Advisory.objects.filter(feed=run.feed).count() == 1


# -- conditional HTTP ------------------------------------------------------------------------


class _FeedServer(http.server.SimpleHTTPRequestHandler):
    requests: list[tuple[str, str]] = []

    def log_message(self, *args: object) -> None:
        pass

    def end_headers(self) -> None:
        path = Path(self.translate_path(self.path))
        if path.is_file():
            self.send_header("ETag", f'"{path.stat().st_mtime_ns}"')
        super().end_headers()

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = Path(self.translate_path(self.path))
        self.requests.append((self.path, self.headers.get("If-None-Match", "")))
        if path.is_file() and self.headers.get("If-None-Match") == f'"{path.stat().st_mtime_ns}"':
            self.send_response(304)
            self.end_headers()
            return
        super().do_GET()


@pytest.fixture
def feed_server(tmp_path) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    shutil.copy(feed_path("kev/known_exploited_vulnerabilities.json"), tmp_path / "kev.json")
    handler = type("Handler", (_FeedServer,), {"requests": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: handler(*a, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/kev.json", handler.requests
    server.shutdown()


def test_unchanged_remote_feed_costs_one_conditional_request(feed_server):
    url, requests = feed_server
    first = sync_feed("kev", url)
    assert first.state == SyncState.SUCCEEDED, first.error
    assert first.etag
    again = sync_feed("kev", url)
    assert again.state == SyncState.UNCHANGED
    assert requests == [("/kev.json", ""), ("/kev.json", first.etag)]
    assert Kev.objects.count() == first.added


# -- schedule, bundles, API -------------------------------------------------------------------


def test_feeds_are_synced_every_six_hours_by_default():
    task = PeriodicTask.objects.get(name="Sync advisory feeds")
    assert task.task == "advisories.sync_feeds"
    assert (task.interval.every, task.interval.period) == (6, "hours")


def _fields(obj: object, skip: tuple[str, ...]) -> dict:
    return {f.name: getattr(obj, f.name) for f in type(obj)._meta.fields if f.name not in skip}


def dump() -> list[dict]:
    rows = []
    for a in Advisory.objects.order_by("feed", "advisory_id").prefetch_related("alias_set", "affected", "severities"):
        rows.append(
            {
                "advisory": _fields(a, ("id",)),
                "aliases": sorted((x.alias, x.kind) for x in a.alias_set.all()),
                "affected": sorted(
                    json.dumps(_fields(x, ("id", "advisory")), sort_keys=True) for x in a.affected.all()
                ),
                "severities": sorted((s.type, s.source, s.vector, s.score, s.rating) for s in a.severities.all()),
            }
        )
    return rows


def test_export_then_import_into_an_empty_database_is_identical(tmp_path):
    sync_feed("osv", str(feed_path("osv-go/all.zip")))
    sync_feed("kev", str(feed_path("kev/known_exploited_vulnerabilities.json")))
    sync_feed("debian-tracker", str(feed_path("debian-tracker-derived/bookworm.json")))
    before = dump()
    kev = list(Kev.objects.order_by("cve_id").values())
    bundle = tmp_path / "advisories.tar"
    call_command("advisories_export", str(bundle))
    Advisory.objects.all().delete()
    Kev.objects.all().delete()
    Epss.objects.all().delete()
    FeedSync.objects.all().delete()
    call_command("advisories_import", str(bundle))
    assert dump() == before
    assert [{k: v for k, v in r.items() if k != "id"} for r in Kev.objects.order_by("cve_id").values()] == [
        {k: v for k, v in r.items() if k != "id"} for r in kev
    ]
    assert FeedSync.objects.filter(state=SyncState.SUCCEEDED).count() == 3


def test_a_tampered_bundle_is_refused_and_changes_nothing(tmp_path):
    sync_feed("kev", str(feed_path("kev/known_exploited_vulnerabilities.json")))
    bundle = tmp_path / "advisories.tar"
    export_bundle(bundle)
    with tarfile.open(bundle) as tar:
        member = tar.getmember("kev.jsonl.gz")
    data = bytearray(bundle.read_bytes())
    data[member.offset_data + member.size // 2] ^= 0xFF
    bundle.write_bytes(bytes(data))
    count = Kev.objects.count()
    with pytest.raises(BundleError):
        import_bundle(bundle)
    assert Kev.objects.count() == count
