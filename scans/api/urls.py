from django.urls import re_path
from rest_framework.routers import DefaultRouter

from scans.api import triage, views

# The routes are written without a trailing slash (POST /api/v1/scans); accept both.
router = DefaultRouter()
router.trailing_slash = "/?"  # the constructor only takes a bool
# Formats are chosen by ?format= or Accept; the .json suffix routes crashed the views that take no `format`.
router.include_format_suffixes = False
router.register("registries", views.RegistryViewSet)
router.register("repositories", views.RepositoryViewSet)
router.register("images", views.ImageViewSet)
router.register("scans", views.ScanJobViewSet)
router.register("findings", triage.FindingViewSet)
router.register("decisions", triage.DecisionViewSet)

urlpatterns = [
    # Repository names hold slashes, so the diff has its own route ahead of the router's.
    re_path(r"^repositories/(?P<name>.+)/diff/?$", views.RepositoryDiffView.as_view(), name="repository-diff"),
    re_path(r"^sboms/?$", views.SbomUploadView.as_view(), name="sbom-upload"),
    re_path(r"^queue/?$", views.QueueView.as_view(), name="queue"),
    re_path(r"^images/(?P<digest>sha256:[0-9a-f]{64})/vex/?$", triage.ImageVexView.as_view(), name="image-vex"),
    re_path(r"^vex/?$", triage.VexImportView.as_view(), name="vex-import"),
    *router.urls,
]
