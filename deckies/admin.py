"""Admin for deckies, their services, hosts, networks and bring-your-own services.

Service rows are validated against the catalogue in the inline form (unknown or singleton service, bad config),
runtime fields are read-only, and a deployed decky cannot be deleted.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from deckies import operations, services
from deckies.catalogue.errors import CatalogueError, ConfigValidationError
from deckies.choices import DEPLOYED_STATES
from deckies.models import CustomService, Decky, DeckyService, Host, Network
from decnet_site.exceptions import DomainError
from decnet_site.permissions import OPERATE_PERMISSION
from lifecycle.models import DeckyLifecycle


class DeckyServiceForm(forms.ModelForm):
    class Meta:
        model = DeckyService
        fields = ("slug", "config", "position")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        slug = cleaned.get("slug")
        if slug:
            try:
                validated = services.validate_decky_services([slug], {slug: cleaned.get("config") or {}})
            except ConfigValidationError as exc:
                raise ValidationError(
                    {"config": [f"{key}: {', '.join(msgs)}" for key, msgs in exc.errors.items()]}
                ) from exc
            except (CatalogueError, DomainError) as exc:
                raise ValidationError({"slug": str(exc)}) from exc
            cleaned["config"] = validated[slug]
        return cleaned


class DeckyServiceInline(admin.TabularInline):
    model = DeckyService
    form = DeckyServiceForm
    extra = 0


@admin.register(Decky)
class DeckyAdmin(admin.ModelAdmin):
    list_display = ("name", "topology", "ip", "state", "archetype", "distro", "nmap_os", "service_list", "updated_at")
    list_filter = ("state", "archetype", "distro", "nmap_os", "host", ("topology", admin.RelatedOnlyFieldListFilter))
    search_fields = ("name", "hostname", "ip")
    readonly_fields = ("state", "last_error", "last_seen", "last_mutated", "created_at", "updated_at")
    list_select_related = ("topology",)
    inlines = (DeckyServiceInline,)

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).prefetch_related("services")

    @admin.display(description="services")
    def service_list(self, obj: Decky) -> str:
        return ", ".join(service.slug for service in obj.services.all())

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return (obj is None or obj.state not in DEPLOYED_STATES) and super().has_delete_permission(request, obj)

    # --- operations (each queues through deckies.operations; the message links to the lifecycle rows) ---

    actions = ("deploy_selected", "mutate_selected", "teardown_selected")

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm(OPERATE_PERMISSION))

    def _report(self, request: HttpRequest, verb: str, rows: list[DeckyLifecycle], failures: list[str]) -> None:
        if rows:
            url = (
                reverse("admin:lifecycle_deckylifecycle_changelist")
                + "?"
                + urlencode({"id__in": ",".join(str(row.pk) for row in rows)})
            )
            self.message_user(
                request,
                format_html(
                    '{} requested for {} decky(s): <a href="{}">follow the lifecycle rows</a>.', verb, len(rows), url
                ),
                messages.SUCCESS,
            )
        for failure in failures:
            self.message_user(request, f"{verb} refused: {failure}", messages.ERROR)

    def _each(self, request: HttpRequest, queryset: Any, verb: str, call: Any) -> None:
        rows: list[DeckyLifecycle] = []
        failures: list[str] = []
        for decky in queryset.order_by("name"):
            try:
                rows.append(call(decky))
            except DomainError as exc:  # one refused decky must not hide the others' outcome
                failures.append(f"{decky.name}: {exc.detail}")
        self._report(request, verb, rows, failures)

    @admin.action(description="Deploy selected deckies", permissions=["operate"])
    def deploy_selected(self, request: HttpRequest, queryset: Any) -> None:
        actor = request.user.get_username()
        self._each(request, queryset, "Deploy", lambda d: operations.deploy_request(deckies=[d], actor=actor)[0])

    @admin.action(description="Mutate (rotate services of) selected deckies", permissions=["operate"])
    def mutate_selected(self, request: HttpRequest, queryset: Any) -> None:
        actor = request.user.get_username()
        self._each(request, queryset, "Mutate", lambda d: operations.mutate_request(decky=d, actor=actor))

    @admin.action(description="Tear down selected deckies", permissions=["operate"])
    def teardown_selected(self, request: HttpRequest, queryset: Any) -> None:
        actor = request.user.get_username()
        self._each(request, queryset, "Teardown", lambda d: operations.teardown_request(decky=d, actor=actor))


@admin.register(Host)
class HostAdmin(admin.ModelAdmin):
    list_display = ("name", "docker_url", "status", "last_seen")
    list_filter = ("status",)
    search_fields = ("name", "docker_url")
    readonly_fields = ("uuid", "last_seen", "last_error", "created_at")


@admin.register(Network)
class NetworkAdmin(admin.ModelAdmin):
    list_display = ("name", "driver", "subnet", "gateway", "parent_interface")
    list_filter = ("driver",)
    search_fields = ("name", "subnet")


@admin.register(CustomService)
class CustomServiceAdmin(admin.ModelAdmin):
    list_display = ("slug", "image", "ports", "description")
    search_fields = ("slug", "image")
