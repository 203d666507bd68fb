"""Triage: decisions about findings, how they apply to every scan, VEX in and out.

A decision names a vulnerability (by any of its ids) in a package (by name
and type, or by purl) within a scope: one image, one repository, or
everywhere. The finding's one `state` field says what the deciding decision
says, and `Finding.decision` links it:

- the most specific scope wins (image, then repository, then everywhere),
  and within a scope the newest (last changed) decision;
- revoked decisions and risk acceptances past their expiry day never apply;
- with no decision, a finding is `suppressed` when a policy file set it
  aside, else `open`.

Decisions apply when findings are stored (`apply_decisions`, called by
`store_report`), so later scans and new tags of a repository inherit them,
and at once to the findings stored so far when a decision is made, changed
or revoked. `expire_risk_acceptances` reopens the findings of expired risk
acceptances; it is meant to run daily from Celery beat.

Functions take model instances and primitives, never requests or serializers.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import urlsplit

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.db.models import Q, QuerySet
from django.db.models.functions import Upper
from django.utils import timezone
from packageurl import PackageURL

from accounts import audit
from scans.choices import SETTLED_STATES, DecisionAction, DecisionScope, DecisionState, FindingState, Justification
from scans.engine import vex
from scans.engine.findings import Suppression
from scans.engine.policy import PolicyError, VexStatement, parse_vex, purl_matches, vex_reason
from scans.models import Decision, DecisionEvent, Finding, Image, Repository, ScanJob, Tag

User = AbstractBaseUser | AnonymousUser
# image 3 > repository 2 > everywhere 1
SPECIFICITY = {DecisionScope.IMAGE: 3, DecisionScope.REPOSITORY: 2, DecisionScope.EVERYWHERE: 1}
_CVE = re.compile(r"^CVE-\d{4}-\d+$", re.IGNORECASE)
_CHUNK = 200


class TriageError(ValueError):
    """A decision that cannot be made as asked; `field` names the input at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _audit(actor: User | None, action: str, obj: Decision, before: Any, after: Any) -> None:
    """The one place triage writes to the audit log; DecisionEvent keeps triage's own history as well."""
    audit.record(_user(actor), action, obj, before, after)


def _user(actor: User | None) -> Any:
    return actor if actor is not None and actor.is_authenticated else None


# --- which decision applies -------------------------------------------------------------------------------


def _ids(row: Finding) -> set[str]:
    return {i.upper() for i in row.ids_text.split()} or {row.vulnerability_id.upper()}


def _decision_ids(decision: Decision) -> set[str]:
    return {decision.vulnerability_id.upper(), *(a.upper() for a in decision.aliases)}


def names_package(decision: Decision, row: Finding) -> bool:
    if decision.purl:
        return bool(row.purl) and purl_matches(decision.purl, row.purl)
    if decision.package_type and decision.package_type != row.package_type:
        return False
    return decision.package_name == row.package_name


def _in_scope(decision: Decision, image_id: int, repositories: set[int]) -> bool:
    if decision.scope == DecisionScope.IMAGE:
        return decision.image_id == image_id
    if decision.scope == DecisionScope.REPOSITORY:
        return decision.repository_id in repositories
    return True


def _candidates(ids: set[str], today: date) -> dict[str, list[Decision]]:
    """Active, unexpired decisions by upper-cased vulnerability id, for the given ids."""
    found: dict[str, list[Decision]] = defaultdict(list)
    wanted = sorted(ids)
    for start in range(0, len(wanted), _CHUNK):
        rows = (
            Decision.objects.annotate(vid=Upper("vulnerability_id"))
            .filter(vid__in=wanted[start : start + _CHUNK], revoked_at__isnull=True)
            .exclude(state=DecisionState.RISK_ACCEPTED, expires__lt=today)
        )
        for decision in rows:
            for vuln_id in _decision_ids(decision):
                found[vuln_id].append(decision)
    return found


def deciding(row: Finding, repositories: set[int], candidates: dict[str, list[Decision]]) -> Decision | None:
    """The decision that sets this finding's state: most specific scope, then newest."""
    best: Decision | None = None
    best_key: tuple[int, Any, int] | None = None
    seen: set[int] = set()
    for vuln_id in _ids(row):
        for decision in candidates.get(vuln_id, ()):
            if decision.id in seen:
                continue
            seen.add(decision.id)
            if not names_package(decision, row) or not _in_scope(decision, row.image_id, repositories):
                continue
            key = (SPECIFICITY[DecisionScope(decision.scope)], decision.updated_at, decision.id)
            if best_key is None or key > best_key:
                best, best_key = decision, key
    return best


