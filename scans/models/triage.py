from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Upper

from scans.choices import DecisionAction, DecisionScope, DecisionState, Justification


class Decision(models.Model):
    """A person's (or a vendor's VEX) decision about one vulnerability in one package, within a scope.

    It names the package by name (and type), or by a purl: without a version
    the purl covers every version. It applies to every finding it names in
    its scope, in the scans stored so far and in later ones; among several
    decisions the most specific scope wins (image, then repository, then
    everywhere), and within a scope the newest. A decision is never deleted:
    it is revoked, and its changes are kept as DecisionEvent rows.
    """

    vulnerability_id = models.CharField(max_length=200, help_text="Any id of the vulnerability: CVE, GHSA, ...")
    aliases = models.JSONField(default=list, blank=True, help_text="Other ids it is known by")
    package_type = models.CharField(max_length=32, blank=True, help_text="deb, apk, pypi ...; empty for any")
    package_name = models.CharField(max_length=255, blank=True)
    purl = models.CharField(max_length=1024, blank=True, help_text="Instead of a name; without a version, any version")
    scope = models.CharField(max_length=16, choices=DecisionScope.choices)
    image = models.ForeignKey("scans.Image", on_delete=models.CASCADE, null=True, blank=True, related_name="decisions")
    repository = models.ForeignKey(
        "scans.Repository", on_delete=models.CASCADE, null=True, blank=True, related_name="decisions"
    )
    state = models.CharField(max_length=24, choices=DecisionState.choices)
    justification = models.CharField(max_length=64, choices=Justification.choices, blank=True)
    reason = models.TextField()
    expires = models.DateField(
        null=True, blank=True, help_text="Risk acceptances only: the last day it applies; then the finding reopens"
    )
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    source = models.CharField(
        max_length=255, blank=True, help_text="Empty for a person's decision; `vex:<document>` for an import"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    expired_at = models.DateTimeField(null=True, blank=True, help_text="When the expiry check reopened its findings")
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-updated_at", "-id"]
        indexes = [models.Index(Upper("vulnerability_id"), name="decision_vulnerability_upper")]
        constraints = [
            models.CheckConstraint(condition=~Q(package_name="") | ~Q(purl=""), name="decision_names_a_package"),
            models.CheckConstraint(
                condition=~Q(state=DecisionState.NOT_AFFECTED) | ~Q(justification=""),
                name="not_affected_has_justification",
            ),
            models.CheckConstraint(
                condition=Q(state=DecisionState.NOT_AFFECTED) | Q(justification=""),
                name="justification_only_for_not_affected",
            ),
            models.CheckConstraint(
                condition=Q(state=DecisionState.RISK_ACCEPTED, expires__isnull=False)
                | (~Q(state=DecisionState.RISK_ACCEPTED) & Q(expires__isnull=True)),
                name="risk_accepted_has_expiry",
            ),
            models.CheckConstraint(
                condition=Q(scope=DecisionScope.IMAGE, image__isnull=False, repository__isnull=True)
                | Q(scope=DecisionScope.REPOSITORY, image__isnull=True, repository__isnull=False)
                | Q(scope=DecisionScope.EVERYWHERE, image__isnull=True, repository__isnull=True),
                name="decision_scope_target",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.vulnerability_id} in {self.package_label}: {self.state} ({self.scope_label})"

    @property
    def package_label(self) -> str:
        if self.purl:
            return self.purl
        return f"{self.package_type}:{self.package_name}" if self.package_type else self.package_name

    @property
    def scope_label(self) -> str:
        if self.scope == DecisionScope.IMAGE and self.image_id:
            return f"image {self.image.digest[:19]}"
        if self.scope == DecisionScope.REPOSITORY and self.repository_id:
            return f"repository {self.repository}"
        return "everywhere"

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def snapshot(self) -> dict[str, object]:
        """What a DecisionEvent keeps of the decision before and after a change."""
        return {
            "state": self.state,
            "justification": self.justification,
            "reason": self.reason,
            "expires": self.expires.isoformat() if self.expires else None,
            "scope": self.scope,
            "image": self.image.digest if self.image_id else None,
            "repository": str(self.repository) if self.repository_id else None,
            "owner": self.owner.get_username() if self.owner_id else None,
            "revoked": self.revoked_at is not None,
        }


class DecisionEvent(models.Model):
    """One change to a decision: who, when, what before and after."""

    decision = models.ForeignKey(Decision, on_delete=models.CASCADE, related_name="events")
    action = models.CharField(max_length=16, choices=DecisionAction.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    at = models.DateTimeField(auto_now_add=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["decision", "at", "id"]

    def __str__(self) -> str:
        return f"{self.action} decision {self.decision_id} at {self.at:%Y-%m-%d %H:%M}"
