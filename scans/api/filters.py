import django_filters
from django.db.models import OuterRef, QuerySet, Subquery

from scans.models import Finding, Image, ScanJob


class ImageFilter(django_filters.FilterSet):
    registry = django_filters.CharFilter(field_name="tags__repository__registry__name", distinct=True)
    repository = django_filters.CharFilter(field_name="tags__repository__name", distinct=True)
    tag = django_filters.CharFilter(field_name="tags__name", distinct=True)
    os = django_filters.CharFilter(field_name="os_id")
    scan_state = django_filters.CharFilter(method="filter_scan_state")

    class Meta:
        model = Image
        fields = ["kind", "platform"]

    def filter_scan_state(self, queryset: QuerySet[Image], name: str, value: str) -> QuerySet[Image]:
        # The newest job's state, as the serializer shows it: an image that failed
        # once and was scanned since is not "failed".
        newest = ScanJob.objects.filter(image=OuterRef("pk")).order_by("-created_at", "-id").values("state")[:1]
        return queryset.annotate(newest_scan_state=Subquery(newest)).filter(newest_scan_state=value)


class ScanJobFilter(django_filters.FilterSet):
    image = django_filters.CharFilter(field_name="image__digest")

    class Meta:
        model = ScanJob
        fields = ["state"]


class FindingFilter(django_filters.FilterSet):
    severity = django_filters.BaseInFilter(field_name="severity", help_text="Comma-separated: CRITICAL,HIGH")
    fixable = django_filters.BooleanFilter(method="filter_fixable")
    kev = django_filters.BooleanFilter(field_name="kev")
    package = django_filters.CharFilter(field_name="package_name")
    id = django_filters.CharFilter(method="filter_id", help_text="Any id of the vulnerability: CVE, GHSA, …")
    state = django_filters.CharFilter(field_name="state")

    class Meta:
        model = Finding
        fields = ["fix_state"]

    def filter_fixable(self, queryset: QuerySet[Finding], name: str, value: bool) -> QuerySet[Finding]:
        return queryset.exclude(fixed_versions=[]) if value else queryset.filter(fixed_versions=[])

    def filter_id(self, queryset: QuerySet[Finding], name: str, value: str) -> QuerySet[Finding]:
        return queryset.filter(ids_text__contains=f" {value.strip()} ")
