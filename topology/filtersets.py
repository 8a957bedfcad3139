"""Query-string filters for topologies (django-filter)."""

from __future__ import annotations

import django_filters

from topology.models import Topology
from topology.status import TopologyStatus


class TopologyFilterSet(django_filters.FilterSet):
    """``status`` (repeatable: ``?status=active&status=degraded``) and ``name`` (exact)."""

    status = django_filters.MultipleChoiceFilter(choices=TopologyStatus.choices)
    name = django_filters.CharFilter(field_name="name")

    class Meta:
        model = Topology
        fields = ("status", "name")
