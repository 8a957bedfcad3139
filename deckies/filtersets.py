"""Query-string filters for deckies and hosts (django-filter)."""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet

from deckies.choices import DeckyState, HostStatus
from deckies.models import Decky, DeckyService, Host


class DeckyFilterSet(django_filters.FilterSet):
    """``state`` (repeatable), ``archetype``, ``host`` (name, or ``local`` for the default engine), ``service``."""

    state = django_filters.MultipleChoiceFilter(choices=DeckyState.choices)
    archetype = django_filters.CharFilter(field_name="archetype")
    host = django_filters.CharFilter(method="filter_host", help_text="Host name; 'local' for the default engine.")
    service = django_filters.CharFilter(method="filter_service", help_text="Deckies running this service slug.")
    distro = django_filters.CharFilter(field_name="distro")

    class Meta:
        model = Decky
        fields = ("state", "archetype", "host", "service", "distro")

    def filter_host(self, queryset: QuerySet[Decky], name: str, value: str) -> QuerySet[Decky]:
        if value == "local":
            return queryset.filter(host__isnull=True)
        return queryset.filter(host__name=value)

    def filter_service(self, queryset: QuerySet[Decky], name: str, value: str) -> QuerySet[Decky]:
        # A subquery rather than a join, so a decky never appears twice and pagination counts stay right.
        return queryset.filter(pk__in=DeckyService.objects.filter(slug=value).values("decky_id"))


class HostFilterSet(django_filters.FilterSet):
    """``status`` and ``name``."""

    status = django_filters.ChoiceFilter(choices=HostStatus.choices)
    name = django_filters.CharFilter(field_name="name")

    class Meta:
        model = Host
        fields = ("status", "name")
