from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.views.main import ChangeList
from django.db import transaction
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from advisories.models import Advisory
from scans.choices import DecisionScope, DecisionState, Justification, ScanState
from scans.models import (
    Decision,
    DecisionEvent,
    Finding,
    Image,
    ImageLayer,
    Package,
    Registry,
    Repository,
    ScanJob,
    Tag,
    TagEvent,
)
from scans.services import scanning, triage
from scans.services.backpressure import queue_overview
from scans.tasks import analyze_image


class RegistryForm(forms.ModelForm):
    url = forms.URLField(assume_scheme="https", help_text="Base URL, e.g. https://registry.example.com")
    password = forms.CharField(
        required=False, widget=forms.PasswordInput(render_value=False), help_text="Leave empty to keep the stored one."
    )
    webhook_secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="The registry sends it as `Authorization: Bearer <secret>`. Leave empty to keep the stored one.",
    )

    class Meta:
        model = Registry
        fields = ["name", "url", "username", "repositories"]

    def save(self, commit: bool = True) -> Registry:
        registry: Registry = super().save(commit=False)
        if self.cleaned_data.get("password"):
            registry.password = self.cleaned_data["password"]
        if self.cleaned_data.get("webhook_secret"):
            registry.webhook_secret = self.cleaned_data["webhook_secret"]
        if commit:
            registry.save()
        return registry


@admin.register(Registry)
class RegistryAdmin(admin.ModelAdmin):
    form = RegistryForm
    list_display = ["name", "url", "username", "repositories", "created_at"]
    search_fields = ["name", "url"]


@admin.register(Repository)
class RepositoryAdmin(admin.ModelAdmin):
    list_display = ["name", "registry", "created_at"]
    list_filter = ["registry"]
    search_fields = ["name"]


class LayerInline(admin.TabularInline):
    model = ImageLayer
    extra = 0
    can_delete = False
    readonly_fields = ["index", "digest", "diff_id", "media_type", "size"]


class TagInline(admin.TabularInline):
    model = Tag
    extra = 0
    readonly_fields = ["repository", "name", "updated_at"]


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ["digest", "kind", "os_pretty_name", "platform", "analyzed_at", "findings_link"]
    list_filter = ["kind", "os_id", "platform"]
    search_fields = ["digest", "manifest_digest", "tags__name", "tags__repository__name"]
    readonly_fields = [*(f.name for f in Image._meta.fields), "findings_link"]
    inlines = [TagInline, LayerInline]

    @admin.display(description="findings")
    def findings_link(self, image: Image) -> str:
        return findings_link(f"image__id__exact={image.pk}&scan=latest", "findings of the latest scan")


@admin.register(ScanJob)
class ScanJobAdmin(admin.ModelAdmin):
    list_display = ["id", "reference", "state", "failure", "attempts", "created_at", "started_at", "finished_at"]
    list_filter = ["state", "failure", "repository__registry"]
    search_fields = ["reference", "image__digest", "reason"]
    readonly_fields = [
        "image",
        "repository",
        "reference",
        "reason",
        "failure",
        "attempts",
        "lost_workers",
        "lease_owner",
        "lease_expires_at",
        "image_size",
        "time_limit",
        "created_at",
        "started_at",
        "finished_at",
    ]
    actions = ["retry"]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        # The backlog above the list (templates/admin/scans/scanjob/change_list.html).
        return super().changelist_view(request, {**(extra_context or {}), "queue": queue_overview()})

    @admin.action(description="Retry the selected failed scans (forced)")
    def retry(self, request: HttpRequest, queryset: QuerySet[ScanJob]) -> None:
        queued, refused = [], []
        for job in queryset.filter(state=ScanState.FAILED):
            try:
                new, created = scanning.retry_job(job.id)
            except scanning.ScanRequestError as exc:
                refused.append(str(exc))
                continue
            if created:
                queued.append(new.id)
                transaction.on_commit(lambda job_id=new.id: analyze_image.delay(job_id))
        skipped = queryset.exclude(state=ScanState.FAILED).count()
        self.message_user(request, f"{len(queued)} scan(s) queued again; {skipped} not failed, left alone.")
        for reason in refused:
            self.message_user(request, reason, messages.WARNING)


