from django.db.models import Max
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from advisories.api.serializers import FeedSerializer, VulnerabilitySerializer
from advisories.models import Advisory, AliasKind, Epss, FeedSync, Kev, SyncState


class AdvisoryViewSet(viewsets.ViewSet):
    """Advisories by any of their ids: CVE, GHSA, PYSEC, GO, DSA, DLA, USN, RHSA, ALPINE ..."""

    lookup_value_regex = r"[^/]+"

    @extend_schema(responses=VulnerabilitySerializer)
    def retrieve(self, request: Request, pk: str) -> Response:
        records = list(
            Advisory.objects.filter(alias_set__alias=pk)
            .distinct()
            .order_by("source", "advisory_id")
            .prefetch_related("alias_set", "severities", "affected")
        )
        if not records:
            raise NotFound(f"no advisory known as {pk!r}")
        aliases = sorted({a.alias for r in records for a in r.alias_set.all() if a.kind != AliasKind.RELATED} - {pk})
        cves = [x for x in (pk, *aliases) if x.startswith("CVE-")]
        data = {
            "id": pk,
            "aliases": aliases,
            "kev": Kev.objects.filter(cve_id__in=cves).first(),
            "epss": Epss.objects.filter(cve_id__in=cves).order_by("-score").first(),
            "records": records,
        }
        return Response(VulnerabilitySerializer(data).data)


class FeedViewSet(viewsets.ViewSet):
    """Each feed's latest sync, and how old its data is."""

    @extend_schema(responses=FeedSerializer(many=True))
    def list(self, request: Request) -> Response:
        latest_ids = FeedSync.objects.values("feed").annotate(latest=Max("id")).values("latest")
        good = (SyncState.SUCCEEDED, SyncState.UNCHANGED)
        last_good = dict(
            FeedSync.objects.filter(state__in=good)
            .values("feed")
            .annotate(at=Max("finished_at"))
            .values_list("feed", "at")
        )
        now = timezone.now()
        rows = []
        for run in FeedSync.objects.filter(id__in=latest_ids).order_by("feed"):
            run.last_success = last_good.get(run.feed)
            run.age_seconds = (now - run.last_success).total_seconds() if run.last_success else None
            rows.append(run)
        return Response(FeedSerializer(rows, many=True).data)
