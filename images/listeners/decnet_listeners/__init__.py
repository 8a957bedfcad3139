"""DECNET's own low-interaction protocol listeners, for the services OpenCanary and Cowrie do not cover.

``python3 -m decnet_listeners`` reads ``DECNET_SERVICE`` and friends (see :mod:`decnet_listeners.config`),
serves that service's protocol on its standard ports and writes one JSON event per connection, login
attempt and command to stdout (see :mod:`decnet_listeners.events`). Standard library only; Python 3.11+.
"""

from __future__ import annotations

#: service slug -> module that implements it (each module exposes ``listeners(settings)``).
SERVICES: dict[str, str] = {
    "smtp": "smtp",
    "smtp_relay": "smtp",
    "imap": "imap",
    "pop3": "pop3",
    "ldap": "ldap",
    "postgres": "postgres",
    "mongodb": "mongodb",
    "elasticsearch": "elasticsearch",
    "mqtt": "mqtt",
    "k8s": "k8s",
    "docker_api": "docker_api",
    "dns": "dns",
    "llmnr": "llmnr",
    "smb": "smb",
    "conpot": "conpot",
    "sniffer": "sniffer",
}
