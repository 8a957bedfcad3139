"""Settings for the test suite: the production settings, with tasks run inline.

django-q2 reads its configuration at import time, so ``override_settings`` cannot switch sync mode; tests that
need a real worker start ``manage.py qcluster`` in a subprocess with the production settings instead.
"""

from __future__ import annotations

from decnet_site.settings import *  # noqa: F403
from decnet_site.settings import Q_CLUSTER

Q_CLUSTER = {**Q_CLUSTER, "sync": True}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SECURE_SSL_REDIRECT = False
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
