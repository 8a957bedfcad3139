"""Django settings for DECNET's control plane.

Everything deploy-specific comes from the environment (see README, "Configuration"):

- ``DATABASE_URL``: defaults to an SQLite file under the data dir (WAL mode, immediate transactions).
- ``REDIS_URL``: when set, django-q2 uses the Redis broker; otherwise the ORM broker on the same database.
- ``DECNET_SECRET_KEY``: when absent, a key is generated once and persisted (mode 0600) in the data dir.
- ``DECNET_DEBUG``, ``DECNET_ALLOWED_HOSTS``, ``DECNET_TLS``, ``DECNET_DATA_DIR`` and the ``DECNET_*`` engine knobs.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


BASE_DIR = Path(__file__).resolve().parent.parent
DECNET_DATA_DIR = Path(os.environ.get("DECNET_DATA_DIR") or BASE_DIR / "var").resolve()
DECNET_DATA_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """The configured key, else one generated on first run and kept in the data dir (never a constant)."""
    configured = os.environ.get("DECNET_SECRET_KEY")
    if configured:
        return configured
    key_file = DECNET_DATA_DIR / "secret_key"
    if not key_file.exists():
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(64))
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = _env_bool("DECNET_DEBUG", False)
ALLOWED_HOSTS = _env_list("DECNET_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = _env_list("DECNET_CSRF_TRUSTED_ORIGINS", "")

# Production mode sits behind TLS. Local quick starts over plain HTTP set DECNET_TLS=0.
DECNET_TLS = _env_bool("DECNET_TLS", not DEBUG)
SECURE_SSL_REDIRECT = DECNET_TLS
SESSION_COOKIE_SECURE = DECNET_TLS
CSRF_COOKIE_SECURE = DECNET_TLS
SECURE_HSTS_SECONDS = 31_536_000 if DECNET_TLS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = DECNET_TLS
SECURE_HSTS_PRELOAD = DECNET_TLS
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if DECNET_TLS else None
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "django_q",
    "lifecycle",
    "topology",
    "deckies",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "decnet_site.urls"
WSGI_APPLICATION = "decnet_site.wsgi.application"
ASGI_APPLICATION = "decnet_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{DECNET_DATA_DIR / 'decnet.sqlite3'}",
        conn_max_age=int(os.environ.get("DECNET_DB_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server read while the worker writes; IMMEDIATE avoids "database is locked" upgrades.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DECNET_DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

LOGIN_URL = "admin:login"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "decnet_site.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["decnet_site.permissions.RolePermission"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "decnet_site.exceptions.exception_handler",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
}

SPECTACULAR_SETTINGS = {
    "TITLE": "DECNET control plane API",
    "DESCRIPTION": "Deploy, mutate and tear down honeypot deckies and topologies. Long operations answer 202 "
    "with lifecycle ids to poll.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Several models have a "status" field; name each choice set after its own class.
    "ENUM_NAME_OVERRIDES": {
        "LifecycleStatusEnum": "lifecycle.choices.LifecycleStatus",
        "LifecycleOperationEnum": "lifecycle.choices.LifecycleOperation",
        "HostStatusEnum": "deckies.choices.HostStatus",
        "DeckyStateEnum": "deckies.choices.DeckyState",
        "TopologyStatusEnum": "topology.status.TopologyStatus",
    },
}

# --- Task queue (django-q2) ---------------------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
DECNET_TASK_TIMEOUT = int(os.environ.get("DECNET_TASK_TIMEOUT", "900"))
Q_CLUSTER: dict[str, object] = {
    "name": "decnet",
    "workers": int(os.environ.get("DECNET_WORKERS", "2")),
    "timeout": DECNET_TASK_TIMEOUT,
    # retry must exceed timeout or a long task is handed to a second worker while the first still runs.
    "retry": DECNET_TASK_TIMEOUT + 60,
    # An operation is never retried behind the operator's back: a retry is a new lifecycle row.
    "max_attempts": 1,
    "ack_failures": True,
    # 0 keeps every result; the default (250) silently deletes older successes.
    "save_limit": 0,
    "catch_up": False,
    "poll": 0.1,
    "label": "Task queue",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# --- Engine -----------------------------------------------------------------------------------------
DECNET_COMPOSE_BINARY = os.environ.get("DECNET_COMPOSE_BINARY", "")
DECNET_COMPOSE_TIMEOUT = int(os.environ.get("DECNET_COMPOSE_TIMEOUT", "300"))
DECNET_DOCKER_TIMEOUT = int(os.environ.get("DECNET_DOCKER_TIMEOUT", "30"))
DECNET_DEFAULT_DOCKER_URL = os.environ.get("DECNET_DOCKER_URL", "unix:///var/run/docker.sock")
DECNET_FLEET_SUBNET = os.environ.get("DECNET_FLEET_SUBNET", "10.77.0.0/24")
# Several control planes (or test runs) may share one engine: each keeps to its own names and images.
DECNET_NAME_PREFIX = os.environ.get("DECNET_NAME_PREFIX", "decnet")
DECNET_IMAGE_REPOSITORY = os.environ.get("DECNET_IMAGE_REPOSITORY", "decnet")
# The job layer: a running row's lease (renewed every third of it), how often workers reap, when a pending row's task
# counts as lost, and the last-resort age past which any open row is failed.
DECNET_LIFECYCLE_LEASE = int(os.environ.get("DECNET_LIFECYCLE_LEASE", "30"))
DECNET_REAPER_INTERVAL = int(os.environ.get("DECNET_REAPER_INTERVAL", "10"))
DECNET_LIFECYCLE_REQUEUE_AFTER = int(os.environ.get("DECNET_LIFECYCLE_REQUEUE_AFTER", "60"))
DECNET_LIFECYCLE_STALE_AFTER = int(os.environ.get("DECNET_LIFECYCLE_STALE_AFTER", "3600"))
# "Succeeded" means ready: how long a deploy waits for every service to accept connections before it fails.
DECNET_READY_TIMEOUT = int(os.environ.get("DECNET_READY_TIMEOUT", "60"))
# The scheduled reconcile repairs drifted deckies (one lifecycle row per repair) unless this is off.
DECNET_AUTO_HEAL = _env_bool("DECNET_AUTO_HEAL", True)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("DECNET_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
