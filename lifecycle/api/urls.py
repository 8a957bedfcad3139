"""Routes: ``/lifecycle/`` (list, detail) and ``/events/`` (list, detail). The polling endpoint
``/deckies/lifecycle/`` is routed with the deckies so it wins over ``/deckies/{name}/``."""

from django.urls import URLPattern, URLResolver
from rest_framework.routers import SimpleRouter

from lifecycle.api.views import EventViewSet, LifecycleViewSet

app_name = "lifecycle-api"

router = SimpleRouter()
router.register("lifecycle", LifecycleViewSet, basename="lifecycle")
router.register("events", EventViewSet, basename="event")

urlpatterns: list[URLPattern | URLResolver] = [*router.urls]
