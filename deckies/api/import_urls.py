"""Route of the fleet INI import, included before the deckies router so ``deckies/import/`` is never a name."""

from django.urls import URLPattern, URLResolver, path

from deckies.api.import_views import FleetImportView

app_name = "deckies-import-api"

urlpatterns: list[URLPattern | URLResolver] = [
    path("deckies/import/", FleetImportView.as_view(), name="fleet-import"),
]