def _settle(row: Finding, decision: Decision | None) -> bool:
    """Set the row's state and decision; whether anything changed."""
    if decision is not None:
        state = FindingState(decision.state)
    else:
        state = FindingState.SUPPRESSED if row.suppression else FindingState.OPEN
    decision_id = decision.id if decision is not None else None
    if row.state == state and row.decision_id == decision_id:
        return False
    row.state = state
    row.decision = decision
    return True


def _repositories_of_images(image_ids: Iterable[int]) -> dict[int, set[int]]:
    found: dict[int, set[int]] = defaultdict(set)
    for image_id, repository_id in Tag.objects.filter(image_id__in=set(image_ids)).values_list(
        "image_id", "repository_id"
    ):
        found[image_id].add(repository_id)
    return found


def apply_decisions(scan: ScanJob, rows: Sequence[Finding], *, today: date | None = None) -> None:
    """Set state and decision on a scan's new (unsaved) finding rows; `store_report` calls it."""
    if not rows:
        return
    repositories = _repositories_of_images([scan.image_id])[scan.image_id]
    if scan.repository_id:
        repositories.add(scan.repository_id)
    candidates = _candidates(set().union(*(_ids(r) for r in rows)), today or timezone.localdate())
    for row in rows:
        _settle(row, deciding(row, repositories, candidates))


def refresh(findings: QuerySet[Finding], *, today: date | None = None) -> int:
    """Decide the stored findings again (after a decision changed); returns how many changed."""
    rows = list(findings.select_related("scan").order_by())
    if not rows:
        return 0
    by_image = _repositories_of_images(r.image_id for r in rows)
    candidates = _candidates(set().union(*(_ids(r) for r in rows)), today or timezone.localdate())
    changed = []
    for row in rows:
        repositories = set(by_image.get(row.image_id, ()))
        if row.scan.repository_id:
            repositories.add(row.scan.repository_id)
        if _settle(row, deciding(row, repositories, candidates)):
            changed.append(row)
    Finding.objects.bulk_update(changed, ["state", "decision"], batch_size=1000)
    return len(changed)


def _named_by(decisions: Sequence[Decision]) -> QuerySet[Finding]:
    """Stored findings any of these decisions may speak of (by id; package and scope are checked later)."""
    ids = sorted(set().union(*(_decision_ids(d) for d in decisions))) if decisions else []
    if not ids:
        return Finding.objects.none()
    query = Q()
    for vuln_id in ids:
        query |= Q(ids_text__icontains=f" {vuln_id} ")
    linked = Q(decision__in=[d.id for d in decisions])
    return Finding.objects.filter(query | linked)


def _refresh_for(decisions: Sequence[Decision], today: date | None = None) -> int:
    changed = 0
    for start in range(0, len(decisions), _CHUNK):
        changed += refresh(_named_by(decisions[start : start + _CHUNK]), today=today)
    return changed


# --- making, changing and revoking decisions --------------------------------------------------------------


def version_less(purl: str) -> str:
    """`pkg:apk/alpine/musl@1.1.18-r3?arch=x86_64` -> `pkg:apk/alpine/musl`: any version, any build."""
    parsed = PackageURL.from_string(purl)
    return PackageURL(type=parsed.type, namespace=parsed.namespace, name=parsed.name).to_string()


def repository_of(finding: Finding) -> Repository:
    """The repository a finding's scan came from, else the one repository its image is tagged in."""
    if finding.scan.repository_id:
        return finding.scan.repository
    repositories = list(Repository.objects.filter(tags__image=finding.image_id).distinct()[:2])
    if len(repositories) != 1:
        what = "no repository" if not repositories else "several repositories"
        raise TriageError("scope", f"the finding's image is in {what}; choose the image or everywhere")
    return repositories[0]


def validate(state: str, justification: str, reason: str, expires: date | None, today: date) -> None:
    if state not in DecisionState.values:
        raise TriageError("state", f"unknown state {state!r}; choose {', '.join(DecisionState.values)}")
    if not reason.strip():
        raise TriageError("reason", "say why")
    if state == DecisionState.NOT_AFFECTED:
        if justification not in Justification.values:
            raise TriageError(
                "justification",
                f"not_affected needs one of OpenVEX's justifications: {', '.join(Justification.values)}",
            )
    elif justification:
        raise TriageError("justification", "a justification goes with not_affected only")
    if state == DecisionState.RISK_ACCEPTED:
        if expires is None:
            raise TriageError("expires", "a risk is accepted until a date; give `expires`")
        if expires < today:
            raise TriageError("expires", f"{expires} is in the past")
    elif expires is not None:
        raise TriageError("expires", "only a risk acceptance expires")


