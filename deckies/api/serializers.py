"""Serializers of the deckies API: decky output and input, operation inputs, catalogue, hosts and errors.

Input serializers only check shapes (types, lengths, patterns); every rule about the catalogue (unknown or
singleton service, config schema, unknown distro or archetype) is the services layer's, so the API, the admin
and the management commands agree on it.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from datetime import timedelta
from typing import Any, cast

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from deckies.catalogue.errors import UnknownServiceError
from deckies.catalogue.fields import schema_as_dict
from deckies.catalogue.services import get_service
from deckies.choices import HostStatus
from deckies.models import DECKY_NAME_RE, SERVICE_SLUG_RE, Decky, Host, Network
from decnet_site.permissions import OPERATE_PERMISSION
from lifecycle.api.serializers import DeckyLifecycleSerializer
from lifecycle.models import DeckyLifecycle
from lifecycle.selectors import lifecycle_rows_by_id

#: Names that would shadow fixed routes under ``/deckies/``.
RESERVED_DECKY_NAMES = frozenset({"deploy", "lifecycle", "files"})
SECRET_MASK = "********"
MAX_FILE_BYTES = 16 * 1024 * 1024
#: 100 years either way: far past any plausible backdating, and safe for datetime arithmetic.
MAX_MTIME_OFFSET = 100 * 366 * 86400
_HOSTNAME_RE = r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$"
_SHORT_INTERVAL = re.compile(r"^([1-9]\d{0,8})([mhdMyY])$")
_INTERVAL_MINUTES = {"m": 1, "h": 60, "d": 1440, "M": 43200, "y": 525600, "Y": 525600}


def reject_nul(value: Any, where: str = "value") -> Any:
    """Refuse NUL characters anywhere in a JSON value (PostgreSQL cannot store them in text or jsonb)."""
    if isinstance(value, str) and "\x00" in value:
        raise serializers.ValidationError(f"{where} must not contain NUL characters.")
    if isinstance(value, dict):
        for key, item in value.items():
            reject_nul(key, where)
            reject_nul(item, where)
    elif isinstance(value, list):
        for item in value:
            reject_nul(item, where)
    return value


class IntervalField(serializers.DurationField):
    """A duration, also accepted as DECNET's shorthand ``<n><unit>`` (m, h, d, M = 30 days, y = 365 days)."""

    def to_internal_value(self, value: Any) -> timedelta:
        if isinstance(value, str):
            match = _SHORT_INTERVAL.match(value.strip())
            if match:
                try:
                    value = timedelta(minutes=int(match.group(1)) * _INTERVAL_MINUTES[match.group(2)])
                except OverflowError:
                    raise serializers.ValidationError("The interval is too long.") from None
        if isinstance(value, timedelta):
            self.run_validators(value)
            return value
        return super().to_internal_value(value)


def _mask_secrets(slug: str, config: dict[str, Any]) -> dict[str, Any]:
    try:
        spec = get_service(slug)
    except UnknownServiceError:
        return dict(config)
    secret = {field.key for field in spec.config_schema if field.secret}
    return {key: (SECRET_MASK if key in secret and value not in (None, "") else value) for key, value in config.items()}


class DeckyListSerializer(serializers.ListSerializer):
    """Loads the newest lifecycle row of every decky on the page in one query."""

    def to_representation(self, data: Iterable[Decky]) -> list[Any]:  # type: ignore[override]
        deckies = list(data.all() if hasattr(data, "all") else data)
        context = cast(dict[str, Any], self.context)
        context["lifecycle_rows"] = lifecycle_rows_by_id(
            getattr(decky, "latest_lifecycle_id", None) for decky in deckies
        )
        return [self.child.to_representation(decky) for decky in deckies]  # type: ignore[union-attr]


