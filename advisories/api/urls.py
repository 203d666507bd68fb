from rest_framework.routers import SimpleRouter

from advisories.api import views

router = SimpleRouter()
router.register("advisories", views.AdvisoryViewSet, basename="advisory")
router.register("feeds", views.FeedViewSet, basename="feed")

urlpatterns = router.urls
