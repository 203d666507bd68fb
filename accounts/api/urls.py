from rest_framework.routers import SimpleRouter

from accounts.api import views

router = SimpleRouter()
router.trailing_slash = "/?"  # the constructor only takes a bool
router.register("audit-events", views.AuditEventViewSet)

urlpatterns = router.urls
