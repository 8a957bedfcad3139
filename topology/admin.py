"""Admin for topologies. Status and version are read-only; LANs, deckies and edges are editable only while the
topology is pending (the same rule the services enforce), and every save goes through the services."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.forms import ModelForm
from django.http import HttpRequest

from deckies.models import Decky
from decnet_site.exceptions import DomainError
from decnet_site.permissions import OPERATE_PERMISSION
from topology import operations, services
from topology.models import LAN, Edge, Topology, TopologyStatusEvent
from topology.status import DELETABLE_STATUSES, EDITABLE_STATUSES


class PendingOnlyInline(admin.TabularInline):
    """Inline rows that may change only while the parent topology is pending."""

    extra = 0

    def _editable(self, obj: Topology | None) -> bool:
        return obj is None or obj.status in EDITABLE_STATUSES

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._editable(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._editable(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._editable(obj) and super().has_delete_permission(request, obj)


class LANInline(PendingOnlyInline):
    model = LAN
    fields = ("name", "subnet", "is_dmz")


class DeckyInline(PendingOnlyInline):
    model = Decky
    fk_name = "topology"
    fields = ("name", "hostname", "archetype", "distro", "nmap_os", "state")
    readonly_fields = ("state",)
    show_change_link = True


class EdgeInline(PendingOnlyInline):
    model = Edge
    fields = ("decky", "lan", "ip", "is_bridge", "forwards_l3")

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        # Offer only this topology's deckies and LANs, so an edge can never cross topologies.
        match = request.resolver_match
        topology_id = str(match.kwargs.get("object_id") or "") if match else ""
        if db_field.name == "decky":
            kwargs["queryset"] = Decky.objects.filter(topology__pk=topology_id) if topology_id else Decky.objects.none()
        elif db_field.name == "lan":
            kwargs["queryset"] = LAN.objects.filter(topology__pk=topology_id) if topology_id else LAN.objects.none()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class StatusEventInline(admin.TabularInline):
    model = TopologyStatusEvent
    extra = 0
    can_delete = False
    fields = ("at", "from_status", "to_status", "reason")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Topology)
class TopologyAdmin(admin.ModelAdmin):
    list_display = ("name", "status", "version", "lan_count", "status_changed_at", "created_at")
    list_filter = ("status",)
    search_fields = ("name", "id")
    readonly_fields = ("id", "status", "version", "status_changed_at", "created_at", "updated_at")
    fields = ("name", "description", *readonly_fields)
    inlines = (LANInline, DeckyInline, EdgeInline, StatusEventInline)
    actions = ("deploy_selected", "teardown_selected")

    @admin.display(description="LANs")
    def lan_count(self, obj: Topology) -> int:
        return obj.lans.count()

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is not None and obj.status not in EDITABLE_STATUSES:
            return ("name", "description", *self.readonly_fields)
        return self.readonly_fields

    def save_model(self, request: HttpRequest, obj: Topology, form: ModelForm, change: bool) -> None:
        if change:
            services.topology_update(topology_id=obj.pk, name=obj.name, description=obj.description)
        else:
            created = services.topology_create(name=obj.name, description=obj.description)
            obj.pk = created.pk
            obj._state.adding = False
            obj._loaded_status = created.status  # type: ignore[attr-defined]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return (obj is None or obj.status in DELETABLE_STATUSES) and super().has_delete_permission(request, obj)

    def delete_model(self, request: HttpRequest, obj: Topology) -> None:
        try:
            services.topology_delete(topology_id=obj.pk)
        except DomainError as exc:
            self.message_user(request, exc.detail, level=messages.ERROR)

    # --- actions: thin wrappers over topology.operations (validation, status machine and queueing live there) ---

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm(OPERATE_PERMISSION))

    def _each(self, request: HttpRequest, queryset: Any, verb: str, request_fn: Any) -> None:
        done = []
        for topology in queryset.order_by("name"):
            try:
                request_fn(topology=topology, actor=request.user.get_username())
            except DomainError as exc:
                issues = getattr(exc, "issues", None) or []
                details = "; ".join(f"{issue['code']}: {issue['message']}" for issue in issues[:5])
                self.message_user(
                    request, f"{topology.name}: {exc.detail}{' — ' + details if details else ''}", level=messages.ERROR
                )
            else:
                done.append(topology.name)
        if done:
            self.message_user(request, f"{verb} queued for {', '.join(done)}; follow their status.", messages.SUCCESS)

    @admin.action(description="Deploy selected topologies (validated first)", permissions=["operate"])
    def deploy_selected(self, request: HttpRequest, queryset: Any) -> None:
        self._each(request, queryset, "Deploy", operations.topology_deploy_request)

    @admin.action(description="Tear down selected topologies", permissions=["operate"])
    def teardown_selected(self, request: HttpRequest, queryset: Any) -> None:
        self._each(request, queryset, "Teardown", operations.topology_teardown_request)
