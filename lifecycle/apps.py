from django.apps import AppConfig


class LifecycleConfig(AppConfig):
    """Operation tracking: one lifecycle row per attempt, plus the append-only event log."""

    name = "lifecycle"
    verbose_name = "Lifecycle"
    default_auto_field = "django.db.models.BigAutoField"