@dataclass(frozen=True)
class Subject:
    """What a decision is about, and where."""

    vulnerability_id: str
    aliases: tuple[str, ...] = ()
    package_type: str = ""
    package_name: str = ""
    purl: str = ""
    scope: str = DecisionScope.EVERYWHERE
    image: Image | None = None
    repository: Repository | None = None


def subject_of(finding: Finding, scope: str, *, by_purl: bool = False) -> Subject:
    if scope not in DecisionScope.values:
        raise TriageError("scope", f"unknown scope {scope!r}; choose {', '.join(DecisionScope.values)}")
    if by_purl and not finding.purl:
        raise TriageError("match", "the finding's package has no purl; decide by package name")
    return Subject(
        vulnerability_id=finding.vulnerability_id,
        aliases=tuple(finding.aliases),
        package_type="" if by_purl else finding.package_type,
        package_name="" if by_purl else finding.package_name,
        purl=version_less(finding.purl) if by_purl else "",
        scope=scope,
        image=finding.image if scope == DecisionScope.IMAGE else None,
        repository=repository_of(finding) if scope == DecisionScope.REPOSITORY else None,
    )


def _same_subject(subject: Subject, source: str) -> QuerySet[Decision]:
    return Decision.objects.filter(
        vulnerability_id__iexact=subject.vulnerability_id,
        package_type=subject.package_type,
        package_name=subject.package_name,
        purl=subject.purl,
        scope=subject.scope,
        image=subject.image,
        repository=subject.repository,
        source=source,
        revoked_at__isnull=True,
    ).order_by("-updated_at", "-id")


def record(
    subject: Subject,
    *,
    actor: User | None,
    state: str,
    reason: str,
    justification: str = "",
    expires: date | None = None,
    source: str = "",
    today: date | None = None,
) -> tuple[Decision, str]:
    """Make or change the active decision about `subject` from `source`; returns it and
    `created`, `changed` or `unchanged`. The caller refreshes the findings."""
    today = today or timezone.localdate()
    reason = reason.strip()
    validate(state, justification, reason, expires, today)
    owner = _user(actor)
    decision = _same_subject(subject, source).first()
    if decision is None:
        decision = Decision.objects.create(
            vulnerability_id=subject.vulnerability_id,
            aliases=list(subject.aliases),
            package_type=subject.package_type,
            package_name=subject.package_name,
            purl=subject.purl,
            scope=subject.scope,
            image=subject.image,
            repository=subject.repository,
            state=state,
            justification=justification,
            reason=reason,
            expires=expires,
            owner=owner,
            source=source,
        )
        after = decision.snapshot()
        DecisionEvent.objects.create(decision=decision, action=DecisionAction.CREATED, actor=owner, after=after)
        _audit(actor, "triage.decision.created", decision, None, after)
        return decision, "created"
    wanted = {"state": state, "justification": justification, "reason": reason, "expires": expires}
    if all(getattr(decision, k) == v for k, v in wanted.items()):
        return decision, "unchanged"
    before = decision.snapshot()
    for key, value in wanted.items():
        setattr(decision, key, value)
    decision.owner = owner or decision.owner
    decision.expired_at = None
    decision.aliases = sorted(set(decision.aliases) | set(subject.aliases))
    decision.save()
    after = decision.snapshot()
    DecisionEvent.objects.create(
        decision=decision, action=DecisionAction.CHANGED, actor=owner, before=before, after=after
    )
    _audit(actor, "triage.decision.changed", decision, before, after)
    return decision, "changed"


@transaction.atomic
def decide(
    finding: Finding,
    *,
    actor: User | None,
    state: str,
    reason: str,
    scope: str = DecisionScope.REPOSITORY,
    justification: str = "",
    expires: date | None = None,
    by_purl: bool = False,
    today: date | None = None,
) -> Decision:
    """Triage one finding: the decision applies at once to every stored finding it names in its scope."""
    subject = subject_of(finding, scope, by_purl=by_purl)
    decision, _ = record(
        subject, actor=actor, state=state, reason=reason, justification=justification, expires=expires, today=today
    )
    _refresh_for([decision], today)
    return decision


@transaction.atomic
def decide_many(findings: Iterable[Finding], **kwargs: Any) -> list[Decision]:
    """`decide` for each finding; findings that name the same subject share one decision."""
    decisions: dict[int, Decision] = {}
    today = kwargs.pop("today", None)
    by_purl = kwargs.pop("by_purl", False)
    scope = kwargs.pop("scope", DecisionScope.REPOSITORY)
    for finding in findings:
        decision, _ = record(subject_of(finding, scope, by_purl=by_purl), today=today, **kwargs)
        decisions[decision.id] = decision
    _refresh_for(list(decisions.values()), today)
    return list(decisions.values())


