"""Triage: decisions as rows, how they apply to later scans and new tags, the API, VEX out and in, the admin."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import jsonschema
import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from rest_framework.test import APIClient

from accounts.models import AuditEvent
from accounts.services import create_token
from advisories.findings import match_analysis
from advisories.models import Advisory
from advisories.sync import sync_feed
from scans import tasks
from scans.choices import DecisionAction, DecisionScope, DecisionState, FindingState, Justification, ScanState
from scans.engine import policy
from scans.engine.targets import scan
from scans.models import Decision, DecisionEvent, Finding, Image, Registry, Repository, ScanJob, Tag
from scans.services import triage
from scans.services.findings import report_from_scan, store_report
from scans.services.inventory import store_analysis
from scans.services.scanning import PushEvent, record_push
from tests.advisories.test_sync import feed_path
from tests.conftest import corpus_file
from tests.engine.report_factories import (
    make_django_finding,
    make_kev_finding,
    make_libc6_finding,
    make_lodash_finding,
    make_nscd_finding,
    make_report,
)

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).parent / "fixtures"
ENGINE_VEX = Path(__file__).parents[1] / "engine" / "fixtures" / "vex"
# OpenVEX's JSON schema is not shipped by any package this machine can install, and is not copied
# here; put openvex_json_schema.json (openvex/spec) in fixtures/openvex/ to validate against it too.
# Without it, assert_openvex_rules checks what the specification's text requires.
_OPENVEX_SCHEMA_FILE = FIXTURES / "openvex" / "openvex_json_schema.json"
OPENVEX_SCHEMA = json.loads(_OPENVEX_SCHEMA_FILE.read_text()) if _OPENVEX_SCHEMA_FILE.exists() else None
# The factories' image: the product the engine's VEX fixtures name.
FACTORY_DIGEST = "sha256:5b0b93d32bd0ed1ce5f9a9bd2f67d0b97b3c6ec6dbd3b1e7dc5a8a7c8e3c2f10"


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


@pytest.fixture
def alice() -> User:
    return User.objects.create_user("alice")


def token_client(user: User, role: str) -> APIClient:
    _, key = create_token(user.id, role)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.fixture
def api(alice) -> APIClient:
    """alice, with a triager's API token."""
    return token_client(alice, "triager")


@pytest.fixture
def registry() -> Registry:
    return Registry.objects.create(name="hub", url="http://127.0.0.1:5999")


@pytest.fixture
def app(registry) -> Repository:
    return Repository.objects.create(registry=registry, name="team/app")


@pytest.fixture
def other(registry) -> Repository:
    return Repository.objects.create(registry=registry, name="team/other")


def store_scan(repository: Repository | None, tag: str, image_digest: str, findings=None) -> ScanJob:
    """A done scan of `repository:tag` -> `image_digest` whose report holds `findings` (default: four)."""
    findings = findings if findings is not None else [
        make_libc6_finding(), make_nscd_finding(), make_django_finding(), make_kev_finding(),
    ]  # fmt: skip
    image, _ = Image.objects.get_or_create(digest=image_digest)
    if repository is not None:
        Tag.objects.update_or_create(repository=repository, name=tag, defaults={"image": image})
    job = ScanJob.objects.create(
        image=image, repository=repository, reference=image_digest, state=ScanState.DONE, finished_at=timezone.now()
    )
    store_report(job, make_report(findings))
    return job


def finding(job: ScanJob, vuln_id: str) -> Finding:
    return job.findings.get(vulnerability_id=vuln_id)


def states(job: ScanJob) -> dict[str, str]:
    return dict(job.findings.values_list("vulnerability_id", "state"))


def triage_post(api: APIClient, row: Finding, **body):
    return api.post(f"/api/v1/findings/{row.pk}/triage", body, format="json")


# --- the model -------------------------------------------------------------------------------------------------


def test_justifications_are_openvex_and_decision_states_are_finding_states():
    assert tuple(Justification.values) == policy.OPENVEX_JUSTIFICATIONS
    assert set(DecisionState.values) < set(FindingState.values)


# --- decisions apply to later scans and new tags ----------------------------------------------------------------


