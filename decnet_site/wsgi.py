"""WSGI entry point for DECNET's control plane."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "decnet_site.settings")
application = get_wsgi_application()
