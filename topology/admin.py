"""Admin for topologies. Status and version are read-only; LANs, deckies and edges are editable only while the
topology is pending, and a save is one versioned edit: the form carries the version it was loaded at, and the
topology with all its inline changes is written through :mod:`topology.services` under
:func:`~topology.services.topology_edit` (a stale version is refused, the version moves by one)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from deckies.models import Decky
from decnet_site.admin import ServiceAdminMixin, mark_saved
from decnet_site.exceptions import DomainError
from decnet_site.permissions import OPERATE_PERMISSION
from topology import operations, services
from topology.models import LAN, Edge, Topology, TopologyStatusEvent
from topology.status import DELETABLE_STATUSES, EDITABLE_STATUSES


class TopologyForm(forms.ModelForm):
    """The topology's own fields plus the version the operator's page was loaded at."""

    expected_version = forms.IntegerField(widget=forms.HiddenInput, required=False, min_value=1)

    class Meta:
        model = Topology
        fields = ("name", "description")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.fields["expected_version"].initial = self.instance.version


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


class TopologyDeckyForm(forms.ModelForm):
    """A topology decky with its services, as a comma-separated list (an archetype may supply them instead)."""

    service_list = forms.CharField(
        required=False, label="Services", help_text="Comma-separated, e.g. ssh, http (empty: the archetype's)."
    )

    class Meta:
        model = Decky
        fields = ("name", "hostname", "archetype", "distro", "nmap_os")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.fields["service_list"].initial = ", ".join(s.slug for s in self.instance.services.all())

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        slugs = [part.strip() for part in (cleaned.get("service_list") or "").split(",") if part.strip()]
        if not slugs and not cleaned.get("archetype") and not cleaned.get("DELETE"):
            raise ValidationError("A decky needs at least one service (or an archetype that provides them).")
        cleaned["services"] = slugs
        return cleaned


class DeckyInline(PendingOnlyInline):
    model = Decky
    form = TopologyDeckyForm
    fk_name = "topology"
    fields = ("name", "service_list", "hostname", "archetype", "distro", "nmap_os", "state")
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


def _rows(formsets: Any, model: type) -> list[Any]:
    return [form for formset in formsets if formset.model is model for form in formset.forms if form.has_changed()]


def _stored(form: Any) -> bool:
    # UUID primary keys are set on new instances too, so "is it in the database" is the instance's adding flag.
    return not form.instance._state.adding


def _apply_inlines(topology: Topology, formsets: Any) -> None:
    """Write the inline changes through the services, in an order that keeps references valid: edges go first,
    then LANs and deckies; new LANs and deckies come before new edges."""
    lans, deckies, edges = _rows(formsets, LAN), _rows(formsets, Decky), _rows(formsets, Edge)
    for form in edges:
        if form.cleaned_data.get("DELETE") and _stored(form):
            services.edge_delete(edge_id=form.instance.pk)
    for form in deckies:
        if form.cleaned_data.get("DELETE") and _stored(form):
            services.topology_decky_delete(decky=Decky.objects.get(pk=form.instance.pk))
    for form in lans:
        data = form.cleaned_data
        if data.get("DELETE"):
            if _stored(form):
                services.lan_delete(lan_id=form.instance.pk)
        elif _stored(form):
            changed = {key: data[key] for key in ("name", "subnet", "is_dmz") if key in form.changed_data}
            services.lan_update(lan_id=form.instance.pk, **changed)
        else:
            services.lan_create(
                topology_id=topology.pk, name=data["name"], subnet=data["subnet"], is_dmz=data["is_dmz"]
            )
    for form in deckies:
        data = form.cleaned_data
        if data.get("DELETE"):
            continue
        fields = {key: data[key] for key in ("hostname", "archetype", "distro", "nmap_os") if data.get(key)}
        if not _stored(form):
            services.topology_decky_create(
                topology_id=topology.pk, name=data["name"], services=data["services"], **fields
            )
        else:
            changed = {key: value for key, value in fields.items() if key in form.changed_data}
            given = data["services"] if "service_list" in form.changed_data else None
            services.topology_decky_update(decky=Decky.objects.get(pk=form.instance.pk), services=given, **changed)
    for form in edges:
        data = form.cleaned_data
        if data.get("DELETE"):
            continue
        flags = {key: data[key] for key in ("ip", "is_bridge", "forwards_l3")}
        if not _stored(form):
            services.edge_create(topology_id=topology.pk, decky_id=data["decky"].pk, lan_id=data["lan"].pk, **flags)
        else:
            services.edge_update(edge_id=form.instance.pk, **{k: v for k, v in flags.items() if k in form.changed_data})


@admin.register(Topology)
class TopologyAdmin(ServiceAdminMixin):
    form = TopologyForm
    list_display = ("name", "status", "version", "lan_count", "status_changed_at", "created_at")
    list_filter = ("status",)
    search_fields = ("name", "id")
    readonly_fields = ("id", "status", "version", "status_changed_at", "created_at", "updated_at")
    fields = ("name", "description", "expected_version", *readonly_fields)
    inlines = (LANInline, DeckyInline, EdgeInline, StatusEventInline)
    actions = ("deploy_selected", "teardown_selected")

    @admin.display(description="LANs")
    def lan_count(self, obj: Topology) -> int:
        return obj.lans.count()

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is not None and obj.status not in EDITABLE_STATUSES:
            return ("name", "description", *self.readonly_fields)
        return self.readonly_fields

    def save_model(self, request: HttpRequest, obj: Topology, form: Any, change: bool) -> None:
        """A new topology is created here; a change is written with its inlines in :meth:`save_related`."""
        if not change:
            created = services.topology_create(name=obj.name, description=obj.description)
            obj.pk = created.pk
            obj._state.adding = False
            obj._loaded_status = created.status  # type: ignore[attr-defined]

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        fields_changed = change and bool({"name", "description"} & set(form.changed_data))
        if not fields_changed and not any(f.has_changed() for formset in formsets for f in formset.forms):
            mark_saved(formsets)
            return  # nothing to write, so no new version
        expected = form.cleaned_data.get("expected_version") if change else None
        with services.topology_edit(form.instance.pk, expected) as topology:
            if change and {"name", "description"} & set(form.changed_data):
                fields = {key: form.cleaned_data[key] for key in ("name", "description") if key in form.changed_data}
                services.topology_update(topology_id=topology.pk, **fields)
            _apply_inlines(topology, formsets)
        mark_saved(formsets)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return (obj is None or obj.status in DELETABLE_STATUSES) and super().has_delete_permission(request, obj)

    def delete_model(self, request: HttpRequest, obj: Topology) -> None:
        services.topology_delete(topology_id=obj.pk)

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