def test_not_affected_follows_the_repository_to_a_new_tag_and_nowhere_else(api, app, other):
    first = store_scan(app, "1.0", digest(1))
    response = triage_post(
        api,
        finding(first, "CVE-2024-2961"),
        state="not_affected",
        justification="vulnerable_code_not_in_execute_path",
        reason="the app never converts to ISO-2022-CN-EXT",
        scope="repository",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["finding"]["state"] == "not_affected"
    assert body["decision"]["owner"] == "alice"
    assert body["decision"]["repository"] == "hub/team/app"
    decision = Decision.objects.get(pk=body["decision"]["id"])
    assert finding(first, "CVE-2024-2961").decision == decision

    # A new tag of the same repository, a rebuilt image: the decision applies as the findings are stored.
    rebuilt = store_scan(app, "1.1", digest(2))
    assert finding(rebuilt, "CVE-2024-2961").state == FindingState.NOT_AFFECTED
    assert finding(rebuilt, "CVE-2024-2961").decision == decision
    assert states(rebuilt)["CVE-2024-27351"] == FindingState.OPEN
    # nscd's CVE is in the same package but is another vulnerability.
    assert states(rebuilt)["CVE-2024-33599"] == FindingState.OPEN
    # Another repository is another product.
    assert states(store_scan(other, "1.0", digest(3)))["CVE-2024-2961"] == FindingState.OPEN


def test_image_scope_stays_with_the_image_and_everywhere_goes_everywhere(alice, app, other):
    first = store_scan(app, "1.0", digest(1))
    triage.decide(finding(first, "CVE-2024-27351"), actor=alice, state="false_positive",
                  reason="Django is only in the test settings", scope="image")  # fmt: skip
    triage.decide(finding(first, "CVE-2023-4863"), actor=alice, state="under_investigation",
                  reason="do we decode WebP from users?", scope="everywhere")  # fmt: skip
    assert states(first)["CVE-2024-27351"] == FindingState.FALSE_POSITIVE
    # The same image re-tagged, or scanned again, keeps its image decision.
    assert states(store_scan(app, "latest", digest(1)))["CVE-2024-27351"] == FindingState.FALSE_POSITIVE
    later = store_scan(app, "1.1", digest(2))
    assert states(later)["CVE-2024-27351"] == FindingState.OPEN
    assert states(later)["CVE-2023-4863"] == FindingState.UNDER_INVESTIGATION
    assert states(store_scan(other, "x", digest(3)))["CVE-2023-4863"] == FindingState.UNDER_INVESTIGATION
    assert states(store_scan(None, "", digest(4)))["CVE-2023-4863"] == FindingState.UNDER_INVESTIGATION


def test_the_most_specific_scope_wins_and_the_newest_within_one(alice, app, other):
    first = store_scan(app, "1.0", digest(1))
    row = finding(first, "CVE-2024-2961")
    everywhere = triage.decide(row, actor=alice, state="affected", reason="glibc everywhere", scope="everywhere")
    in_app = triage.decide(row, actor=alice, state="not_affected", justification="component_not_present",
                           reason="app ships no iconv modules", scope="repository")  # fmt: skip
    this_image = triage.decide(row, actor=alice, state="under_investigation", reason="checking", scope="image")
    assert finding(first, "CVE-2024-2961").decision == this_image
    assert finding(store_scan(app, "1.1", digest(2)), "CVE-2024-2961").decision == in_app
    assert finding(store_scan(other, "1", digest(3)), "CVE-2024-2961").decision == everywhere

    # Within a scope the newest wins: a purl decision made after the name decision.
    by_purl = triage.decide(row, actor=alice, state="fixed", reason="patched in our base image",
                            scope="everywhere", by_purl=True)  # fmt: skip
    assert by_purl.purl == "pkg:deb/debian/libc6"
    assert finding(store_scan(other, "2", digest(4)), "CVE-2024-2961").decision == by_purl
    # Revoking the newer one hands the finding back to the older, at once.
    triage.revoke(by_purl, actor=alice)
    assert finding(ScanJob.objects.filter(image__digest=digest(4)).get(), "CVE-2024-2961").decision == everywhere


def test_decisions_match_any_id_of_the_vulnerability(alice, app):
    job = store_scan(app, "1.0", digest(1))
    # A decision made under the GHSA id speaks of the finding keyed by its CVE.
    subject = triage.Subject("GHSA-vm8q-m57g-pff3", package_type="pypi", package_name="Django")
    triage.record(subject, actor=alice, state="not_affected", justification="vulnerable_code_not_present",
                  reason="Truncator is not used")  # fmt: skip
    assert states(store_scan(app, "1.1", digest(2)))["CVE-2024-27351"] == FindingState.NOT_AFFECTED
    assert states(job)["CVE-2024-27351"] == FindingState.OPEN  # record() alone does not refresh stored findings


# --- risk acceptance, revoke, history -----------------------------------------------------------------------------


def test_accepted_risk_comes_back_after_its_day(alice, app):
    job = store_scan(app, "1.0", digest(1))
    today = timezone.localdate()
    decision = triage.decide(finding(job, "CVE-2023-4863"), actor=alice, state="risk_accepted",
                             reason="thumbnails are made offline", scope="repository", expires=today)  # fmt: skip
    assert states(job)["CVE-2023-4863"] == FindingState.RISK_ACCEPTED
    assert triage.expire_risk_acceptances(today) == 0  # it applies through its last day

    assert triage.expire_risk_acceptances(today + timedelta(days=1)) == 1
    assert states(job)["CVE-2023-4863"] == FindingState.OPEN
    events = list(decision.events.values_list("action", flat=True))
    assert events == [DecisionAction.CREATED, DecisionAction.EXPIRED]
    assert triage.expire_risk_acceptances(today + timedelta(days=2)) == 0  # recorded once
    assert decision.events.count() == 2

    # A scan after the expiry day does not apply it, whether or not the check has run.
    Decision.objects.filter(pk=decision.pk).update(expires=today - timedelta(days=1), expired_at=None)
    assert states(store_scan(app, "1.1", digest(2)))["CVE-2023-4863"] == FindingState.OPEN


def test_expiry_runs_daily_from_beat_and_the_task_reopens_expired_acceptances(alice, app):
    task = PeriodicTask.objects.get(name="Expire risk acceptances")
    assert (task.task, task.queue, task.enabled) == ("scans.expire_risk_acceptances", "default", True)
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_month) == ("5", "0", "*")

    job = store_scan(app, "1.0", digest(1))
    yesterday = timezone.localdate() - timedelta(days=1)
    decision = triage.decide(finding(job, "CVE-2023-4863"), actor=alice, state="risk_accepted",
                             reason="thumbnails are made offline", scope="image",
                             expires=timezone.localdate())  # fmt: skip
    Decision.objects.filter(pk=decision.pk).update(expires=yesterday)
    assert tasks.expire_risk_acceptances.apply().get() == 1
    assert states(job)["CVE-2023-4863"] == FindingState.OPEN


