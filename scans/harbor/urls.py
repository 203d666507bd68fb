"""Harbor's routes: its webhook, and the Scanner Adapter API under /api/v1/.

Harbor appends /api/v1/metadata, /api/v1/scan ... to the URL a scanner is
registered with, without trailing slashes: both forms are accepted.
"""

from django.urls import re_path

from scans.harbor import views
from scans.harbor.webhook import harbor_webhook

urlpatterns = [
    re_path(r"^webhooks/harbor/?$", harbor_webhook, name="webhook-harbor"),
    re_path(r"^api/v1/metadata/?$", views.MetadataView.as_view(), name="harbor-adapter-metadata"),
    re_path(r"^api/v1/scan/?$", views.ScanView.as_view(), name="harbor-adapter-scan"),
    re_path(
        r"^api/v1/scan/(?P<scan_request_id>[^/]+)/report/?$",
        views.ScanReportView.as_view(),
        name="harbor-adapter-report",
    ),
]
