"""Signals sent after lifecycle rows change, once the transaction commits. Receivers must not raise; the database
stays authoritative."""

from django.dispatch import Signal

#: Sent with ``row`` (a :class:`lifecycle.models.DeckyLifecycle`) after each lifecycle status change (the command
#: line's ``--sync`` progress display listens to it).
lifecycle_changed = Signal()