def test_retriage_changes_the_decision_and_keeps_its_history(api, app):
    job = store_scan(app, "1.0", digest(1))
    row = finding(job, "CVE-2024-33599")
    first = triage_post(api, row, state="under_investigation", reason="is nscd running?", scope="repository")
    second = triage_post(api, row, state="not_affected", justification="component_not_present",
                         reason="nscd is not installed", scope="repository")  # fmt: skip
    assert first.json()["decision"]["id"] == second.json()["decision"]["id"]
    decision_id = second.json()["decision"]["id"]

    revoked = api.post(f"/api/v1/decisions/{decision_id}/revoke", {"reason": "nscd came back"}, format="json")
    assert revoked.status_code == 200
    assert revoked.json()["active"] is False
    assert revoked.json()["revoked_by"] == "alice"
    assert states(job)["CVE-2024-33599"] == FindingState.OPEN
    assert api.post(f"/api/v1/decisions/{decision_id}/revoke", {}, format="json").status_code == 400

    history = api.get(f"/api/v1/decisions/{decision_id}/history").json()
    assert [e["action"] for e in history] == ["created", "changed", "revoked"]
    assert history[1]["before"]["state"] == "under_investigation"
    assert history[1]["after"]["state"] == "not_affected"
    assert history[1]["after"]["justification"] == "component_not_present"
    assert history[2]["note"] == "nscd came back"
    assert {e["actor"] for e in history} == {"alice"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"state": "not_affected", "reason": "r", "scope": "image"}, "justification"),
        ({"state": "not_affected", "justification": "because", "reason": "r", "scope": "image"}, "justification"),
        ({"state": "affected", "justification": "component_not_present", "reason": "r", "scope": "image"},
         "justification"),
        ({"state": "risk_accepted", "reason": "r", "scope": "image"}, "expires"),
        ({"state": "risk_accepted", "reason": "r", "scope": "image", "expires": "2020-01-01"}, "expires"),
        ({"state": "fixed", "reason": "r", "scope": "image", "expires": "2999-01-01"}, "expires"),
        ({"state": "fixed", "reason": " ", "scope": "image"}, "reason"),
        ({"state": "fixed", "reason": "r", "scope": "galaxy"}, "scope"),
        ({"state": "fixed", "reason": "r"}, "scope"),
        ({"state": "ignored", "reason": "r", "scope": "image"}, "state"),
    ],
)  # fmt: skip
def test_triage_refuses_what_a_decision_cannot_hold(api, app, body, field):
    row = finding(store_scan(app, "1.0", digest(1)), "CVE-2024-2961")
    response = triage_post(api, row, **body)
    assert response.status_code == 400
    assert field in response.json()
    assert not Decision.objects.exists()


def test_repository_scope_needs_a_repository(api):
    row = finding(store_scan(None, "", digest(1)), "CVE-2024-2961")
    response = triage_post(api, row, state="fixed", reason="r", scope="repository")
    assert response.status_code == 400
    assert "no repository" in response.json()["scope"][0]