@transaction.atomic
def revoke(decision: Decision, *, actor: User | None, reason: str = "") -> int:
    """Withdraw a decision; its findings fall back to the next applicable one, or open. Returns how many changed."""
    decision = Decision.objects.select_for_update().get(pk=decision.pk)
    if decision.revoked_at is not None:
        raise TriageError("decision", f"decision {decision.id} was revoked on {decision.revoked_at:%Y-%m-%d}")
    before = decision.snapshot()
    decision.revoked_at = timezone.now()
    decision.revoked_by = _user(actor)
    decision.save(update_fields=["revoked_at", "revoked_by"])
    after = decision.snapshot()
    DecisionEvent.objects.create(
        decision=decision,
        action=DecisionAction.REVOKED,
        actor=_user(actor),
        before=before,
        after=after,
        note=reason.strip(),
    )
    _audit(actor, "triage.decision.revoked", decision, before, after)
    return refresh(decision.findings.all())


def expire_risk_acceptances(today: date | None = None) -> int:
    """Reopen the findings of risk acceptances whose last day has passed; returns how many changed.

    Idempotent (each expiry is recorded once): schedule it daily with Celery
    beat. Expired acceptances already stop applying to new scans without it.
    """
    today = today or timezone.localdate()
    changed = 0
    due = Decision.objects.filter(
        state=DecisionState.RISK_ACCEPTED, revoked_at__isnull=True, expired_at__isnull=True, expires__lt=today
    )
    for decision_id in due.values_list("id", flat=True):
        with transaction.atomic():
            decision = Decision.objects.select_for_update().get(pk=decision_id)
            if decision.expired_at is not None:
                continue
            decision.expired_at = timezone.now()
            decision.save(update_fields=["expired_at"])
            note = f"risk accepted until {decision.expires}; the findings are open again"
            DecisionEvent.objects.create(decision=decision, action=DecisionAction.EXPIRED, actor=None, note=note)
            _audit(None, "triage.decision.expired", decision, None, {"expired": True, "note": note})
            changed += refresh(decision.findings.all(), today=today)
    return changed


# --- reports -----------------------------------------------------------------------------------------------


def suppression_of(row: Finding, decision: Decision | None) -> Suppression | None:
    """What the report writers and the gate see: a settled decision, else the policy file's suppression."""
    if decision is not None and row.state in SETTLED_STATES:
        owner = f" ({decision.owner.get_username()})" if decision.owner_id else ""
        return Suppression(
            by="triage",
            reason=vex_reason(decision.state, decision.justification, decision.reason),
            source=f"decision {decision.id}{owner}",
            expires=decision.expires,
        )
    if decision is not None:
        return None  # affected / under investigation: open, whatever a policy file said
    if row.suppression:
        data = dict(row.suppression)
        data["expires"] = date.fromisoformat(data["expires"]) if data.get("expires") else None
        return Suppression(**data)
    return None


# --- VEX out -------------------------------------------------------------------------------------------------


VEX_FORMATS = ("openvex", "cyclonedx")


def _vex_image(image: Image) -> vex.VexImage:
    tags = list(image.tags.select_related("repository__registry").order_by("repository__name", "name"))
    repository_url = ""
    if tags:
        repository = tags[0].repository
        repository_url = f"{urlsplit(repository.registry.url).netloc}/{repository.name}"
    return vex.VexImage(digest=image.digest, repository_url=repository_url, tags=tuple(t.name for t in tags))


def image_vex(image: Image, fmt: str, *, author: str = "Vigil") -> str:
    """The triage decisions about the image's latest scan, as OpenVEX or CycloneDX VEX."""
    from scans.services.findings import latest_scan

    if fmt not in VEX_FORMATS:
        raise TriageError("format", f"unknown VEX format {fmt!r}; choose {', '.join(VEX_FORMATS)}")
    scan = latest_scan(image)
    if scan is None:
        raise LookupError(f"{image.digest} has no completed scan yet")
    rows = scan.findings.filter(decision__isnull=False).exclude(purl="").select_related("decision__owner")
    entries = [
        vex.VexEntry(
            vulnerability_id=row.vulnerability_id,
            aliases=tuple(row.aliases),
            purl=row.purl,
            name=row.package_name,
            version=row.package_version,
            state=row.decision.state,
            reason=row.decision.reason,
            timestamp=row.decision.updated_at,
            justification=row.decision.justification,
            expires=row.decision.expires,
            author=row.decision.owner.get_username() if row.decision.owner_id else row.decision.source,
        )
        for row in rows
    ]
    # The newest decision dates the document, so the same decisions always give the same bytes.
    when = max((e.timestamp for e in entries), default=scan.matched_at or timezone.now())
    writer = vex.to_openvex if fmt == "openvex" else vex.to_cyclonedx_vex
    return writer(_vex_image(image), entries, author=author, when=when)


