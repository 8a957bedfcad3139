"""Routes of the topology API: ``/topologies/`` and, under each topology, its LANs, deckies and edges."""

from django.urls import URLPattern, URLResolver
from rest_framework.routers import SimpleRouter

from topology.api import children, views

app_name = "topology-api"

_UNDER_TOPOLOGY = rf"topologies/(?P<topology_pk>{views.UUID_RE})"

router = SimpleRouter()
router.register("topologies", views.TopologyViewSet, basename="topology")
router.register(f"{_UNDER_TOPOLOGY}/lans", children.LANViewSet, basename="topology-lan")
router.register(f"{_UNDER_TOPOLOGY}/deckies", children.TopologyDeckyViewSet, basename="topology-decky")
router.register(f"{_UNDER_TOPOLOGY}/edges", children.EdgeViewSet, basename="topology-edge")

urlpatterns: list[URLPattern | URLResolver] = [*router.urls]
