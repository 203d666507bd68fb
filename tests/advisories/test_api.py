"""The advisory API: lookup by any alias, and the state and age of each feed."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from advisories.models import Advisory, FeedSync, Kev, SyncState
from advisories.sync import sync_feed
from tests.advisories.test_sync import feed_path

pytestmark = pytest.mark.django_db


@pytest.fixture
def api() -> APIClient:
    client = APIClient()
    client.force_authenticate(User.objects.create_user("reader"))
    return client


def test_an_advisory_is_found_by_any_of_its_ids(api):
    sync_feed("osv", str(feed_path("osv-go/all.zip")))
    sync_feed("kev", str(feed_path("kev/known_exploited_vulnerabilities.json")))
    by_id = api.get("/api/v1/advisories/GO-2022-0969/").json()
    assert [r["id"] for r in by_id["records"]] == ["GO-2022-0969"]
    cve = next(a for a in by_id["aliases"] if a.startswith("CVE-"))
    by_alias = api.get(f"/api/v1/advisories/{cve}/").json()
    assert by_alias["records"] == by_id["records"]
    assert "GO-2022-0969" in by_alias["aliases"]
    record = by_id["records"][0]
    assert record["affected"][0]["ecosystem"] == "Go"
    assert record["affected"][0]["ranges"][0]["events"][0][0] == "introduced"


def test_kev_is_attached_to_the_cve(api):
    sync_feed("kev", str(feed_path("kev/known_exploited_vulnerabilities.json")))
    sync_feed("nvd", str(feed_path("samples/nvd-api-2.0/vunnel-full-page.json")))
    known = set(Kev.objects.values_list("cve_id", flat=True))
    cve = Advisory.objects.filter(source="nvd", advisory_id__in=known).values_list("advisory_id", flat=True).first()
    if cve is None:
        pytest.skip("no CVE of the NVD sample page is in the KEV catalog")
    body = api.get(f"/api/v1/advisories/{cve}/").json()
    assert body["kev"]["date_added"]


def test_unknown_id_is_404(api):
    assert api.get("/api/v1/advisories/CVE-1999-99999/").status_code == 404


def test_feeds_show_state_and_age(api):
    good = sync_feed("kev", str(feed_path("kev/known_exploited_vulnerabilities.json")))
    bad = sync_feed("osv", "/nonexistent/all.zip")
    rows = {row["feed"]: row for row in api.get("/api/v1/feeds/").json()}
    assert rows[good.feed]["state"] == SyncState.SUCCEEDED
    assert rows[good.feed]["age_seconds"] >= 0
    assert rows[bad.feed]["state"] == SyncState.FAILED
    assert "no such file" in rows[bad.feed]["error"]
    assert rows[bad.feed]["last_success"] is None
    assert FeedSync.objects.count() == 2


def test_anonymous_is_refused():
    assert APIClient().get("/api/v1/feeds/").status_code in (401, 403)
