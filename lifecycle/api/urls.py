"""Routes: ``/lifecycle/`` (list, detail), ``/events/`` (list, detail) and the polling endpoint
``/deckies/lifecycle/`` (included before the deckies' routes, so it wins over ``/deckies/{name}/``)."""

from django.urls import URLPattern, URLResolver, path
from rest_framework.routers import SimpleRouter

from lifecycle.api.views import EventViewSet, LifecyclePollView, LifecycleViewSet

app_name = "lifecycle-api"

router = SimpleRouter()
router.register("lifecycle", LifecycleViewSet, basename="lifecycle")
router.register("events", EventViewSet, basename="event")

urlpatterns: list[URLPattern | URLResolver] = [
    path("deckies/lifecycle/", LifecyclePollView.as_view(), name="lifecycle-poll"),
    *router.urls,
]