def test_viewers_read_and_triagers_decide(alice, app):
    row = finding(store_scan(app, "1.0", digest(1)), "CVE-2024-2961")
    body = {"state": "fixed", "reason": "r", "scope": "image"}
    anonymous, viewer = APIClient(), token_client(User.objects.create_user("val"), "viewer")
    for client, status in ((anonymous, 401), (viewer, 403)):
        assert triage_post(client, row, **body).status_code == status
        assert client.post("/api/v1/vex", b"{}", content_type="application/json").status_code == status
    assert viewer.get("/api/v1/decisions/").status_code == 200
    assert viewer.get(f"/api/v1/findings/{row.pk}").status_code == 200
    assert anonymous.get("/api/v1/decisions/").status_code == 401
    decision = triage.decide(row, actor=alice, state="fixed", reason="r", scope="image")
    assert viewer.post(f"/api/v1/decisions/{decision.pk}/revoke", {}, format="json").status_code == 403
    assert not Decision.objects.filter(revoked_at__isnull=False).exists()


def test_triage_changes_are_in_the_audit_log(api, app):
    row = finding(store_scan(app, "1.0", digest(1)), "CVE-2024-2961")
    decision_id = triage_post(api, row, state="fixed", reason="patched", scope="image").json()["decision"]["id"]
    api.post(f"/api/v1/decisions/{decision_id}/revoke", {}, format="json")
    events = AuditEvent.objects.filter(object_type="scans.decision", object_id=str(decision_id)).order_by("id")
    assert [(e.action, e.actor_name) for e in events] == [
        ("triage.decision.created", "alice"),
        ("triage.decision.revoked", "alice"),
    ]
    assert events[0].after["state"] == "fixed"


# --- the API's lists -------------------------------------------------------------------------------------------


def test_decisions_and_findings_lists_filter(api, alice, app, other):
    job = store_scan(app, "1.0", digest(1))
    store_scan(other, "1.0", digest(2))
    triage.decide(finding(job, "CVE-2024-27351"), actor=alice, state="false_positive", reason="r", scope="image")
    kept = triage.decide(finding(job, "CVE-2024-2961"), actor=alice, state="affected", reason="r", scope="everywhere")
    gone = triage.decide(finding(job, "CVE-2023-4863"), actor=alice, state="fixed", reason="r", scope="repository")
    triage.revoke(gone, actor=alice)

    def ids(query: str, path: str = "/api/v1/decisions/") -> list[int]:
        response = api.get(path + query)
        assert response.status_code == 200, response.content
        return [d["id"] if "finding_id" not in d else d["finding_id"] for d in response.json()["results"]]

    assert len(ids("")) == 3
    assert ids("?active=false") == [gone.id]
    assert ids("?vulnerability=GHSA-VM8Q-M57G-PFF3") == [Decision.objects.get(state="false_positive").id]
    assert ids("?package=libc6") == [kept.id]
    assert ids("?scope=everywhere") == [kept.id]
    assert ids("?state=fixed") == [gone.id]
    assert ids("?repository=team/app") == [gone.id]

    affected = ids("?state=affected", "/api/v1/findings/")
    assert sorted(affected) == sorted(
        Finding.objects.filter(vulnerability_id="CVE-2024-2961").values_list("pk", flat=True)
    )
    assert len(ids(f"?image={digest(1)}&state=open", "/api/v1/findings/")) == 2  # nscd, and the revoked webp
    assert len(ids("?repository=team/other&id=CVE-2024-2961", "/api/v1/findings/")) == 1
    one = api.get(f"/api/v1/findings/{finding(job, 'CVE-2024-2961').pk}").json()
    assert one["decision"] == kept.id
    assert one["image"] == digest(1)


def test_the_gate_and_reports_leave_settled_findings_out(api, alice, app):
    job = store_scan(app, "1.0", digest(1), [make_libc6_finding(), make_kev_finding()])
    triage.decide(finding(job, "CVE-2023-4863"), actor=alice, state="not_affected", scope="image",
                  justification="vulnerable_code_not_in_execute_path", reason="no WebP input")  # fmt: skip
    verdict = api.get(f"/api/v1/scans/{job.id}?severity=CRITICAL").json()["verdict"]
    assert verdict["passed"] is True
    verdict = api.get(f"/api/v1/scans/{job.id}?severity=HIGH,CRITICAL").json()["verdict"]
    assert verdict["failing_ids"] == ["CVE-2024-2961"]

    report = report_from_scan(job)
    suppression = {f.id: f.suppression for f in report.findings}["CVE-2023-4863"]
    assert suppression.by == "triage"
    assert suppression.reason == "not_affected (vulnerable_code_not_in_execute_path): no WebP input"
    assert "(alice)" in suppression.source
    sarif = api.get(f"/api/v1/images/{digest(1)}/report?format=sarif").json()
    suppressed = [r for r in sarif["runs"][0]["results"] if r.get("suppressions")]
    assert [r["ruleId"] for r in suppressed] == ["CVE-2023-4863"]
    listed = api.get(f"/api/v1/images/{digest(1)}/report?state=not_affected").json()
    assert [f["id"] for f in listed["results"]] == ["CVE-2023-4863"]


