from django.apps import AppConfig


class DeckiesConfig(AppConfig):
    """Deckies, their services and hosts; the engine that turns them into containers."""

    name = "deckies"
    verbose_name = "Deckies"
    default_auto_field = "django.db.models.BigAutoField"
