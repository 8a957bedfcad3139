"""App config of the topologies: registers their operations with the job layer and their deckies' scope."""

from __future__ import annotations

from django.apps import AppConfig


class TopologyConfig(AppConfig):
    """Topologies: LANs joined by multi-homed deckies, with a status machine and optimistic concurrency."""

    name = "topology"
    verbose_name = "Topologies"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from deckies.reconcile import register_observer
        from deckies.scopes import register_topology_provider
        from deckies.services import register_subnet_reservations
        from lifecycle import jobs
        from lifecycle.choices import LifecycleOperation as Op
        from topology import operations, plans, services

        jobs.register(Op.DEPLOY, jobs.TOPOLOGY, operations.DeployTopology())
        jobs.register(Op.TEARDOWN, jobs.TOPOLOGY, operations.TeardownTopology())
        register_topology_provider(plans.TopologyProvider())
        register_observer(services.topology_observe)
        register_subnet_reservations(services.reserved_subnets)