# --- VEX out -----------------------------------------------------------------------------------------------------


def decided_scan(alice, app) -> ScanJob:
    """The factories' image with one decision of each state."""
    job = store_scan(app, "1.4", FACTORY_DIGEST, [
        make_libc6_finding(), make_nscd_finding(), make_django_finding(), make_kev_finding(), make_lodash_finding(),
    ])  # fmt: skip
    decide = triage.decide
    decide(
        finding(job, "CVE-2024-33599"),
        actor=alice,
        state="not_affected",
        justification="component_not_present",
        reason="nscd is not installed",
        scope="image",
    )
    decide(
        finding(job, "CVE-2024-27351"),
        actor=alice,
        state="false_positive",
        reason="test settings only",
        scope="repository",
    )
    decide(
        finding(job, "CVE-2023-4863"),
        actor=alice,
        state="risk_accepted",
        reason="offline thumbnails",
        scope="repository",
        expires=timezone.localdate() + timedelta(days=30),
    )
    decide(
        finding(job, "CVE-2021-23337"),
        actor=alice,
        state="affected",
        reason="upgrade lodash in 2.0",
        scope="everywhere",
    )
    decide(finding(job, "CVE-2024-2961"), actor=alice, state="fixed", reason="iconv patched in base",
           scope="everywhere", by_purl=True)  # fmt: skip
    return job


def assert_openvex_rules(doc: dict) -> None:
    """The OpenVEX 0.2.0 specification's rules for a document, as its text states them (the schema file is
    not shipped here): required fields, the four statuses, the five justifications, and what each status needs."""
    assert doc["@context"] == "https://openvex.dev/ns/v0.2.0"
    assert {"@id", "author", "timestamp", "version", "statements"} <= doc.keys()
    for statement in doc["statements"]:
        assert statement["vulnerability"]["name"]
        assert statement["products"]
        assert all(product["@id"] for product in statement["products"])
        assert statement["status"] in {"not_affected", "affected", "fixed", "under_investigation"}
        if statement["status"] == "not_affected":
            assert statement.get("justification") in Justification.values or statement.get("impact_statement")
        else:
            assert "justification" not in statement
        if statement["status"] == "affected":
            assert statement["action_statement"]


def test_openvex_export_follows_the_schema_and_says_what_was_decided(api, alice, app):
    decided_scan(alice, app)
    response = api.get(f"/api/v1/images/{FACTORY_DIGEST}/vex?format=openvex")
    assert response.status_code == 200, response.content
    doc = json.loads(response.content)
    assert_openvex_rules(doc)
    if OPENVEX_SCHEMA is not None:
        jsonschema.Draft202012Validator(OPENVEX_SCHEMA).validate(doc)
    by_id = {s["vulnerability"]["name"]: s for s in doc["statements"]}
    assert {k: v["status"] for k, v in by_id.items()} == {
        "CVE-2024-33599": "not_affected",
        "CVE-2024-27351": "not_affected",  # a false positive, in VEX's words
        "CVE-2023-4863": "affected",  # an accepted risk, with its action statement
        "CVE-2021-23337": "affected",
        "CVE-2024-2961": "fixed",
    }
    assert by_id["CVE-2024-33599"]["justification"] == "component_not_present"
    assert "impact_statement" not in by_id["CVE-2024-33599"]  # the older schema's oneOf
    assert by_id["CVE-2024-27351"]["vulnerability"]["aliases"] == ["GHSA-vm8q-m57g-pff3", "PYSEC-2024-47"]
    assert by_id["CVE-2023-4863"]["action_statement"].startswith("Risk accepted until ")
    product = by_id["CVE-2024-2961"]["products"][0]
    assert product["@id"].startswith("pkg:oci/app@sha256:5b0b93d3")
    assert product["@id"].endswith("?repository_url=127.0.0.1:5999/team/app")
    assert product["subcomponents"][0]["@id"] == "pkg:deb/debian/libc6@2.36-9%2Bdeb12u3?arch=amd64&distro=debian-12"
    # The same decisions give the same document.
    assert api.get(f"/api/v1/images/{FACTORY_DIGEST}/vex").content == response.content


