"""The INI parser: a typed spec from DECNET's format, every problem reported with its line, nothing ignored."""

from __future__ import annotations

import contextlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deckies.catalogue.services import make_custom_service, per_decky_service_slugs
from deckies.ini import (
    MAX_INI_BYTES,
    FleetSpec,
    IniConflictError,
    IniError,
    IniTooLargeError,
    decode_ini,
    format_interval,
    parse_fleet_ini,
    parse_interval,
)

FIXTURES = Path(__file__).parent / "fixtures"


def parse(text: str, **kwargs: Any) -> FleetSpec:
    return parse_fleet_ini(text, source="t.ini", **kwargs)


def issue_lines(exc: IniError | IniConflictError) -> list[int | None]:
    return [issue.line for issue in exc.issues]


def fail(text: str) -> IniError:
    with pytest.raises(IniError) as caught:
        parse_fleet_ini(text, source="t.ini")
    return caught.value


# --- the full fixture -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def full() -> FleetSpec:
    return parse_fleet_ini((FIXTURES / "full_fleet.ini").read_text(), source="full_fleet.ini")


def test_full_fixture_expands_amounts_in_file_order(full: FleetSpec) -> None:
    names = [d.name for d in full.deckies]
    assert names == ["web-01", "web-02", "web-03", "dc", "db-01", "db-02", "mail", "shell", "iot", "infra", "trap"]
    assert [d.index for d in full.deckies] == list(range(11))


def test_full_fixture_uses_every_per_decky_service_and_three_archetypes(full: FleetSpec) -> None:
    used = {slug for d in full.deckies for slug in d.services}
    assert set(per_decky_service_slugs()) <= used
    assert "tarpit" in used
    archetypes = {d.archetype for d in full.deckies if d.archetype}
    assert archetypes == {"web-server", "domain-controller", "database-server"}


def test_archetype_supplies_services_distro_rotation_and_os(full: FleetSpec) -> None:
    by_name = {d.name: d for d in full.deckies}
    web = [by_name[f"web-0{i}"] for i in (1, 2, 3)]
    assert all(d.services == ("http", "ftp") and d.services_from == "archetype" for d in web)
    assert [d.distro for d in web] == ["debian", "ubuntu22", "ubuntu20"]
    assert by_name["dc"].nmap_os == "windows_server"
    assert by_name["dc"].ip == "10.31.0.10"
    assert by_name["shell"].distro == "rocky9"
    assert by_name["iot"].nmap_os == "embedded"
    assert by_name["mail"].services_from == "explicit"


def test_personas_apply_to_the_group_and_exact_sections_override(full: FleetSpec) -> None:
    by_name = {d.name: d for d in full.deckies}
    assert by_name["web-01"].service_config["http"] == {
        "server_header": "nginx/1.24.0",
        "fake_app": "wordpress",
        "http_versions": ["http/1.1", "http/2"],
    }
    assert by_name["web-02"].service_config["http"]["server_header"] == "Microsoft-IIS/10.0"
    assert by_name["web-02"].service_config["http"]["fake_app"] == "wordpress"
    assert by_name["dc"].service_config["rdp"] == {"nla": True}
    assert by_name["mail"].service_config["smtp_relay"] == {
        "upstream_host": "relay.example.net",
        "upstream_port": 587,
        "probe_limit": 2,
    }
    assert by_name["infra"].service_config["dns"]["extra_records"] == (
        "www  IN A  10.31.0.80\nmail IN MX 10 mail.corp.example"
    )
    assert "ftp" not in by_name["web-01"].service_config


def test_general_and_mutate_interval_inheritance(full: FleetSpec) -> None:
    general = full.general
    assert (general.net, general.gw, general.log_target) == ("10.31.0.0/24", "10.31.0.1", "10.31.0.250:514")
    assert general.mutate_interval == timedelta(hours=6)
    by_name = {d.name: d for d in full.deckies}
    assert by_name["db-01"].mutate_interval == timedelta(days=2)
    assert by_name["web-01"].mutate_interval == timedelta(hours=6)


