from django.db import models


class ScanState(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


ACTIVE_STATES = (ScanState.QUEUED, ScanState.RUNNING)


class ImageKind(models.TextChoices):
    MANIFEST = "manifest"
    INDEX = "index"
    ARCHIVE = "archive"
    SBOM = "sbom"  # an uploaded SBOM: its digest is the document's


class Severity(models.TextChoices):
    CRITICAL = "CRITICAL"
    HIGH = "HIGH"
    MEDIUM = "MEDIUM"
    LOW = "LOW"
    UNKNOWN = "UNKNOWN"


SEVERITY_RANK = {Severity.CRITICAL: 4, Severity.HIGH: 3, Severity.MEDIUM: 2, Severity.LOW: 1, Severity.UNKNOWN: 0}


class FindingState(models.TextChoices):
    """A finding's one state: open, set aside by a policy file, or what the deciding triage decision says."""

    OPEN = "open"
    SUPPRESSED = "suppressed"  # by an ignore file or a VEX document given to the scan
    NOT_AFFECTED = "not_affected"
    AFFECTED = "affected"
    FIXED = "fixed"
    UNDER_INVESTIGATION = "under_investigation"
    FALSE_POSITIVE = "false_positive"
    RISK_ACCEPTED = "risk_accepted"


class DecisionState(models.TextChoices):
    """A triage decision's state: VEX's four, plus CycloneDX's false positive and an accepted risk."""

    NOT_AFFECTED = "not_affected"
    AFFECTED = "affected"
    FIXED = "fixed"
    UNDER_INVESTIGATION = "under_investigation"
    FALSE_POSITIVE = "false_positive"
    RISK_ACCEPTED = "risk_accepted"


# Decided states that set a finding aside: it stays in the report, but no longer fails the gate.
# `affected` and `under_investigation` keep it open.
SETTLED_STATES = frozenset(
    {
        FindingState.SUPPRESSED,
        FindingState.NOT_AFFECTED,
        FindingState.FIXED,
        FindingState.FALSE_POSITIVE,
        FindingState.RISK_ACCEPTED,
    }
)


class Justification(models.TextChoices):
    """OpenVEX's five justifications for not_affected."""

    COMPONENT_NOT_PRESENT = "component_not_present"
    VULNERABLE_CODE_NOT_PRESENT = "vulnerable_code_not_present"
    VULNERABLE_CODE_NOT_IN_EXECUTE_PATH = "vulnerable_code_not_in_execute_path"
    VULNERABLE_CODE_CANNOT_BE_CONTROLLED_BY_ADVERSARY = "vulnerable_code_cannot_be_controlled_by_adversary"
    INLINE_MITIGATIONS_ALREADY_EXIST = "inline_mitigations_already_exist"


class DecisionScope(models.TextChoices):
    """Where a decision applies; the most specific one wins."""

    IMAGE = "image"
    REPOSITORY = "repository"
    EVERYWHERE = "everywhere"


class DecisionAction(models.TextChoices):
    CREATED = "created"
    CHANGED = "changed"
    REVOKED = "revoked"
    EXPIRED = "expired"


class ScanFailure(models.TextChoices):
    """Why a scan job failed, which decides whether the next push of its digest scans it again.

    Registry trouble is not the image's fault: the next push retries. The
    others would fail the same way again (a poison image), so they stick to
    the digest until someone forces a rescan.
    """

    REGISTRY = "registry"  # unreachable, 5xx past the retry cap, auth, not found
    IMAGE = "image"  # malformed or hostile content
    TIMEOUT = "timeout"  # over the per-size time limit
    WORKER_LOST = "worker_lost"  # its worker died (killed, out of memory) too many times
    INTERNAL = "internal"  # a bug in Vigil


STICKY_FAILURES = (ScanFailure.IMAGE, ScanFailure.TIMEOUT, ScanFailure.WORKER_LOST, ScanFailure.INTERNAL)
