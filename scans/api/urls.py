from rest_framework.routers import DefaultRouter

from scans.api import views

router = DefaultRouter()
router.register("registries", views.RegistryViewSet)
router.register("repositories", views.RepositoryViewSet)
router.register("images", views.ImageViewSet)
router.register("scan-jobs", views.ScanJobViewSet)

urlpatterns = router.urls