def test_custom_service_section(full: FleetSpec) -> None:
    (custom,) = full.custom_services
    assert (custom.slug, custom.image, custom.command, custom.ports) == (
        "tarpit",
        "decnet/base:1",
        ("sleep", "infinity"),
        (2222, 2223),
    )


def test_bad_fixture_reports_every_problem_with_its_line() -> None:
    with pytest.raises(IniError) as caught:
        parse_fleet_ini((FIXTURES / "bad_fleet.ini").read_text(), source="bad_fleet.ini")
    assert issue_lines(caught.value) == [3, 6, 8, 11, 12, 17]
    assert "bad_fleet.ini:6:" in str(caught.value)
    assert "gopher" in str(caught.value)
    assert caught.value.status_code == 400
    assert caught.value.as_dict()["issues"][0]["line"] == 3


def test_collisions_in_the_file_are_conflicts_with_lines() -> None:
    with pytest.raises(IniConflictError) as caught:
        parse_fleet_ini((FIXTURES / "collide_fleet.ini").read_text(), source="collide_fleet.ini")
    assert issue_lines(caught.value) == [8, 17]
    assert caught.value.status_code == 409
    assert "web-02" in str(caught.value)
    assert "10.34.0.7" in str(caught.value)


# --- syntax -----------------------------------------------------------------------------------------------------------


def test_syntax_variants_configparser_accepts() -> None:
    text = "\ufeff# comment\r\n; other comment\r\n[a]\r\nSERVICES: ssh, http\r\nNmap-OS = windows\r\n"
    (decky,) = parse(text).deckies
    assert decky.services == ("ssh", "http")
    assert decky.nmap_os == "windows"


def test_continuation_lines_and_blank_lines_inside_values() -> None:
    text = "[a]\nservices = http\n[a.http]\ncustom_body = first\n    second\n\n    third\nfake_app = none\n"
    (decky,) = parse(text).deckies
    assert decky.service_config["http"]["custom_body"] == "first\nsecond\n\nthird"


def test_percent_signs_are_plain_text() -> None:
    (decky,) = parse("[a]\nservices = ssh\n[a.ssh]\npassword = 100%secret\n").deckies
    assert decky.service_config["ssh"]["password"] == "100%secret"


def test_inline_comments_are_not_comments() -> None:
    error = fail("[a]\narchetype = web-server ; http, ftp\n")
    assert issue_lines(error) == [2]


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("services = ssh\n[a]\nservices = ssh\n", 1, "outside any section"),
        ("[a\nservices = ssh\n", 1, "malformed section header"),
        ("[]\n[a]\nservices = ssh\n", 1, "empty section name"),
        ("[a]\nservices = ssh\nservices = http\n", 3, "set twice"),
        ("[a]\nnmap_os = linux\nnmap-os = linux\nservices = ssh\n", 3, "set twice"),
        ("[a]\njust some words\nservices = ssh\n", 2, "expected '[section]'"),
        ("[general]\n[general]\n[a]\nservices = ssh\n", 2, "defined twice"),
        ("[a]\nservices = ssh\x00\n", 2, "NUL"),
    ],
)
def test_syntax_errors_have_lines(text: str, line: int, fragment: str) -> None:
    error = fail(text)
    assert line in issue_lines(error)
    assert fragment in str(error)


def test_duplicate_decky_section_is_a_conflict() -> None:
    with pytest.raises(IniConflictError) as caught:
        parse("[a]\nservices = ssh\n[a]\nservices = http\n")
    assert issue_lines(caught.value) == [3]


# --- decky sections ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", ["0", "101", "x", "-1", "2.5"])
def test_amount_out_of_bounds(amount: str) -> None:
    error = fail(f"[a]\nservices = ssh\namount = {amount}\n")
    assert issue_lines(error) == [3]


