"""Admin for deckies, their services, hosts, networks and bring-your-own services.

Every write goes through :mod:`deckies.services`, the functions the API and the commands call: a decky and its
service inline are saved together by :func:`~deckies.services.decky_create` / :func:`~deckies.services.decky_update`
(so the admin cannot create a decky with no service, a duplicate address, or an unknown OS family, and an empty
address is allocated), and deletes go through the services that refuse them while something depends on the row.
Runtime fields are read-only; a topology decky is shown here but changed in its topology (its version and status
rules apply there). Operations are actions over :mod:`deckies.operations`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from deckies import operations, services
from deckies.catalogue.errors import ConfigValidationError
from deckies.choices import DEPLOYED_STATES
from deckies.models import CustomService, Decky, DeckyService, Host, Network
from decnet_site.admin import ServiceAdminMixin, mark_saved
from decnet_site.exceptions import DomainError
from decnet_site.permissions import OPERATE_PERMISSION
from lifecycle.models import DeckyLifecycle

#: Decky fields the change form edits (everything else is runtime state or fixed).
DECKY_FORM_FIELDS = ("name", "network", "host", "hostname", "ip", "mac_address", "distro", "archetype", "nmap_os",
                     "mutate_interval")  # fmt: skip


class DeckyServiceForm(forms.ModelForm):
    """One service row, checked against the catalogue as the API checks it (unknown, singleton, bad config)."""

    class Meta:
        model = DeckyService
        fields = ("slug", "config", "position")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        slug = cleaned.get("slug")
        if slug and not cleaned.get("DELETE"):
            try:
                validated = services.validate_decky_services([slug], {slug: cleaned.get("config") or {}})
            except ConfigValidationError as exc:
                raise ValidationError(
                    {"config": [f"{key}: {', '.join(msgs)}" for key, msgs in exc.errors.items()]}
                ) from exc
            except DomainError as exc:
                raise ValidationError({"slug": exc.detail}) from exc
            cleaned["config"] = validated[slug]
        return cleaned


class AtLeastOneService(BaseInlineFormSet):
    """A decky needs one service or more (the services layer says so too; this keeps the operator's input)."""

    def clean(self) -> None:
        super().clean()
        kept = [f for f in self.forms if f.cleaned_data.get("slug") and not f.cleaned_data.get("DELETE")]
        if not kept:
            raise ValidationError("A decky needs at least one service.")
        slugs = [f.cleaned_data["slug"] for f in kept]
        if len(set(slugs)) != len(slugs):
            raise ValidationError("A service appears twice.")


class DeckyServiceInline(admin.TabularInline):
    model = DeckyService
    form = DeckyServiceForm
    formset = AtLeastOneService
    extra = 0

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return (obj is None or obj.topology_id is None) and super().has_change_permission(request, obj)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return (obj is None or obj.topology_id is None) and super().has_add_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return (obj is None or obj.topology_id is None) and super().has_delete_permission(request, obj)


def services_of(formsets: Any) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """The services an inline formset describes, in position order, with their validated configs."""
    rows = []
    for formset in formsets:
        if formset.model is not DeckyService:
            continue
        for index, form in enumerate(formset.forms):
            data = form.cleaned_data
            if data.get("slug") and not data.get("DELETE"):
                rows.append((data.get("position") or 0, index, data["slug"], data.get("config") or {}))
    rows.sort()
    return [slug for _p, _i, slug, _c in rows], {slug: config for _p, _i, slug, config in rows}


@admin.register(Decky)
class DeckyAdmin(ServiceAdminMixin):
    list_display = ("name", "topology", "ip", "state", "archetype", "distro", "nmap_os", "service_list", "updated_at")
    list_filter = ("state", "archetype", "distro", "nmap_os", "host", ("topology", admin.RelatedOnlyFieldListFilter))
    search_fields = ("name", "hostname", "ip")
    readonly_fields = ("topology", "state", "last_error", "last_seen", "last_mutated", "created_at", "updated_at")
    fields = (*DECKY_FORM_FIELDS, *readonly_fields)
    list_select_related = ("topology",)
    inlines = (DeckyServiceInline,)

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).prefetch_related("services")

    @admin.display(description="services")
    def service_list(self, obj: Decky) -> str:
        return ", ".join(service.slug for service in obj.services.all())

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A topology decky is changed in its topology, where the version and status rules apply.
        return (obj is None or obj.topology_id is None) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        allowed = obj is None or (obj.topology_id is None and obj.state not in DEPLOYED_STATES)
        return allowed and super().has_delete_permission(request, obj)

    # --- saves through the services ---

    def save_model(self, request: HttpRequest, obj: Decky, form: Any, change: bool) -> None:
        """Nothing yet: the decky and its services are one write, made in :meth:`save_related`."""

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        slugs, configs = services_of(formsets)
        fields = {key: form.cleaned_data.get(key) for key in DECKY_FORM_FIELDS}
        obj: Decky = form.instance
        if change:
            stored = Decky.objects.get(pk=obj.pk)
            changed = {key: fields[key] for key in DECKY_FORM_FIELDS if key in form.changed_data and key != "name"}
            saved = services.decky_update(decky=stored, services=slugs, service_config=configs, **changed)
        else:
            saved = services.decky_create(
                name=fields["name"],
                services=slugs,
                service_config=configs,
                network=fields["network"],
                host=fields["host"],
                hostname=fields["hostname"] or "",
                ip=fields["ip"] or None,
                distro=fields["distro"] or None,
                archetype=fields["archetype"] or "",
                nmap_os=fields["nmap_os"] or None,
                mutate_interval=fields["mutate_interval"],
                mac_address=fields["mac_address"] or "",
            )
        obj.pk = saved.pk
        obj._state.adding = False
        mark_saved(formsets)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # The name is the decky's identity (API path, Docker names, lifecycle history): fixed once created.
        return ("name", *self.readonly_fields) if obj is not None else self.readonly_fields

    def delete_model(self, request: HttpRequest, obj: Decky) -> None:
        services.decky_delete(decky=obj)

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
class HostAdmin(ServiceAdminMixin):
    list_display = ("name", "docker_url", "status", "last_seen")
    list_filter = ("status",)
    search_fields = ("name", "docker_url")
    readonly_fields = ("uuid", "last_seen", "last_error", "created_at")

    def save_model(self, request: HttpRequest, obj: Host, form: Any, change: bool) -> None:
        fields = {key: form.cleaned_data[key] for key in ("name", "docker_url", "status") if key in form.cleaned_data}
        if change:
            services.host_update(host=Host.objects.get(pk=obj.pk), **fields)
        else:
            saved = services.host_create(**fields)
            obj.pk = saved.pk
            obj._state.adding = False

    def delete_model(self, request: HttpRequest, obj: Host) -> None:
        services.host_delete(host=obj)