class DeckySerializer(serializers.ModelSerializer):
    """A fleet decky: desired shape (services and their config), runtime state, newest lifecycle row.

    Secret config values (passwords, keys) are masked for users who cannot operate deckies.
    """

    network: serializers.SlugRelatedField[Network] = serializers.SlugRelatedField(
        slug_field="name", read_only=True, allow_null=True
    )
    host: serializers.SlugRelatedField[Host] = serializers.SlugRelatedField(
        slug_field="name", read_only=True, allow_null=True
    )
    services = serializers.SerializerMethodField()
    service_config = serializers.SerializerMethodField()
    mutate_interval = IntervalField(allow_null=True, read_only=True)
    latest_lifecycle = serializers.SerializerMethodField()

    class Meta:
        model = Decky
        list_serializer_class = DeckyListSerializer
        fields = (
            "name",
            "hostname",
            "ip",
            "network",
            "host",
            "distro",
            "archetype",
            "nmap_os",
            "services",
            "service_config",
            "mutate_interval",
            "last_mutated",
            "state",
            "last_error",
            "latest_lifecycle",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_services(self, decky: Decky) -> list[str]:
        return [service.slug for service in decky.services.all()]

    @extend_schema_field(serializers.DictField(child=serializers.DictField()))
    def get_service_config(self, decky: Decky) -> dict[str, dict[str, Any]]:
        request = self.context.get("request")
        reveal = request is not None and request.user.has_perm(OPERATE_PERMISSION)
        return {
            service.slug: (dict(service.config) if reveal else _mask_secrets(service.slug, service.config))
            for service in decky.services.all()
        }

    @extend_schema_field(DeckyLifecycleSerializer(allow_null=True))
    def get_latest_lifecycle(self, decky: Decky) -> dict[str, Any] | None:
        if hasattr(decky, "latest_lifecycle_id"):
            lifecycle_id = decky.latest_lifecycle_id
            if lifecycle_id is None:
                return None
            rows = self.context.get("lifecycle_rows")
            row = rows.get(lifecycle_id) if rows is not None else lifecycle_rows_by_id([lifecycle_id]).get(lifecycle_id)
        else:
            row = DeckyLifecycle.objects.filter(decky=decky).order_by("-started_at", "-id").first()
        if row is None:
            return None
        # One nested serializer for the whole page: building serializer fields per row costs more than the query.
        nested = self.__dict__.setdefault("_lifecycle_serializer", DeckyLifecycleSerializer())
        return dict(nested.to_representation(row))


class _DeckyWriteSerializer(serializers.Serializer):
    services = serializers.ListField(
        child=serializers.RegexField(SERVICE_SLUG_RE, max_length=64), max_length=64, required=False
    )
    service_config = serializers.DictField(child=serializers.DictField(), required=False)
    network: serializers.SlugRelatedField[Network] = serializers.SlugRelatedField(
        slug_field="name", queryset=Network.objects.all(), required=False
    )
    host: serializers.SlugRelatedField[Host] = serializers.SlugRelatedField(
        slug_field="name", queryset=Host.objects.all(), required=False, allow_null=True
    )
    hostname = serializers.RegexField(_HOSTNAME_RE, max_length=253, required=False)
    ip = serializers.IPAddressField(protocol="IPv4", required=False, allow_null=True)
    distro = serializers.CharField(max_length=32, required=False)
    archetype = serializers.CharField(max_length=64, required=False, allow_blank=True)
    nmap_os = serializers.CharField(max_length=32, required=False)
    mutate_interval = IntervalField(
        required=False, allow_null=True, min_value=timedelta(minutes=1), max_value=timedelta(days=36500)
    )

    def validate_service_config(self, value: dict[str, Any]) -> dict[str, Any]:
        return reject_nul(value, "service_config")


class DeckyCreateSerializer(_DeckyWriteSerializer):
    """Create a fleet decky. ``services`` may be left out when ``archetype`` supplies them."""

    name = serializers.RegexField(DECKY_NAME_RE, max_length=64)

    def validate_name(self, value: str) -> str:
        if value in RESERVED_DECKY_NAMES:
            raise serializers.ValidationError(f"{value!r} is reserved (it is a route under /deckies/).")
        return value


class DeckyUpdateSerializer(_DeckyWriteSerializer):
    """Change a fleet decky's desired shape; fields left out keep their value. ``services`` replaces the list."""


class DeployInputSerializer(serializers.Serializer):
    """Bulk deploy: ``names`` of fleet deckies; left out, every fleet decky."""

    names = serializers.ListField(
        child=serializers.RegexField(DECKY_NAME_RE, max_length=64), min_length=1, max_length=1000, required=False
    )


class ServiceAddSerializer(serializers.Serializer):
    """One service to add live, with its optional config."""

    name = serializers.RegexField(SERVICE_SLUG_RE, max_length=64)
    config = serializers.DictField(required=False, default=dict)

    def validate_config(self, value: dict[str, Any]) -> dict[str, Any]:
        return reject_nul(value, "config")


class DeckyServicesSerializer(serializers.Serializer):
    """The decky's services after a live change."""

    decky_name = serializers.CharField()
    topology_id = serializers.UUIDField(allow_null=True)
    services = serializers.ListField(child=serializers.CharField())


class _FileTargetSerializer(serializers.Serializer):
    decky_name = serializers.RegexField(DECKY_NAME_RE, max_length=64)
    topology_id = serializers.UUIDField(required=False, allow_null=True, default=None)
    path = serializers.CharField(max_length=4096, trim_whitespace=False)

    def validate_path(self, value: str) -> str:
        if not value.startswith("/"):
            raise serializers.ValidationError("path must be absolute (start with '/').")
        if ".." in value.split("/"):
            raise serializers.ValidationError("path must not contain '..' segments.")
        if value.rstrip("/") == "":
            raise serializers.ValidationError("path must name a file, not '/'.")
        return value


class FileDropSerializer(_FileTargetSerializer):
    """Drop bytes at an absolute path inside a decky (``content_b64`` is standard base64)."""

    content_b64 = serializers.CharField(allow_blank=True, trim_whitespace=False, max_length=MAX_FILE_BYTES * 4 // 3 + 4)
    mode = serializers.IntegerField(min_value=0, max_value=0o7777, default=0o644)
    mtime_offset = serializers.IntegerField(min_value=-MAX_MTIME_OFFSET, max_value=MAX_MTIME_OFFSET, default=0)

    def validate_content_b64(self, value: str) -> bytes:
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise serializers.ValidationError(f"content_b64 is not valid base64: {exc}") from None


class FileDeleteSerializer(_FileTargetSerializer):
    """``rm -f`` an absolute path inside a decky."""


class FileResultSerializer(serializers.Serializer):
    message = serializers.CharField()
    container = serializers.CharField()


class ConfigFieldSerializer(serializers.Serializer):
    """One field of a service's config schema."""

    key = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]
    type = serializers.CharField()
    default = serializers.JSONField(allow_null=True)
    has_default = serializers.BooleanField()
    secret = serializers.BooleanField()
    help = serializers.CharField()
    choices = serializers.ListField(child=serializers.CharField(), allow_null=True)
    placeholder = serializers.CharField()
    min_value = serializers.IntegerField(allow_null=True)
    max_value = serializers.IntegerField(allow_null=True)
    max_length = serializers.IntegerField(allow_null=True)


class ServiceCatalogueSerializer(serializers.Serializer):
    """A service of the catalogue (built-in or bring-your-own) with its config schema."""

    slug = serializers.CharField()
    display_name = serializers.CharField()
    description = serializers.CharField()
    ports = serializers.ListField(child=serializers.IntegerField())
    udp_ports = serializers.ListField(child=serializers.IntegerField())
    protocol = serializers.CharField()
    fleet_singleton = serializers.BooleanField()
    custom = serializers.BooleanField()
    image = serializers.CharField()
    config_schema = serializers.SerializerMethodField()

    @extend_schema_field(ConfigFieldSerializer(many=True))
    def get_config_schema(self, spec: Any) -> list[dict[str, Any]]:
        return list(schema_as_dict(spec.config_schema))


class ArchetypeSerializer(serializers.Serializer):
    slug = serializers.CharField()
    display_name = serializers.CharField()
    description = serializers.CharField()
    services = serializers.ListField(child=serializers.CharField())
    preferred_distros = serializers.ListField(child=serializers.CharField())
    nmap_os = serializers.CharField()


class DistroSerializer(serializers.Serializer):
    slug = serializers.CharField()
    display_name = serializers.CharField()
    upstream_image = serializers.CharField()
    hostname_style = serializers.CharField()
    image = serializers.CharField()


class HostSerializer(serializers.ModelSerializer):
    """A Docker engine deckies can be placed on."""

    class Meta:
        model = Host
        fields = ("uuid", "name", "docker_url", "status", "last_seen", "last_error", "created_at")
        read_only_fields = ("uuid", "last_seen", "last_error", "created_at")


class HostWriteSerializer(serializers.Serializer):
    """Create or change a host (``docker_url``: ``unix://…``, ``tcp://…`` or ``ssh://…``)."""

    name = serializers.RegexField(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", max_length=64)
    docker_url = serializers.RegexField(r"^(unix|tcp|ssh|http|https)://\S{1,240}$", max_length=255)
    status = serializers.ChoiceField(choices=HostStatus.choices, required=False)
