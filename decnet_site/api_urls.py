"""Routes under /api/v1/: each app contributes its own router; the schema and its docs page are public."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(permission_classes=[]), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema", permission_classes=[]), name="docs"),
    path("", include("lifecycle.api.urls")),
    path("", include("deckies.api.import_urls")),
    path("", include("deckies.api.urls")),
    path("", include("topology.api.urls")),
]