@admin.register(Network)
class NetworkAdmin(ServiceAdminMixin):
    list_display = ("name", "driver", "subnet", "gateway", "parent_interface")
    list_filter = ("driver",)
    search_fields = ("name", "subnet")

    def save_model(self, request: HttpRequest, obj: Network, form: Any, change: bool) -> None:
        fields = {key: form.cleaned_data[key] for key in form.fields if key in form.cleaned_data}
        saved = services.network_save(instance=Network.objects.get(pk=obj.pk) if change else None, **fields)
        obj.pk = saved.pk
        obj._state.adding = False

    def delete_model(self, request: HttpRequest, obj: Network) -> None:
        services.network_delete(network=obj)


@admin.register(CustomService)
class CustomServiceAdmin(ServiceAdminMixin):
    list_display = ("slug", "image", "ports", "description")
    search_fields = ("slug", "image")

    def save_model(self, request: HttpRequest, obj: CustomService, form: Any, change: bool) -> None:
        data = form.cleaned_data
        saved = services.custom_service_save(
            slug=data["slug"],
            image=data["image"],
            command=data.get("command") or [],
            ports=data.get("ports") or [],
            description=data.get("description") or "",
            instance=CustomService.objects.get(pk=obj.pk) if change else None,
        )
        obj.pk = saved.pk
        obj._state.adding = False

    def delete_model(self, request: HttpRequest, obj: CustomService) -> None:
        services.custom_service_delete(service=obj)
