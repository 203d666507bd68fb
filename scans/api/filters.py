import django_filters

from scans.models import Image, ScanJob


class ImageFilter(django_filters.FilterSet):
    registry = django_filters.CharFilter(field_name="tags__repository__registry__name", distinct=True)
    repository = django_filters.CharFilter(field_name="tags__repository__name", distinct=True)
    tag = django_filters.CharFilter(field_name="tags__name", distinct=True)
    os = django_filters.CharFilter(field_name="os_id")
    scan_state = django_filters.CharFilter(field_name="scan_jobs__state", distinct=True)

    class Meta:
        model = Image
        fields = ["kind", "platform"]


class ScanJobFilter(django_filters.FilterSet):
    image = django_filters.CharFilter(field_name="image__digest")

    class Meta:
        model = ScanJob
        fields = ["state"]
