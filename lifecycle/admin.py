"""Admin for lifecycle rows and events: both are machine records, so they are fully read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from lifecycle.models import DeckyLifecycle, Event


class ReadOnlyAdmin(admin.ModelAdmin):
    """No add, change or delete: rows change only through the lifecycle services."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(DeckyLifecycle)
class DeckyLifecycleAdmin(ReadOnlyAdmin):
    list_display = ("started_at", "decky_name", "operation", "status", "completed_at", "short_error")
    list_filter = ("status", "operation")
    search_fields = ("decky_name", "id", "error")
    date_hierarchy = "started_at"
    readonly_fields = tuple(f.name for f in DeckyLifecycle._meta.fields)

    @admin.display(description="error")
    def short_error(self, obj: DeckyLifecycle) -> str:
        return (obj.error or "")[:80]


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ("at", "topic", "type")
    list_filter = ("type",)
    search_fields = ("topic",)
    date_hierarchy = "at"
    readonly_fields = ("topic", "type", "payload", "at")
