"""Routes of the deckies API. Fixed paths under ``/deckies/`` come first so they win over ``/deckies/{name}/``
(and those names are refused for deckies); the polling route ``/deckies/lifecycle/`` is the lifecycle app's."""

from django.urls import URLPattern, URLResolver, path
from rest_framework.routers import SimpleRouter

from deckies.api import views
from decnet_site.health import HealthView

app_name = "deckies-api"

router = SimpleRouter()
router.register("deckies", views.DeckyViewSet, basename="decky")
router.register("services", views.ServiceCatalogueViewSet, basename="service")
router.register("archetypes", views.ArchetypeViewSet, basename="archetype")
router.register("distros", views.DistroViewSet, basename="distro")
router.register("hosts", views.HostViewSet, basename="host")

urlpatterns: list[URLPattern | URLResolver] = [
    path("deckies/deploy/", views.FleetDeployView.as_view(), name="fleet-deploy"),
    path("deckies/files/", views.FileView.as_view(), name="decky-files"),
    path("health/", HealthView.as_view(), name="health"),
    *router.urls,
]