@admin.register(Package)
class PackageAdmin(admin.ModelAdmin):
    list_display = ["name", "version", "type", "arch", "source_name", "image"]
    list_filter = ["type"]
    search_fields = ["name", "purl", "source_name"]
    list_select_related = ["image"]


@admin.register(TagEvent)
class TagEventAdmin(admin.ModelAdmin):
    list_display = ["tag", "image", "seen_at"]
    list_select_related = ["tag__repository", "image"]


# --- triage: the admin is the triage tool ---------------------------------------------------------------------


def findings_link(query: str, text: str) -> str:
    url = reverse("admin:scans_finding_changelist")
    return format_html('<a href="{}?{}">{}</a>', url, query, text)


class InputFilter(admin.SimpleListFilter):
    """A list filter with a text box instead of a list of every value."""

    template = "admin/scans/input_filter.html"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("", "")]  # never shown; a filter without lookups is not shown at all

    def choices(self, changelist: ChangeList) -> Iterator[dict[str, object]]:
        others = [
            (key, value)
            for key, values in changelist.filter_params.items()
            if key != self.parameter_name
            for value in values
        ]
        yield {
            "selected": self.value() is None,
            "query_string": changelist.get_query_string(remove=[self.parameter_name]),
            "display": "All",
            "others": others,
            "value": self.value() or "",
        }


class PackageFilter(InputFilter):
    title = "package"
    parameter_name = "package"

    def queryset(self, request: HttpRequest, queryset: QuerySet[Finding]) -> QuerySet[Finding]:
        value = (self.value() or "").strip()
        return queryset.filter(Q(package_name=value) | Q(purl__istartswith=value)) if value else queryset


class FixableFilter(admin.SimpleListFilter):
    title = "fixable"
    parameter_name = "fixable"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("yes", "Fixed version available"), ("no", "No fix yet")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Finding]) -> QuerySet[Finding]:
        if self.value() == "yes":
            return queryset.exclude(fixed_versions=[])
        if self.value() == "no":
            return queryset.filter(fixed_versions=[])
        return queryset


class RepositoryFilter(admin.SimpleListFilter):
    title = "repository"
    parameter_name = "repository"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(str(r.pk), str(r)) for r in Repository.objects.select_related("registry").order_by("name")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Finding]) -> QuerySet[Finding]:
        if not self.value():
            return queryset
        in_repository = Q(scan__repository=self.value()) | Q(image__tags__repository=self.value())
        return queryset.filter(in_repository).distinct()


class LatestScanFilter(admin.SimpleListFilter):
    title = "scan"
    parameter_name = "scan"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("latest", "Latest scan of each image")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Finding]) -> QuerySet[Finding]:
        if self.value() != "latest":
            return queryset
        latest = (
            ScanJob.objects.filter(image=OuterRef("image"), state=ScanState.DONE, matched_at__isnull=False)
            .order_by("-finished_at", "-id")
            .values("id")[:1]
        )
        return queryset.filter(scan_id=Subquery(latest))


class _TriageForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))
    scope = forms.ChoiceField(
        choices=DecisionScope.choices,
        initial=DecisionScope.REPOSITORY,
        help_text="Repository: this image and every later tag of its repository.",
    )


class NotAffectedForm(_TriageForm):
    justification = forms.ChoiceField(choices=[("", "---------"), *Justification.choices])
    field_order = ["justification", "reason", "scope"]


class AcceptRiskForm(_TriageForm):
    expires = forms.DateField(
        widget=forms.DateInput(attrs={"type": "date"}), help_text="The last day; then the findings open again."
    )
    field_order = ["expires", "reason", "scope"]