def test_cyclonedx_vex_export_is_valid_cyclonedx_1_6(api, alice, app):
    decided_scan(alice, app)
    response = api.get(f"/api/v1/images/{FACTORY_DIGEST}/vex?format=cyclonedx")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("application/vnd.cyclonedx+json")
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(response.content.decode()) is None
    doc = json.loads(response.content)
    analysis = {v["id"]: v["analysis"] for v in doc["vulnerabilities"]}
    assert analysis["CVE-2024-33599"]["state"] == "not_affected"
    assert analysis["CVE-2024-33599"]["justification"] == "code_not_present"
    assert analysis["CVE-2024-27351"]["state"] == "false_positive"
    assert analysis["CVE-2023-4863"]["state"] == "exploitable"
    assert analysis["CVE-2023-4863"]["response"] == ["will_not_fix"]
    assert analysis["CVE-2024-2961"]["state"] == "resolved"
    assert doc["metadata"]["component"]["type"] == "container"


@pytest.mark.parametrize("fmt", ["openvex", "cyclonedx"])
def test_exported_vex_suppresses_the_same_findings_in_the_cli_policy(alice, app, fmt):
    job = decided_scan(alice, app)
    document = triage.image_vex(job.image, fmt)
    plain = report_from_scan(job)
    plain = replace(plain, findings=[replace(f, suppression=None) for f in plain.findings])
    applied = policy.apply_policy(plain, vex=policy.parse_vex(document, source=fmt), today=timezone.localdate())
    suppressed = {f.id for f in applied.findings if f.suppression is not None}
    assert suppressed == {"CVE-2024-33599", "CVE-2024-27351"}


def test_vex_of_an_unscanned_image_or_an_unknown_format(api):
    image = Image.objects.create(digest=digest(9))
    assert api.get(f"/api/v1/images/{image.digest}/vex").status_code == 404
    assert api.get(f"/api/v1/images/{digest(8)}/vex").status_code == 404
    response = api.get(f"/api/v1/images/{image.digest}/vex?format=csaf")
    assert response.status_code == 404
    assert "openvex" in response.json()["detail"]


# --- VEX in ------------------------------------------------------------------------------------------------------


