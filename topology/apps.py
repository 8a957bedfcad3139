from django.apps import AppConfig


class TopologyConfig(AppConfig):
    """Topologies: LANs joined by multi-homed deckies, with a status machine and optimistic concurrency."""

    name = "topology"
    verbose_name = "Topologies"
    default_auto_field = "django.db.models.BigAutoField"
