"""The triage flow in a real browser: Playwright drives Debian's chromium through the admin.

Log in, filter the findings of a scanned alpine 3.7 image down to musl, mark
musl's finding not affected with a justification through the bulk action,
then push the image again under a new tag and scan it: the new scan's musl
finding is already not_affected, and the admin shows it so.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.db import connections

from scans.choices import FindingState
from scans.models import Decision, Finding, Registry, Repository
from tests.service.test_triage import scan_corpus_image

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "triage-ui-password"  # noqa: S105 - a throwaway user of the test database

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is not installed (pip install -r requirements.txt)"
)
pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)"),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def page(tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """A chromium page; on failure a screenshot and the page's HTML are left in the test's tmp dir."""
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(15_000)
            yield page
            report = getattr(request.node, "rep_call", None)  # set by conftest.py
            if report is None or report.failed:
                shot = tmp_path / "triage-failure.png"
                page.screenshot(path=str(shot), full_page=True)
                (tmp_path / "triage-failure.html").write_text(page.content())
                print(f"screenshot of the failure: {shot}")  # noqa: T201
        finally:
            browser.close()
            # ORM calls made while Playwright's loop ran opened a connection of their own; close it
            # before the test database is dropped.
            connections.close_all()


@pytest.fixture
def alpine_feed(transactional_db: None) -> None:
    from advisories.sync import sync_feed
    from tests.advisories.test_sync import feed_path

    run = sync_feed("alpine-secdb", str(feed_path("alpine-secdb/yaml/v3.7")))
    assert run.state == "succeeded", run.error


def row_of(page: object, finding: Finding) -> object:
    return page.locator(f"#result_list tr:has(input.action-select[value='{finding.pk}'])")


def test_mark_not_affected_in_the_admin_then_see_it_in_the_next_scan_of_a_new_tag(
    live_server, page, alpine_feed, tmp_path
):
    User.objects.create_superuser("triager", "triager@example.com", PASSWORD)
    registry = Registry.objects.create(name="local", url="http://127.0.0.1:5999")
    repository = Repository.objects.create(registry=registry, name="corpus/alpine")
    first = scan_corpus_image("alpine37.oci.tar", tmp_path, repository, "3.7")
    musl = first.findings.get(package_name="musl")
    assert musl.state == FindingState.OPEN

    # Log in.
    page.goto(f"{live_server.url}/admin/login/?next=/admin/scans/finding/")
    page.fill("#id_username", "triager")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#result_list")

    # Filter by package: the text box of the "package" filter.
    page.fill("input[name=package]", "musl")
    page.press("input[name=package]", "Enter")
    page.wait_for_url("**package=musl**")
    assert page.locator("#result_list tbody tr").count() == 1
    row = row_of(page, musl)
    assert "CVE-2019-14697" in row.inner_text()

    # The bulk action asks for a justification on a page of its own.
    row.locator("input.action-select").check()
    page.select_option("select[name=action]", "mark_not_affected")
    page.click("button[name=index]")
    page.wait_for_selector("#triage-form")
    page.select_option("select[name=justification]", "vulnerable_code_not_in_execute_path")
    page.fill("textarea[name=reason]", "no untrusted input reaches musl's affected code")
    page.select_option("select[name=scope]", "repository")
    page.click("input[name=apply]")
    page.wait_for_selector("ul.messagelist li.success")
    assert "Not Affected" in row_of(page, musl).inner_text()
    decision = Decision.objects.get()
    assert (decision.state, decision.owner.username) == ("not_affected", "triager")

    # A new tag of the same repository: the image again, as a docker archive, pushed and scanned.
    second = scan_corpus_image("alpine37.docker.tar", tmp_path, repository, "3.7-rebuilt")
    assert second.image != first.image
    new_musl = second.findings.get(package_name="musl")
    assert (new_musl.state, new_musl.decision) == (FindingState.NOT_AFFECTED, decision)

    # And in the UI: from the new image to its findings.
    page.goto(f"{live_server.url}/admin/scans/image/{second.image_id}/change/")
    page.click("text=findings of the latest scan")
    page.wait_for_selector("#result_list")
    assert "Not Affected" in row_of(page, new_musl).inner_text()
    musl_utils = second.findings.get(package_name="musl-utils")
    assert "Open" in row_of(page, musl_utils).inner_text()
    page.click("#changelist-filter a:text-is('Not Affected')")  # the state filter
    page.wait_for_url("**state__exact=not_affected**")
    shown = {int(v) for v in page.locator("input.action-select").evaluate_all("els => els.map(e => e.value)")}
    assert shown == {new_musl.pk}
