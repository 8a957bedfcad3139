"""Signals sent after decky changes commit. Receivers must not raise; the database stays authoritative.

Each signal is sent once the surrounding transaction commits (``transaction.on_commit``) with ``send_robust``,
so a failing receiver is logged and never undoes or blocks the change. Every send is paired with an
:class:`lifecycle.models.Event` row written in the same transaction (see :mod:`deckies.operations`).
"""

from django.dispatch import Signal

#: ``decky``, ``previous``, ``state``, ``error``: a decky's runtime state changed (topic ``decky.<name>.state``).
decky_state_changed = Signal()
#: ``decky``, ``old_services``, ``new_services``, ``trigger``: services rotated (topic ``decky.<name>.mutation``).
decky_mutated = Signal()
#: ``decky``, ``service``, ``services``, ``live``: one service added (topic ``decky.<name>.service.added``).
decky_service_added = Signal()
#: ``decky``, ``service``, ``services``, ``live``: one service removed (topic ``decky.<name>.service.removed``).
decky_service_removed = Signal()
#: ``decky``, ``path``, ``container``, ``action`` (``dropped``/``deleted``): a file changed inside a decky.
decky_file_changed = Signal()
