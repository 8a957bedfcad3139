"""Declarative, typed per-service config fields and their server-side validation.

A service's config schema is a tuple of :class:`ConfigField`. :func:`validate_config` turns a raw mapping (an API
body, INI strings) into a clean dict whose values are JSON-serialisable:

- a key that is not in the schema is rejected, naming the allowed keys (it is never dropped silently);
- a ``None`` or ``""`` value drops the key (the service image then uses its own default);
- ``string`` / ``password``: a string (numbers are converted), at most ``max_length`` characters;
- ``textarea``: a string; a ``b64:`` prefix means "base64 of UTF-8 text" and is decoded (a malformed payload is an
  error); a mapping or list is stored as compact JSON; ``max_length`` applies to the decoded text;
- ``int``: an int, an integral float or a decimal string, within ``min_value`` / ``max_value``;
- ``bool``: a real bool, ``0``/``1``, or ``true/1/yes/on`` / ``false/0/no/off`` (case-insensitive);
- ``enum``: one of ``choices``;
- ``multi_enum``: a non-empty list (or comma-separated string) of ``choices``; duplicates removed, order kept.

Every field's errors are collected into a single :class:`ConfigValidationError`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from deckies.catalogue.errors import ConfigValidationError

#: A validated config value.
type ConfigValue = str | int | bool | list[str]
#: What a schema field may declare as its default (immutable, so fields can be shared).
type DefaultValue = str | int | bool | tuple[str, ...] | None
#: A JSON value, for API output.
type JsonValue = str | int | float | bool | list[JsonValue] | dict[str, JsonValue] | None

TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off"})
B64_PREFIX = "b64:"
_KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class FieldType(StrEnum):
    """The kinds of config field (the values are the wire names)."""

    STRING = "string"
    PASSWORD = "password"
    INT = "int"
    BOOL = "bool"
    TEXTAREA = "textarea"
    ENUM = "enum"
    MULTI_ENUM = "multi_enum"


_TEXT_TYPES = frozenset({FieldType.STRING, FieldType.PASSWORD, FieldType.TEXTAREA})
_CHOICE_TYPES = frozenset({FieldType.ENUM, FieldType.MULTI_ENUM})


class _FieldError(ValueError):
    """One field's coercion failure (collected by :func:`validate_config`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigField:
    """One typed key of a service's config schema.

    ``default`` is what the service image uses when the key is absent; it is documentation for clients and is never
    injected by :func:`validate_config`. ``secret`` fields have their defaults masked in API output.
    ``min_value`` / ``max_value`` apply to ``int`` fields, ``max_length`` to text fields, ``choices`` to the enums.
    """

    key: str
    label: str
    type: FieldType
    default: DefaultValue = None
    secret: bool = False
    help: str = ""
    choices: tuple[str, ...] = ()
    placeholder: str = ""
    min_value: int | None = None
    max_value: int | None = None
    max_length: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "type", FieldType(self.type))  # accept the wire name as well
        if not _KEY_RE.match(self.key):
            raise ValueError(f"config key {self.key!r} must match {_KEY_RE.pattern}")
        if (self.type in _CHOICE_TYPES) != bool(self.choices):
            raise ValueError(f"{self.key}: choices are required for enum fields and only allowed for them")
        if (self.min_value is not None or self.max_value is not None) and self.type is not FieldType.INT:
            raise ValueError(f"{self.key}: min_value/max_value only apply to int fields")
        if self.max_length is not None and self.type not in _TEXT_TYPES:
            raise ValueError(f"{self.key}: max_length only applies to text fields")
        if self.default is not None:
            # A schema whose default would not pass its own validation is a programming error.
            try:
                coerce_value(self, list(self.default) if isinstance(self.default, tuple) else self.default)
            except _FieldError as exc:
                raise ValueError(f"{self.key}: invalid default {self.default!r}: {exc}") from None


