"""What every app's admin shares: saving through services, with refusals shown as messages instead of errors.

An admin whose ``save_model``/``save_related``/``delete_model`` call services can be refused by them (a 409 on
the API: a duplicate address, a stale version, a deployed decky). Django has already validated the forms by then,
so the refusal is raised as a :class:`~decnet_site.exceptions.DomainError`; :class:`ServiceAdminMixin` catches it
around the whole change (the admin's transaction rolls back), shows it as an error message and sends the operator
back to the form, instead of answering 500.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from decnet_site.exceptions import DomainError


class ServiceAdminMixin(admin.ModelAdmin):
    """Turn a service's refusal during a save or a delete into an error message and a redirect."""

    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except DomainError as exc:
            self.message_user(request, f"Not saved: {exc.detail}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def delete_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> HttpResponse:
        try:
            return super().delete_view(request, object_id, extra_context)
        except DomainError as exc:
            self.message_user(request, f"Not deleted: {exc.detail}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Model]) -> None:
        """Bulk delete goes through :meth:`delete_model` for each object, so the service decides each one."""
        refused = []
        for obj in queryset:
            try:
                self.delete_model(request, obj)
            except DomainError as exc:
                refused.append(f"{obj}: {exc.detail}")
        for line in refused:
            self.message_user(request, f"Not deleted: {line}", messages.ERROR)


def mark_saved(formsets: Any) -> None:
    """Formsets saved through a service, not ``formset.save()``: give the admin's change message what it reads."""
    for formset in formsets:
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