def test_import_openvex_from_a_vendor_applies_everywhere(api, app, other):
    first = store_scan(app, "1.4", FACTORY_DIGEST)
    text = (ENGINE_VEX / "openvex-image.json").read_text()
    response = api.post("/api/v1/vex", text, content_type="application/json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["source"] == "vex:Team App <security@example.com>"
    assert len(body["created"]) == 2
    assert body["findings_changed"] == 2
    nscd = Decision.objects.get(vulnerability_id="CVE-2024-33599")
    assert (nscd.scope, nscd.state, nscd.justification) == ("everywhere", "not_affected",
                                                           "vulnerable_code_not_in_execute_path")  # fmt: skip
    assert nscd.purl == "pkg:deb/debian/libc6@2.36-9+deb12u3?arch=amd64"  # the version the vendor named
    assert nscd.reason == "nscd is not installed and not started in this image."
    assert nscd.owner.username == "alice"
    assert states(first)["CVE-2024-33599"] == FindingState.NOT_AFFECTED
    assert states(first)["CVE-2024-2961"] == FindingState.UNDER_INVESTIGATION
    assert states(store_scan(other, "1", digest(5)))["CVE-2024-33599"] == FindingState.NOT_AFFECTED

    again = api.post("/api/v1/vex", text, content_type="application/json").json()
    assert (again["created"], again["changed"], len(again["unchanged"])) == ([], [], 2)
    assert Decision.objects.count() == 2


def test_import_cyclonedx_vex_into_one_repository(api, app, other):
    in_app = store_scan(app, "1.4", FACTORY_DIGEST, [make_lodash_finding(), make_django_finding(), make_kev_finding()])
    text = (ENGINE_VEX / "cyclonedx-vex.json").read_text()
    response = api.post("/api/v1/vex?repository=team/app&source=team-app", text, content_type="application/json")
    assert response.status_code == 201, response.content
    assert response.json()["source"] == "vex:team-app"
    assert states(in_app) == {
        "CVE-2021-23337": FindingState.NOT_AFFECTED,
        "CVE-2024-27351": FindingState.FALSE_POSITIVE,
        "CVE-2023-4863": FindingState.AFFECTED,
    }
    lodash = Decision.objects.get(vulnerability_id="CVE-2021-23337")
    assert lodash.justification == "vulnerable_code_not_in_execute_path"  # code_not_reachable
    assert lodash.aliases == ["GHSA-35JH-R3H4-6JHM"]
    assert (lodash.scope, lodash.repository) == (DecisionScope.REPOSITORY, app)
    assert set(states(store_scan(other, "1", digest(6), [make_lodash_finding()])).values()) == {FindingState.OPEN}


def test_import_skips_what_it_cannot_hold_and_refuses_what_it_cannot_read(api, app):
    doc = {
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": "https://vendor.example/vex/1",
        "author": "Vendor",
        "timestamp": "2025-01-10T09:30:00Z",
        "version": 1,
        "statements": [
            {"vulnerability": {"name": "CVE-2024-2961"}, "status": "not_affected",
             "impact_statement": "no justification given", "products": [{"@id": "pkg:deb/debian/libc6"}]},
            {"vulnerability": {"name": "CVE-2024-33599"}, "status": "fixed",
             "products": [{"@id": f"pkg:oci/app@{FACTORY_DIGEST.replace(':', '%3A')}"}]},
            {"vulnerability": {"name": "CVE-2023-4863"}, "status": "fixed",
             "products": [{"@id": "pkg:deb/debian/libwebp7"}]},
        ],
    }  # fmt: skip
    body = api.post("/api/v1/vex", json.dumps(doc), content_type="application/json").json()
    assert len(body["created"]) == 1
    assert [re.sub(r":.*", "", s) for s in body["skipped"]] == ["statement 1", "statement 2"]
    assert "justification" in body["skipped"][0]
    assert "not a package" in body["skipped"][1]

    for bad in (b"{not json", b'{"statements": "x"}', b'{"bomFormat": "CycloneDX"}', "\xff".encode("latin-1")):
        response = api.post("/api/v1/vex", bad, content_type="application/json")
        assert response.status_code == 400, bad
        assert "vex" in response.json()
    assert api.post("/api/v1/vex?repository=nope", json.dumps(doc), content_type="application/json").status_code == 400


# --- the admin (without a browser; tests/ui drives it with one) -----------------------------------------------------


def changelist(admin_client, query: str = "") -> set[tuple[str, str]]:
    response = admin_client.get(reverse("admin:scans_finding_changelist") + query)
    assert response.status_code == 200
    return {(f.vulnerability_id, f.image.digest) for f in response.context["cl"].result_list}


def test_admin_filters_and_search(admin_client, alice, app, other):
    job = store_scan(app, "1.0", digest(1))
    store_scan(other, "1.0", digest(2), [make_django_finding()])
    triage.decide(finding(job, "CVE-2024-2961"), actor=alice, state="affected", reason="r", scope="image")
    assert len(changelist(admin_client)) == 5
    assert changelist(admin_client, "?severity__exact=CRITICAL") == {("CVE-2023-4863", digest(1))}
    assert changelist(admin_client, "?state__exact=affected") == {("CVE-2024-2961", digest(1))}
    assert changelist(admin_client, "?kev__exact=1") == {("CVE-2023-4863", digest(1))}
    assert len(changelist(admin_client, "?fixable=yes")) == 5
    assert changelist(admin_client, f"?repository={other.pk}") == {("CVE-2024-27351", digest(2))}
    assert changelist(admin_client, "?package=Django") == {("CVE-2024-27351", digest(1)), ("CVE-2024-27351", digest(2))}
    assert changelist(admin_client, "?q=PYSEC-2024-47") == {
        ("CVE-2024-27351", digest(1)),
        ("CVE-2024-27351", digest(2)),
    }
    assert changelist(admin_client, "?q=libwebp7") == {("CVE-2023-4863", digest(1))}
    store_scan(other, "1.1", digest(2), [])  # the image scanned again: nothing left in its latest scan
    assert len(changelist(admin_client, "?scan=latest")) == 4
    image_page = admin_client.get(reverse("admin:scans_image_change", args=[job.image_id])).content.decode()
    assert f"image__id__exact={job.image_id}&amp;scan=latest" in image_page


def test_admin_bulk_not_affected_asks_for_a_justification(admin_client, app):
    job = store_scan(app, "1.0", digest(1))
    rows = [finding(job, "CVE-2024-2961").pk, finding(job, "CVE-2024-33599").pk]
    url = reverse("admin:scans_finding_changelist") + "?package=libc6"
    post = {"action": "mark_not_affected", "index": "0", "_selected_action": rows}
    form = admin_client.post(url, post)
    assert form.status_code == 200
    assert b'name="justification"' in form.content
    assert not Decision.objects.exists()

    missing = admin_client.post(url, {**post, "apply": "Apply", "reason": "r", "scope": "repository"})
    assert missing.status_code == 200
    assert missing.context["form"].errors["justification"]

    done = admin_client.post(url, {**post, "apply": "Apply", "reason": "no iconv, no nscd", "scope": "repository",
                                   "justification": "vulnerable_code_not_present"})  # fmt: skip
    assert done.status_code == 302
    assert done["Location"].endswith("?package=libc6")
    assert states(job)["CVE-2024-2961"] == states(job)["CVE-2024-33599"] == FindingState.NOT_AFFECTED
    assert set(Decision.objects.values_list("owner__username", flat=True)) == {"admin"}


def test_admin_accept_risk_until_a_date_and_revoke(admin_client, app):
    job = store_scan(app, "1.0", digest(1))
    url = reverse("admin:scans_finding_changelist")
    until = timezone.localdate() + timedelta(days=14)
    post = {"action": "accept_risk", "index": "0", "_selected_action": [finding(job, "CVE-2023-4863").pk],
            "apply": "Apply", "reason": "offline only", "scope": "image", "expires": until.isoformat()}  # fmt: skip
    assert admin_client.post(url, post).status_code == 302
    decision = Decision.objects.get()
    assert (decision.state, decision.expires, decision.scope) == ("risk_accepted", until, "image")
    page = admin_client.get(reverse("admin:scans_decision_change", args=[decision.pk])).content.decode()
    assert "offline only" in page
    assert "created" in page  # the history inline

    revoke = {"action": "revoke_decisions", "index": "0", "_selected_action": [decision.pk]}
    assert admin_client.post(reverse("admin:scans_decision_changelist"), revoke).status_code == 302
    assert states(job)["CVE-2023-4863"] == FindingState.OPEN
    assert DecisionEvent.objects.filter(decision=decision, action="revoked").exists()


def test_admin_finding_links_to_its_evidence(admin_client, alpine_v37, app, tmp_path):
    job = scan_corpus_image("alpine37.oci.tar", tmp_path, app, "3.7")
    row = job.findings.get(package_name="musl")
    page = admin_client.get(reverse("admin:scans_finding_change", args=[row.pk])).content.decode()
    evidence = row.evidence[0]
    advisory = Advisory.objects.get(advisory_id=evidence["advisory_id"], feed=evidence["feed"])
    assert reverse("admin:advisories_advisory_change", args=[advisory.pk]) in page


# --- a real image and the real Alpine secdb -------------------------------------------------------------------------


@pytest.fixture
def alpine_v37() -> None:
    run = sync_feed("alpine-secdb", str(feed_path("alpine-secdb/yaml/v3.7")))
    assert run.state == "succeeded", run.error


def scan_corpus_image(archive: str, tmp_path: Path, repository: Repository, tag: str) -> ScanJob:
    """A push of a corpus image as `repository:tag`, analysed and matched through the services."""
    workdir = tmp_path / archive
    workdir.mkdir(parents=True, exist_ok=True)
    analysis = scan(str(corpus_file(archive)), workdir=workdir)
    # A docker archive has no manifest: it is keyed by its config digest, as `docker images` shows it.
    key = analysis.image.manifest_digest or analysis.image.config_digest
    job = record_push(repository.registry, PushEvent(repository.name, key, tag))
    assert job is not None
    store_analysis(job.image, analysis)
    store_report(job, match_analysis(analysis))
    ScanJob.objects.filter(pk=job.pk).update(state=ScanState.DONE, finished_at=timezone.now())
    return job


def test_a_rebuilt_alpine_keeps_its_decision_under_a_new_tag(alpine_v37, api, app, tmp_path):
    first = scan_corpus_image("alpine37.oci.tar", tmp_path, app, "3.7")
    musl = list(first.findings.filter(purl__startswith="pkg:apk/alpine/musl"))
    assert len(musl) == 2, "CVE-2019-14697 in musl and musl-utils 1.1.18-r3, fixed later in the v3.7 secdb"
    for row in musl:
        response = triage_post(api, row, state="not_affected", justification="vulnerable_code_not_in_execute_path",
                               reason="no untrusted input reaches musl's affected code", scope="repository",
                               match="purl")  # fmt: skip
        assert response.status_code == 201, response.content
    purls = set(Decision.objects.values_list("purl", flat=True))
    assert purls == {"pkg:apk/alpine/musl", "pkg:apk/alpine/musl-utils"}

    rebuilt = scan_corpus_image("alpine37.docker.tar", tmp_path, app, "3.7-rebuilt")
    assert rebuilt.image != first.image
    assert rebuilt.image.tags.get().name == "3.7-rebuilt"
    rebuilt_states = set(rebuilt.findings.values_list("package_name", "state"))
    assert rebuilt_states == {("musl", "not_affected"), ("musl-utils", "not_affected")}


def test_import_refuses_nul_characters_and_deep_nesting_with_a_400(api):
    doc = json.loads((ENGINE_VEX / "openvex-image.json").read_text())
    doc["statements"][0]["impact_statement"] = "nul \u0000 here"
    for body, params in (
        (json.dumps(doc).encode(), ""),
        (b"[" * 100_000 + b"]" * 100_000, ""),
        ((ENGINE_VEX / "openvex-image.json").read_bytes(), "?repository=a%00b"),
        ((ENGINE_VEX / "openvex-image.json").read_bytes(), "?source=x%00"),
    ):
        response = api.post(f"/api/v1/vex{params}", body, content_type="application/json")
        assert response.status_code == 400, (params, response.content[:200])
    assert not Decision.objects.exists()
