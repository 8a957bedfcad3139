"""Signals sent after state changes commit. Receivers must not raise; the database stays authoritative."""

from django.dispatch import Signal

#: Sent with ``event`` (a :class:`lifecycle.models.Event`) for every appended event.
event_recorded = Signal()
#: Sent with ``row`` (a :class:`lifecycle.models.DeckyLifecycle`) after each lifecycle status change.
lifecycle_changed = Signal()
