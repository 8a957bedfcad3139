"""Typed config fields: coercion of every field type, error collection and API output."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deckies.catalogue.errors import CatalogueError, ConfigValidationError
from deckies.catalogue.fields import (
    FALSE_WORDS,
    TRUE_WORDS,
    ConfigField,
    FieldType,
    coerce_value,
    schema_as_dict,
    validate_config,
)

NAME = ConfigField(key="name", label="Name", type=FieldType.STRING, default="web01", max_length=8)
SECRET = ConfigField(key="secret", label="Secret", type=FieldType.PASSWORD, default="admin", secret=True)
NOTES = ConfigField(key="notes", label="Notes", type=FieldType.TEXTAREA, max_length=20)
PORT = ConfigField(key="port", label="Port", type=FieldType.INT, default=25, min_value=1, max_value=65535)
FLAG = ConfigField(key="flag", label="Flag", type=FieldType.BOOL, default=False)
MODE = ConfigField(key="mode", label="Mode", type=FieldType.ENUM, default="auth", choices=("auth", "open"))
VERSIONS = ConfigField(
    key="versions", label="Versions", type=FieldType.MULTI_ENUM, default=("a",), choices=("a", "b", "c")
)
SCHEMA = (NAME, SECRET, NOTES, PORT, FLAG, MODE, VERSIONS)


def b64(text: str) -> str:
    return "b64:" + base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("field", "raw", "expected"),
    [
        (NAME, "web02", "web02"),
        (NAME, 42, "42"),
        (NAME, 1.5, "1.5"),
        (SECRET, "hunter2", "hunter2"),
        (NOTES, "plain text", "plain text"),
        (NOTES, b64("héllo\nworld"), "héllo\nworld"),
        (NOTES, {"b": 1, "a": "x"}, '{"a":"x","b":1}'),
        (NOTES, ["x", 1], '["x",1]'),
        (PORT, 587, 587),
        (PORT, "  2525 ", 2525),
        (PORT, "+80", 80),
        (PORT, 25.0, 25),
        (PORT, 1, 1),
        (PORT, 65535, 65535),
        (FLAG, True, True),
        (FLAG, False, False),
        (FLAG, 1, True),
        (FLAG, 0, False),
        (FLAG, " Yes ", True),
        (FLAG, "OFF", False),
        (MODE, "open", "open"),
        (MODE, " auth ", "auth"),
        (VERSIONS, ["b", "a", "b"], ["b", "a"]),
        (VERSIONS, ("c",), ["c"]),
        (VERSIONS, "a, c,,a", ["a", "c"]),
    ],
)
def test_coercion(field: ConfigField, raw: object, expected: object) -> None:
    assert validate_config(SCHEMA, {field.key: raw}) == {field.key: expected}


@pytest.mark.parametrize(
    ("field", "raw", "message"),
    [
        (NAME, "toolong-name", "at most 8 characters"),
        (NAME, True, "must be a string"),
        (NAME, ["x"], "must be a string"),
        (NOTES, "b64:@@not-base64@@", "malformed 'b64:' payload"),
        (NOTES, "b64:" + base64.b64encode(b"\xff\xfe").decode(), "malformed"),
        (NOTES, b64("x" * 21), "at most 20 characters"),
        (NOTES, {"x": {1, 2}}, "JSON-serialisable"),
        (NOTES, 3.5j, "must be a string"),
        (PORT, "25a", "must be an integer"),
        (PORT, 2.5, "must be an integer"),
        (PORT, True, "must be an integer"),
        (PORT, [25], "must be an integer"),
        (PORT, 0, "at least 1"),
        (PORT, "70000", "at most 65535"),
        (FLAG, "maybe", "must be a boolean"),
        (FLAG, 2, "must be a boolean"),
        (FLAG, 1.0, "must be a boolean"),
        (MODE, "recursive", "one of: auth, open"),
        (MODE, 1, "one of"),
        (VERSIONS, [], "non-empty"),
        (VERSIONS, " , ", "non-empty"),
        (VERSIONS, ["a", "z"], "invalid choices ['z']"),
        (VERSIONS, [1], "invalid choices"),
        (VERSIONS, {"a": 1}, "must be a list"),
    ],
)
def test_coercion_errors(field: ConfigField, raw: object, message: str) -> None:
    with pytest.raises(ConfigValidationError) as info:
        validate_config(SCHEMA, {field.key: raw})
    assert list(info.value.errors) == [field.key]
    assert message in info.value.errors[field.key][0]
    assert isinstance(info.value, CatalogueError)


@pytest.mark.parametrize("empty", [None, ""])
def test_none_and_empty_string_drop_the_key(empty: object) -> None:
    assert validate_config(SCHEMA, {field.key: empty for field in SCHEMA}) == {}


def test_absent_keys_stay_absent_no_defaults_injected() -> None:
    assert validate_config(SCHEMA, {"port": "26"}) == {"port": 26}


def test_unknown_keys_are_rejected_naming_allowed_keys() -> None:
    with pytest.raises(ConfigValidationError) as info:
        validate_config(SCHEMA, {"name": "ok", "colour": "red"})
    assert list(info.value.errors) == ["colour"]
    assert "allowed keys: flag, mode, name, notes, port, secret, versions" in info.value.errors["colour"][0]


def test_unknown_key_with_empty_schema() -> None:
    with pytest.raises(ConfigValidationError, match="takes no config"):
        validate_config((), {"x": 1})


def test_all_errors_are_collected_into_one_exception() -> None:
    with pytest.raises(ConfigValidationError) as info:
        validate_config(SCHEMA, {"port": "x", "flag": "x", "mode": "x", "bogus": 1, "name": "fine"})
    assert set(info.value.errors) == {"port", "flag", "mode", "bogus"}
    message = str(info.value)
    assert message.startswith("invalid config: ")
    for key in ("bogus", "flag", "mode", "port"):
        assert f"{key}: " in message


@given(st.sampled_from(sorted(TRUE_WORDS | FALSE_WORDS)), st.sampled_from([str.lower, str.upper, str.title]))
def test_bool_words_any_case(word: str, case: Callable[[str], str]) -> None:
    raw = f" {case(word)} "
    assert coerce_value(FLAG, raw) is (word in TRUE_WORDS)


@given(st.text().filter(lambda s: s.strip().lower() not in TRUE_WORDS | FALSE_WORDS))
def test_bool_rejects_other_text(text: str) -> None:
    with pytest.raises(ValueError, match="boolean"):
        coerce_value(FLAG, text)


@given(st.integers(min_value=1, max_value=65535))
def test_int_round_trips_in_bounds(number: int) -> None:
    assert coerce_value(PORT, number) == number
    assert coerce_value(PORT, str(number)) == number
    assert coerce_value(PORT, f" {number} ") == number


@given(st.integers().filter(lambda n: not 1 <= n <= 65535))
def test_int_out_of_bounds(number: int) -> None:
    with pytest.raises(ValueError, match="must be at"):
        coerce_value(PORT, number)


@given(st.text(alphabet="0123456789abcdef.", min_size=1).filter(lambda s: not s.isdigit()))
def test_int_rejects_non_decimal_strings(text: str) -> None:
    with pytest.raises(ValueError, match="integer"):
        coerce_value(PORT, text)


@given(st.text(max_size=20))
def test_textarea_b64_round_trip(text: str) -> None:
    assert coerce_value(NOTES, b64(text)) == text


def test_field_accepts_wire_type_name() -> None:
    field = ConfigField(key="x", label="X", type="int")  # type: ignore[arg-type]
    assert field.type is FieldType.INT


@pytest.mark.parametrize(
    "kwargs",
    [
        {"key": "Bad-Key", "type": FieldType.STRING},
        {"key": "x", "type": FieldType.ENUM},
        {"key": "x", "type": FieldType.STRING, "choices": ("a",)},
        {"key": "x", "type": FieldType.STRING, "min_value": 1},
        {"key": "x", "type": FieldType.INT, "max_length": 3},
        {"key": "x", "type": FieldType.ENUM, "choices": ("a",), "default": "b"},
        {"key": "x", "type": FieldType.INT, "default": "nope"},
        {"key": "x", "type": "float"},
    ],
)
def test_invalid_field_declarations(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - several distinct declaration errors
        ConfigField(label="X", **kwargs)  # type: ignore[arg-type]


def test_schema_as_dict_is_json_and_masks_secrets() -> None:
    out = schema_as_dict(SCHEMA)
    assert json.loads(json.dumps(out)) == out
    by_key = {entry["key"]: entry for entry in out}
    assert [entry["key"] for entry in out] == [field.key for field in SCHEMA]
    assert by_key["secret"]["default"] is None
    assert by_key["secret"]["has_default"] is True
    assert by_key["secret"]["secret"] is True
    assert by_key["name"]["default"] == "web01"
    assert by_key["notes"]["has_default"] is False
    assert by_key["versions"]["default"] == ["a"]
    assert by_key["versions"]["choices"] == ["a", "b", "c"]
    assert by_key["port"] | {} == {
        "key": "port",
        "label": "Port",
        "type": "int",
        "default": 25,
        "has_default": True,
        "secret": False,
        "help": "",
        "choices": None,
        "placeholder": "",
        "min_value": 1,
        "max_value": 65535,
        "max_length": None,
    }
