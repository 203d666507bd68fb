from django.urls import re_path
from rest_framework.routers import DefaultRouter

from scans.api import views

# The routes are written without a trailing slash (POST /api/v1/scans); accept both.
router = DefaultRouter()
router.trailing_slash = "/?"  # the constructor only takes a bool
router.register("registries", views.RegistryViewSet)
router.register("repositories", views.RepositoryViewSet)
router.register("images", views.ImageViewSet)
router.register("scans", views.ScanJobViewSet)

urlpatterns = [
    # Repository names hold slashes, so the diff has its own route ahead of the router's.
    re_path(r"^repositories/(?P<name>.+)/diff/?$", views.RepositoryDiffView.as_view(), name="repository-diff"),
    re_path(r"^sboms/?$", views.SbomUploadView.as_view(), name="sbom-upload"),
    *router.urls,
]