def _triage_action(
    modeladmin: "FindingAdmin", request: HttpRequest, queryset: QuerySet[Finding], state: str, form_class: type
) -> TemplateResponse | None:
    """An action with an intermediate form; None sends the user back to the filtered list."""
    form = form_class(request.POST if "apply" in request.POST else None)
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        try:
            decisions = triage.decide_many(
                queryset.select_related("scan__repository", "image"),
                actor=request.user,
                state=state,
                reason=data["reason"],
                scope=data["scope"],
                justification=data.get("justification", ""),
                expires=data.get("expires"),
            )
        except triage.TriageError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        else:
            modeladmin.message_user(
                request,
                f"{queryset.count()} finding(s) marked {state} by {len(decisions)} decision(s).",
                messages.SUCCESS,
            )
            return None
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": f"Mark {queryset.count()} finding(s) {state.replace('_', ' ')}",
        "opts": modeladmin.model._meta,
        "form": form,
        "findings": queryset[:200],
        "count": queryset.count(),
        "action": request.POST.get("action", ""),
        "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
        "select_across": request.POST.get("select_across", "0"),
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "media": modeladmin.media + form.media,
    }
    return TemplateResponse(request, "admin/scans/finding/triage_action.html", context)


@admin.register(Finding)
class FindingAdmin(admin.ModelAdmin):
    list_display = [
        "vulnerability_id", "package_name", "package_version", "severity", "state", "kev", "fixable_column",
        "image_link", "scan_id", "decision_link",
    ]  # fmt: skip
    list_filter = [
        "severity", "state", "kev", FixableFilter, RepositoryFilter, PackageFilter, LatestScanFilter, "package_type",
    ]  # fmt: skip
    search_fields = ["ids_text", "package_name", "purl"]
    search_help_text = "A CVE or any other id of the vulnerability (GHSA, PYSEC ...), or a package name or purl."
    list_select_related = ["image", "decision__image", "decision__repository__registry"]
    ordering = ["-scan_id", "-severity_rank", "package_name", "vulnerability_id"]
    actions = ["mark_not_affected", "accept_risk"]
    fieldsets = [
        (None, {"fields": ["vulnerability_id", "aliases", "title", "severity", "cvss_vector", "cvss_score"]}),
        ("Triage", {"fields": ["state", "decision_link", "suppression"]}),
        ("Package", {"fields": ["package_type", "package_name", "package_version", "purl", "path", "layer_index"]}),
        ("Fix", {"fields": ["fix_state", "fixed_versions"]}),
        ("Exploitation", {"fields": ["kev", "kev_date_added", "epss_score", "epss_percentile"]}),
        ("Evidence", {"fields": ["evidence_links", "references_links", "description"]}),
        ("Scan", {"fields": ["image_link", "scan"]}),
    ]

    def get_readonly_fields(self, request: HttpRequest, obj: Finding | None = None) -> list[str]:
        computed = ["decision_link", "evidence_links", "references_links", "image_link"]
        return [f.name for f in Finding._meta.fields] + computed

    # Read-only: findings change only through triage decisions (the actions here, or the API).
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Finding | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Finding | None = None) -> bool:
        return False

    @admin.display(description="fixable", boolean=True)
    def fixable_column(self, finding: Finding) -> bool:
        return finding.fixable

    @admin.display(description="image")
    def image_link(self, finding: Finding) -> str:
        url = reverse("admin:scans_image_change", args=[finding.image_id])
        return format_html('<a href="{}">{}</a>', url, finding.image.digest[:19])

    @admin.display(description="decision")
    def decision_link(self, finding: Finding) -> str:
        if finding.decision_id is None:
            return "-"
        url = reverse("admin:scans_decision_change", args=[finding.decision_id])
        return format_html('<a href="{}">#{} {}</a>', url, finding.decision_id, finding.decision.scope_label)

    @admin.display(description="evidence")
    def evidence_links(self, finding: Finding) -> str:
        """Each advisory record that decided the match, linked to its row in the advisories admin."""
        records = [e for e in finding.evidence if isinstance(e, dict) and e.get("advisory_id")]
        wanted = Q()
        for e in records:
            wanted |= Q(advisory_id=e["advisory_id"], feed=e.get("feed", ""))
        found = {(a.advisory_id, a.feed): a.pk for a in Advisory.objects.filter(wanted)} if records else {}
        items = []
        for e in records:
            pk = found.get((e["advisory_id"], e.get("feed", "")))
            if pk is not None:
                url = reverse("admin:advisories_advisory_change", args=[pk])
            else:
                url = reverse("admin:advisories_advisory_changelist") + "?" + urlencode({"q": e["advisory_id"]})
            items.append((url, e["advisory_id"], e.get("source", ""), e.get("range", "") or e.get("status", "")))
        if not items:
            return "-"
        return format_html("<ul>{}</ul>", format_html_join("", '<li><a href="{}">{}</a> ({}): {}</li>', items))

    @admin.display(description="references")
    def references_links(self, finding: Finding) -> str:
        urls = [u for u in finding.references if isinstance(u, str) and u.startswith(("https://", "http://"))]
        if not urls:
            return "-"
        return format_html("<ul>{}</ul>", format_html_join("", '<li><a href="{}" rel="noopener">{}</a></li>',
                                                           ((u, u) for u in urls)))  # fmt: skip

    @admin.action(description="Mark not affected (with a justification) …")
    def mark_not_affected(self, request: HttpRequest, queryset: QuerySet[Finding]) -> TemplateResponse | None:
        return _triage_action(self, request, queryset, DecisionState.NOT_AFFECTED, NotAffectedForm)

    @admin.action(description="Accept the risk until a date …")
    def accept_risk(self, request: HttpRequest, queryset: QuerySet[Finding]) -> TemplateResponse | None:
        return _triage_action(self, request, queryset, DecisionState.RISK_ACCEPTED, AcceptRiskForm)


