from rest_framework.routers import SimpleRouter

from advisories.api import views

router = SimpleRouter()
router.trailing_slash = "/?"  # the constructor only takes a bool
router.register("advisories", views.AdvisoryViewSet, basename="advisory")
router.register("feeds", views.FeedViewSet, basename="feed")

urlpatterns = router.urls