# --- VEX in --------------------------------------------------------------------------------------------------


@dataclass
class ImportResult:
    source: str
    created: list[int] = field(default_factory=list)
    changed: list[int] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # why, per statement and product
    findings_changed: int = 0


def _readable(text: str, source: str) -> None:
    """Refuse what parse_vex would choke on (deep nesting) or PostgreSQL cannot store (NUL)."""
    try:
        doc = json.loads(text)
    except RecursionError:
        raise PolicyError(f"{source}: the document is nested too deeply") from None
    except ValueError:
        return  # parse_vex says what is wrong with it
    stack = [doc]
    while stack:
        value = stack.pop()
        if isinstance(value, str) and "\x00" in value:
            raise PolicyError(f"{source}: the document contains NUL characters")
        if isinstance(value, dict):
            stack += [*value.keys(), *value.values()]
        elif isinstance(value, list):
            stack += value


def _document_label(text: str) -> str:
    doc = json.loads(text)
    metadata = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    for value in (doc.get("author"), doc.get("@id"), doc.get("serialNumber"), metadata.get("supplier", {})):
        if isinstance(value, dict):
            value = value.get("name")
        if isinstance(value, str) and value.strip():
            return value.strip()
    return "vex"


def _primary_id(ids: frozenset[str]) -> tuple[str, tuple[str, ...]]:
    ordered = sorted(ids, key=lambda i: (not _CVE.match(i), "://" in i, i))
    return ordered[0], tuple(ordered[1:])


def _statement_packages(statement: VexStatement) -> tuple[list[str], list[str]]:
    """The package purls a statement names, and what it names that is no package."""
    purls, other = [], []
    for target in statement.targets:
        for ref in target.subcomponents or (target.product,):
            is_package = ref.startswith("pkg:") and not ref.startswith(("pkg:oci/", "pkg:docker/"))
            (purls if is_package else other).append(ref)
    return list(dict.fromkeys(purls)), other


def _statement_decision(statement: VexStatement, label: str) -> tuple[str, str, str]:
    """(state, justification, reason) for a statement; TriageError when Vigil cannot hold it."""
    state = vex.DECISION_STATE.get(statement.status, "")
    justification = statement.justification
    justification = vex.OPENVEX_JUSTIFICATION.get(justification, justification)
    if state != DecisionState.NOT_AFFECTED:
        justification = ""
    elif not justification:
        raise TriageError("justification", "not_affected without a justification (an impact statement alone)")
    reason = statement.detail.strip() or f"{statement.status} according to {label}"
    return state, justification, reason


@transaction.atomic
def import_vex(
    text: str, *, actor: User | None, repository: Repository | None = None, source: str = ""
) -> ImportResult:
    """Decisions from an OpenVEX or CycloneDX VEX document (a base image vendor's, say).

    They apply everywhere, or in `repository`. A purl keeps the version the
    document gives: a vendor's statement about one build does not cover the
    next. Importing the same document again changes nothing. Raises
    `PolicyError` for a document that cannot be read.
    """
    _readable(text, source or "vex")
    statements = parse_vex(text, source=source or "vex")
    label = source or _document_label(text)
    result = ImportResult(source=f"vex:{label}"[:255])
    scope = DecisionScope.REPOSITORY if repository is not None else DecisionScope.EVERYWHERE
    touched: dict[int, Decision] = {}
    for statement in statements:
        where = f"statement {statement.number}"
        try:
            state, justification, reason = _statement_decision(statement, label)
        except TriageError as exc:
            result.skipped.append(f"{where}: {exc}")
            continue
        purls, other = _statement_packages(statement)
        result.skipped += [f"{where}: {ref} is not a package purl" for ref in other]
        vulnerability_id, aliases = _primary_id(statement.ids)
        for purl in purls:
            subject = Subject(vulnerability_id, aliases, purl=purl, scope=scope, repository=repository)
            decision, outcome = record(
                subject,
                actor=actor,
                state=state,
                reason=reason,
                justification=justification,
                source=result.source,
            )
            getattr(result, outcome).append(decision.id)
            if outcome != "unchanged":
                touched[decision.id] = decision
    result.findings_changed = _refresh_for(list(touched.values()))
    return result
