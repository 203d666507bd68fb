from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from scans.webhooks.views import distribution_webhook

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/v1/", include("scans.api.urls")),
    path("api/v1/", include("advisories.api.urls")),
    path("api/v1/", include("accounts.api.urls")),
    path("webhooks/distribution/", distribution_webhook, name="webhook-distribution"),
    path("", include("scans.harbor.urls")),  # Harbor's webhook and the Scanner Adapter API
]