class DecisionEventInline(admin.TabularInline):
    model = DecisionEvent
    extra = 0
    can_delete = False
    fields = ["at", "action", "actor", "before", "after", "note"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Decision | None = None) -> bool:
        return False


class ActiveFilter(admin.SimpleListFilter):
    title = "active"
    parameter_name = "active"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("yes", "Active"), ("no", "Revoked")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Decision]) -> QuerySet[Decision]:
        if self.value() in ("yes", "no"):
            return queryset.filter(revoked_at__isnull=self.value() == "yes")
        return queryset


@admin.register(Decision)
class DecisionAdmin(admin.ModelAdmin):
    """Decisions are made from the findings list (or the API); here they are read and revoked."""

    list_display = [
        "id", "vulnerability_id", "package_label", "state", "justification", "scope_label", "expires", "owner",
        "source", "updated_at", "revoked_at", "findings_column",
    ]  # fmt: skip
    list_filter = [ActiveFilter, "state", "scope", "justification", "source"]
    search_fields = ["vulnerability_id", "aliases", "package_name", "purl", "reason"]
    list_select_related = ["image", "repository__registry", "owner"]
    actions = ["revoke_decisions"]
    inlines = [DecisionEventInline]

    def get_readonly_fields(self, request: HttpRequest, obj: Decision | None = None) -> list[str]:
        return [f.name for f in Decision._meta.fields] + ["findings_column"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Decision | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Decision | None = None) -> bool:
        return False

    @admin.display(description="findings")
    def findings_column(self, decision: Decision) -> str:
        return findings_link(f"decision__id__exact={decision.pk}", "findings")

    @admin.action(description="Revoke the selected decisions")
    def revoke_decisions(self, request: HttpRequest, queryset: QuerySet[Decision]) -> None:
        revoked = 0
        for decision in queryset.filter(revoked_at__isnull=True):
            triage.revoke(decision, actor=request.user, reason="revoked in the admin")
            revoked += 1
        self.message_user(request, f"{revoked} decision(s) revoked; their findings were decided again.")