def test_amount_one_keeps_the_name_and_hundred_pads_to_three_digits() -> None:
    assert [d.name for d in parse("[a]\nservices = ssh\namount = 1\n").deckies] == ["a"]
    names = [d.name for d in parse("[a]\nservices = ssh\namount = 100\n").deckies]
    assert names[0] == "a-01"
    assert names[-1] == "a-100"
    assert len(names) == 100


def test_expanded_names_must_fit_64_characters() -> None:
    name = "a" * 62
    error = fail(f"[{name}]\nservices = ssh\namount = 2\n")
    assert issue_lines(error) == [3]


@pytest.mark.parametrize("name", ["Web", "web_01", "web.01x.ssh.extra", "a" * 65, "sp ace"])
def test_decky_names_follow_the_api_rule(name: str) -> None:
    with pytest.raises((IniError, IniConflictError)):
        parse(f"[{name}]\nservices = ssh\n")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("services = ssh, sniffer", "once per fleet"),
        ("services = ssh, ssh", "listed twice"),
        ("services =", "empty"),
        ("services = ssh,,http", "empty item"),
        ("services = ssh\nip = 10.0.0", "not an IPv4 address"),
        ("services = ssh\ndistro = plan9", "unknown distro"),
        ("services = ssh\nnmap_os = amiga", "unknown OS family"),
        ("services = ssh\nmutate_interval = 0", "not an interval"),
        ("services = ssh\nhostname = x", "unknown key 'hostname'"),
    ],
)
def test_decky_value_errors(body: str, fragment: str) -> None:
    error = fail(f"[a]\n{body}\n")
    assert fragment in str(error)
    assert all(line is not None and line >= 2 for line in issue_lines(error))


def test_services_may_name_stored_custom_services() -> None:
    custom = {"honeyapp": make_custom_service("honeyapp", "registry.local/app:1", "", [8080])}
    (decky,) = parse("[a]\nservices = ssh, honeyapp\n", custom_services=custom).deckies
    assert decky.services == ("ssh", "honeyapp")
    with pytest.raises(IniError):
        parse("[a]\nservices = ssh, honeyapp\n")


def test_random_services_are_stable_per_name() -> None:
    first = parse("[lonely]\n").deckies[0]
    again = parse("[lonely]\nnmap_os = linux\n").deckies[0]
    assert first.services_from == "random"
    assert 1 <= len(first.services) <= 3
    assert first.services == again.services
    assert set(first.services) <= set(per_decky_service_slugs())


def test_a_file_needs_a_decky() -> None:
    assert "defines no decky" in str(fail("[general]\nnet = 10.0.0.0/24\n"))
    assert "defines no decky" in str(fail(""))


def test_ip_outside_general_net() -> None:
    error = fail("[general]\nnet = 10.0.0.0/24\n[a]\nservices = ssh\nip = 10.0.1.5\n")
    assert issue_lines(error) == [5]


# --- persona subsections ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("persona", "line", "fragment"),
    [
        ("[a.ftp]\nbanner = x", 3, "does not run ftp"),
        ("[a.gopher]\nx = 1", 3, "unknown service"),
        ("[b.ssh]\nuser = x", 3, "no decky section [b]"),
        ("[a.ssh]\nuser = x\nshell = zsh", 5, "unknown key"),
        ("[a.http]\nresponse_code = 999", 4, "at most 599"),
        ("[a.http]\nfake_app = drupal", 4, "must be one of"),
        ("[x.a.ssh]\nuser = x", 3, "must be [<decky>.<service>]"),
    ],
)
def test_persona_errors(persona: str, line: int, fragment: str) -> None:
    error = fail(f"[a]\nservices = ssh, http\n{persona}\n")
    assert issue_lines(error) == [line]
    assert fragment in str(error)


def test_persona_of_a_broken_decky_reports_only_the_decky() -> None:
    error = fail("[a]\nservices = gopher\n[a.ssh]\nuser = x\n")
    assert issue_lines(error) == [2]


