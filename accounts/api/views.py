from rest_framework import viewsets

from accounts.api.filters import AuditEventFilter
from accounts.api.serializers import AuditEventSerializer
from accounts.models import AuditEvent
from accounts.permissions import IsAdmin


class AuditEventViewSet(viewsets.ReadOnlyModelViewSet):
    """Changes to configuration and triage decisions, newest first (admins only)."""

    queryset = AuditEvent.objects.all()
    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilter
    permission_classes = [IsAdmin]