def _coerce_text(field: ConfigField, value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _FieldError("must be a string.")
    text = str(value)
    if field.max_length is not None and len(text) > field.max_length:
        raise _FieldError(f"must be at most {field.max_length} characters.")
    return text


def _coerce_textarea(field: ConfigField, value: object) -> str:
    if isinstance(value, Mapping | list | tuple):
        try:
            value = json.dumps(value, separators=(",", ":"), sort_keys=True)
        except (TypeError, ValueError):
            raise _FieldError("must be text or a JSON-serialisable mapping or list.") from None
    if isinstance(value, str) and value.startswith(B64_PREFIX):
        try:
            value = base64.b64decode(value[len(B64_PREFIX) :], validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise _FieldError(f"has a malformed {B64_PREFIX!r} payload (expected base64 of UTF-8 text).") from None
    return _coerce_text(field, value)


def _coerce_int(field: ConfigField, value: object) -> int:
    number: int
    if isinstance(value, bool):
        raise _FieldError("must be an integer.")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and re.fullmatch(r"[+-]?\d{1,18}", value.strip()):
        number = int(value.strip())
    else:
        raise _FieldError("must be an integer.")
    if field.min_value is not None and number < field.min_value:
        raise _FieldError(f"must be at least {field.min_value}.")
    if field.max_value is not None and number > field.max_value:
        raise _FieldError(f"must be at most {field.max_value}.")
    return number


def _coerce_bool(field: ConfigField, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise _FieldError("must be a boolean (true/1/yes/on or false/0/no/off).")


def _coerce_enum(field: ConfigField, value: object) -> str:
    if isinstance(value, str) and value.strip() in field.choices:
        return value.strip()
    raise _FieldError(f"must be one of: {', '.join(field.choices)}.")


def _coerce_multi_enum(field: ConfigField, value: object) -> list[str]:
    items: Sequence[object]
    if isinstance(value, str):
        items = [part for part in (p.strip() for p in value.split(",")) if part]
    elif isinstance(value, list | tuple):
        items = value
    else:
        raise _FieldError("must be a list.")
    if not items:
        raise _FieldError("must be a non-empty list.")
    bad = [item for item in items if not isinstance(item, str) or item not in field.choices]
    if bad:
        raise _FieldError(f"has invalid choices {bad!r}; allowed: {', '.join(field.choices)}.")
    return list(dict.fromkeys(item for item in items if isinstance(item, str)))


_COERCERS: dict[FieldType, Callable[[ConfigField, object], ConfigValue]] = {
    FieldType.STRING: _coerce_text,
    FieldType.PASSWORD: _coerce_text,
    FieldType.TEXTAREA: _coerce_textarea,
    FieldType.INT: _coerce_int,
    FieldType.BOOL: _coerce_bool,
    FieldType.ENUM: _coerce_enum,
    FieldType.MULTI_ENUM: _coerce_multi_enum,
}


def coerce_value(field: ConfigField, value: object) -> ConfigValue:
    """Coerce one non-empty raw value for ``field``; raises ``ValueError`` with a readable message on failure."""
    return _COERCERS[field.type](field, value)


def validate_config(schema: Sequence[ConfigField], raw: Mapping[str, object]) -> dict[str, ConfigValue]:
    """Validate and coerce ``raw`` against ``schema``; the result has only keys that were given a value.

    Raises :class:`ConfigValidationError` carrying every field's errors (unknown keys included) at once.
    """
    fields = {field.key: field for field in schema}
    clean: dict[str, ConfigValue] = {}
    errors: dict[str, list[str]] = {}
    for key, value in raw.items():
        field = fields.get(key)
        if field is None:
            allowed = ", ".join(sorted(fields)) or "(none: this service takes no config)"
            errors.setdefault(str(key), []).append(f"unknown key; allowed keys: {allowed}.")
            continue
        if value is None or value == "":
            continue
        try:
            clean[key] = coerce_value(field, value)
        except ValueError as exc:
            errors.setdefault(key, []).append(str(exc))
    if errors:
        raise ConfigValidationError(errors)
    return clean


def field_as_dict(field: ConfigField) -> dict[str, JsonValue]:
    """One field for API output. A secret field's default is masked as ``null``; ``has_default`` tells it exists."""
    default: JsonValue
    if field.secret or field.default is None:
        default = None
    elif isinstance(field.default, tuple):
        default = list(field.default)
    else:
        default = field.default
    return {
        "key": field.key,
        "label": field.label,
        "type": str(field.type),
        "default": default,
        "has_default": field.default is not None,
        "secret": field.secret,
        "help": field.help,
        "choices": list(field.choices) if field.choices else None,
        "placeholder": field.placeholder,
        "min_value": field.min_value,
        "max_value": field.max_value,
        "max_length": field.max_length,
    }


def schema_as_dict(schema: Sequence[ConfigField]) -> list[dict[str, JsonValue]]:
    """The whole schema for API output (JSON-serialisable, in declaration order)."""
    return [field_as_dict(field) for field in schema]