def test_custom_services_take_no_persona() -> None:
    text = "[custom-app]\nbinary = registry.local/app:1\n[a]\nservices = app\n[a.app]\nmode = x\n"
    assert issue_lines(fail(text)) == [6]


# --- general and custom sections --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("general", "fragment"),
    [
        ("net = 10.0.0.0/30", "too small"),
        ("net = 10.0.0.1/24", "CIDR"),
        ("net = 10.0.0.0/24\ngw = 10.0.1.1", "not a host address"),
        ("net = 10.0.0.0/24\ngw = 10.0.0.0", "not a host address"),
        ("interface = not an interface", "interface name"),
        ("log_target = syslog", "host:port"),
        ("log_target = bad_host!:514", "neither"),
        ("mutate-interval = 5s", "not an interval"),
    ],
)
def test_general_errors(general: str, fragment: str) -> None:
    error = fail(f"[general]\n{general}\n[a]\nservices = ssh\n")
    assert fragment in str(error)


def test_general_aliases() -> None:
    spec = parse("[general]\nlog-target = logs.example:6514\nmutate-interval = 1M\n[a]\nservices = ssh\n")
    assert spec.general.log_target == "logs.example:6514"
    assert spec.general.mutate_interval == timedelta(days=30)


@pytest.mark.parametrize(
    ("custom", "fragment"),
    [
        ("[custom-app]\nexec = run", "needs binary"),
        ("[custom-app]\nbinary = img:1\nports = 80, http", "not a port number"),
        ("[custom-app]\nbinary = img:1\nports = 70000", "65535"),
        ("[custom-ssh]\nbinary = img:1", "built-in"),
        ("[custom-App]\nbinary = img:1", "service name"),
        ("[custom-app]\nbinary = not an image", "binary"),
        ("[custom-app]\nbinary = img:1\nexec = 'unterminated", "exec"),
        ("[custom-app]\nbinary = img:1\nport = 80", "unknown key 'port'"),
    ],
)
def test_custom_service_errors(custom: str, fragment: str) -> None:
    error = fail(f"[a]\nservices = ssh\n{custom}\n")
    assert fragment in str(error)
    assert all(line is not None and line >= 3 for line in issue_lines(error))


# --- intervals, size, encoding ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "minutes"),
    [("30", 30), ("30m", 30), ("2h", 120), ("2d", 2880), ("1M", 43_200), ("1y", 525_600), ("1Y", 525_600)],
)
def test_parse_interval(text: str, minutes: int) -> None:
    assert parse_interval(text) == timedelta(minutes=minutes)


@pytest.mark.parametrize("text", ["0", "0m", "-5", "5s", "m", "1.5h", "11y", ""])
def test_parse_interval_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"interval|ten years"):
        parse_interval(text)


@pytest.mark.parametrize(("minutes", "text"), [(None, ""), (90, "90m"), (120, "2h"), (2880, "2d"), (525_600, "1y")])
def test_format_interval(minutes: int | None, text: str) -> None:
    assert format_interval(None if minutes is None else timedelta(minutes=minutes)) == text


def test_size_limit() -> None:
    text = "[a]\nservices = ssh\n" + "#" * MAX_INI_BYTES
    with pytest.raises(IniTooLargeError) as caught:
        parse(text)
    assert caught.value.status_code == 413
    with pytest.raises(IniTooLargeError):
        decode_ini(text.encode())


def test_decode_rejects_non_utf8_with_the_line() -> None:
    with pytest.raises(IniError) as caught:
        decode_ini(b"[a]\nservices = ssh\n[b]\nservices = \xff\n", "x.ini")
    assert issue_lines(caught.value) == [4]
    assert decode_ini("\ufeff[a]\n".encode()) == "[a]\n"


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("[]=:.#;\n \t-abcdeipsh0123456789,%")), max_size=200))
def test_arbitrary_text_only_raises_ini_errors(text: str) -> None:
    with contextlib.suppress(IniError, IniConflictError):
        parse(text)
