"""The image builder and the service images it makes.

Docker tests (marked ``docker``) build every family (idempotence: a second run reuses everything, fast), then run
one container per service of the ``opencanary`` and ``cowrie`` families with the DECNET environment contract on a
private bridge network, and talk to each from the host: protocol greeting, configured identity, and a JSON event
on the container's stdout after a connection or login attempt. The containers start once per module and are
removed afterwards. The other tests check the entrypoints' config mapping and the build context hash without
Docker.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import ssl
import struct
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import docker
import pytest
from django.core.management import CommandError, call_command
from docker.models.containers import Container

from deckies.catalogue.images import ALL_FAMILIES, SERVICE_IMAGE_FAMILY, image_for_service, image_ref
from deckies.engine import image_context, images
from deckies.engine.errors import EngineUnavailableError
from tests.netsafety import require_local_bridge

IMAGES_DIR = Path(images.__file__).resolve().parents[2] / "images"
TEST_LABEL = "org.decnet.test"
DECKY = "decky-img"
HOSTNAME = "files01"

#: service -> DECNET_SERVICE_CONFIG of its test container.
SERVICE_CONFIGS: dict[str, dict[str, Any]] = {
    "ssh": {"password": "toor", "user": "deploy", "user_password": "s3cret:x", "hostname": "web07"},
    "telnet": {"password": "root123", "user": "admin", "user_password": "admin"},
    "ftp": {"banner": "(vsFTPd 3.0.3)"},
    "http": {
        "server_header": "nginx/1.22.1",
        "fake_app": "wordpress",
        "extra_headers": '{"X-Powered-By": "PHP/8.2.7"}',
    },
    "https": {"server_header": "Apache/2.4.62 (Debian)", "tls_cn": "intranet.corp.example"},
    "mysql": {"version": "8.0.36"},
    "mssql": {"version": "15.0.2000.5"},
    "redis": {"version": "7.2.4", "os_string": "Linux 6.1.0-18-amd64 x86_64"},
    "rdp": {"nla": True},
    "vnc": {"version": "RFB 003.008"},
    "sip": {"user_agent": "Asterisk PBX 18.21.0"},
    "snmp": {"community": "public", "sys_descr": "Linux files01 6.1.0-28-amd64 x86_64"},
    "tftp": {},
}
TCP_PORTS = {"ssh": 22, "telnet": 23, "ftp": 21, "http": 80, "https": 443, "mysql": 3306, "mssql": 1433,
             "redis": 6379, "rdp": 3389, "vnc": 5900}  # fmt: skip
UDP_PORTS = {"sip": 5060, "snmp": 161, "tftp": 69}

docker_test = pytest.mark.docker


# --- helpers ------------------------------------------------------------------------------------------------


def _load_entrypoint(family: str, filename: str) -> ModuleType:
    """Import an image entrypoint from ``images/<family>/`` (it only needs the standard library at import)."""
    path = IMAGES_DIR / family / filename
    spec = importlib.util.spec_from_file_location(f"_decnet_test_{family}_entrypoint", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _events(container: Container) -> list[dict[str, Any]]:
    """The container's stdout, which must be JSON objects only, one per line."""
    raw = container.logs(stdout=True, stderr=False).decode("utf-8", errors="replace")
    events = []
    for line in raw.splitlines():
        if line.strip():
            event = json.loads(line)
            assert isinstance(event, dict), line
            events.append(event)
    return events


def _wait_event(container: Container, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        matching = [event for event in _events(container) if predicate(event)]
        if matching:
            return matching[-1]
        if time.monotonic() > deadline:
            stdout = container.logs(stdout=True, stderr=False).decode(errors="replace")[-2000:]
            pytest.fail(f"no matching event from {container.name} within {timeout}s; stdout:\n{stdout}")
        time.sleep(0.2)


def _recv_until(sock: socket.socket, done: Callable[[bytes], bool], timeout: float = 5) -> bytes:
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while not done(data) and time.monotonic() < deadline:
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            break
        if not chunk:
            break
        data += chunk
    return data


def _exchange(
    ip: str, port: int, payload: bytes | None = None, *, done: Callable[[bytes], bool] | None = None
) -> bytes:
    with socket.create_connection((ip, port), timeout=5) as sock:
        if payload is not None:
            sock.sendall(payload)
        return _recv_until(sock, done or (lambda data: bool(data)))


def _udp(ip: str, port: int, payload: bytes, timeout: float = 3) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(payload, (ip, port))
        return sock.recvfrom(65535)[0]


def _wait_ready(container: Container, ip: str, service: str, timeout: float = 60) -> None:
    """TCP services: the port accepts; UDP services: the entrypoint reported it is listening."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        container.reload()
        if container.status == "exited":
            break
        if service in TCP_PORTS:
            try:
                socket.create_connection((ip, TCP_PORTS[service]), timeout=1).close()
                return
            except OSError:
                pass
        elif b"listening on" in container.logs(stdout=False, stderr=True):
            return
        time.sleep(0.3)
    logs = container.logs().decode(errors="replace")[-3000:]
    pytest.fail(f"{service} container not ready within {timeout}s (status {container.status}):\n{logs}")


def _snmp_get(community: str, oid: tuple[int, ...], request_id: int = 7) -> bytes:
    """A minimal SNMPv2c GetRequest for one OID (BER by hand)."""

    def tlv(tag: int, value: bytes) -> bytes:
        return bytes([tag, len(value)]) + value

    encoded_oid = bytes([40 * oid[0] + oid[1], *oid[2:]])
    varbind = tlv(0x30, tlv(0x06, encoded_oid) + b"\x05\x00")
    pdu = tlv(
        0xA0, tlv(0x02, struct.pack(">I", request_id)) + tlv(0x02, b"\x00") + tlv(0x02, b"\x00") + tlv(0x30, varbind)
    )
    return tlv(0x30, tlv(0x02, b"\x01") + tlv(0x04, community.encode()) + pdu)


def _tds_prelogin() -> bytes:
    options = [(0, b"\x0f\x00\x07\xd0\x00\x00"), (1, b"\x02"), (2, b"\x00"), (3, b"\x00\x00\x00\x00"), (4, b"\x00")]
    offset, head, data = len(options) * 5 + 1, b"", b""
    for token, value in options:
        head += struct.pack(">BHH", token, offset + len(data), len(value))
        data += value
    payload = head + b"\xff" + data
    return struct.pack(">BBHHBB", 0x12, 1, 8 + len(payload), 0, 0, 0) + payload


# --- fixtures -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine() -> Iterator[docker.DockerClient]:
    client = docker.from_env(timeout=image_context.BUILD_CLIENT_TIMEOUT)
    try:
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.skip(f"Docker engine not reachable: {exc}")
    yield client
    client.close()


@pytest.fixture(scope="module")
def first_build(engine: docker.DockerClient) -> list[images.ImageBuildResult]:
    """Every family built (or reused): what a cold or warm ``manage.py build_images`` does."""
    lines: list[str] = []
    results = images.build_images(client=engine, progress=lines.append)
    assert [r.family for r in results] == list(ALL_FAMILIES), lines
    return results


@pytest.fixture(scope="module")
def deployed(engine: docker.DockerClient, first_build: list[images.ImageBuildResult]) -> Iterator[dict[str, Any]]:
    """One running container per opencanary/cowrie service on a private bridge: service -> (container, ip)."""
    tag = uuid.uuid4().hex[:8]
    network = engine.networks.create(f"decnet-test-images-{tag}", driver="bridge", labels={TEST_LABEL: tag})
    containers: dict[str, Container] = {}
    try:
        for service, config in SERVICE_CONFIGS.items():
            containers[service] = engine.containers.run(
                image_for_service(service),
                name=f"decnet-test-{tag}-{service}",
                detach=True,
                network=network.name,
                labels={TEST_LABEL: tag},
                environment={
                    "DECNET_SERVICE": service,
                    "DECNET_DECKY": DECKY,
                    "DECNET_HOSTNAME": HOSTNAME,
                    "DECNET_SERVICE_CONFIG": json.dumps(config),
                },
            )
        addresses: dict[str, tuple[Container, str]] = {}
        for service, container in containers.items():
            container.reload()
            ip = container.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"]
            require_local_bridge(ip)
            _wait_ready(container, ip, service)
            addresses[service] = (container, ip)
        yield addresses
    finally:
        for container in containers.values():
            container.remove(force=True)
        network.remove()


# --- building -----------------------------------------------------------------------------------------------


@docker_test
def test_second_build_reuses_every_image_quickly(
    engine: docker.DockerClient, first_build: list[images.ImageBuildResult]
) -> None:
    lines: list[str] = []
    started = time.monotonic()
    again = images.build_images(client=engine, progress=lines.append)
    assert time.monotonic() - started < 15
    assert [r.action for r in again] == ["reused"] * len(ALL_FAMILIES)
    assert [r.image_id for r in again] == [r.image_id for r in first_build]
    assert all("up to date" in line for line in lines)
    for result in again:
        image = engine.images.get(result.image)
        assert image.labels[images.CONTEXT_HASH_LABEL] == result.context_hash
        assert image.labels[images.FAMILY_LABEL] == result.family


@docker_test
def test_status_reports_every_family_present_and_current(
    engine: docker.DockerClient, first_build: list[images.ImageBuildResult]
) -> None:
    statuses = images.image_status(engine)
    assert [(s.family, s.image, s.present, s.current) for s in statuses] == [
        (family, image_ref(family), True, True) for family in ALL_FAMILIES
    ]
    assert images.missing_images(engine) == []


@docker_test
def test_base_image_runs_a_keeper_and_has_python_with_http(first_build: list[images.ImageBuildResult]) -> None:
    client = docker.from_env()
    base = client.images.get(image_ref("base"))
    assert base.attrs["Config"]["Cmd"] == ["sleep", "infinity"]
    out = client.containers.run(
        image_ref("base"), ["python3", "-c", "import http.server, json, ssl; print('ok')"], remove=True
    )
    assert out.strip() == b"ok"


# --- the services -------------------------------------------------------------------------------------------


@docker_test
def test_every_service_container_keeps_running_unprivileged(deployed: dict[str, Any]) -> None:
    for service, (container, _ip) in deployed.items():
        container.reload()
        assert container.status == "running", service
        user = container.exec_run(["ps", "-o", "user=", "-p", "1"]).output.decode().strip()
        assert user == ("cowrie" if SERVICE_IMAGE_FAMILY[service] == "cowrie" else "nobody"), service


@docker_test
def test_ssh_presents_debian_openssh_and_logs_logins(deployed: dict[str, Any], tmp_path: Path) -> None:
    container, ip = deployed["ssh"]
    banner = _exchange(ip, 22, done=lambda data: b"\r\n" in data)
    assert banner.startswith(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3")
    _wait_event(container, lambda e: e.get("eventid") == "cowrie.session.connect" and e.get("dst_port") == 22)
    if shutil.which("ssh") is None:
        return  # the password login below needs an OpenSSH client on the host
    askpass = tmp_path / "askpass"
    askpass.write_text("#!/bin/sh\necho 's3cret:x'\n", encoding="utf-8")
    askpass.chmod(0o700)
    env = dict(os.environ, SSH_ASKPASS=str(askpass), SSH_ASKPASS_REQUIRE="force", DISPLAY=":0")
    settings = ("StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null", "ConnectTimeout=5", "LogLevel=ERROR",
                "PreferredAuthentications=password", "PubkeyAuthentication=no")  # fmt: skip
    options = [part for setting in settings for part in ("-o", setting)]
    done = subprocess.run(
        ["ssh", *options, f"deploy@{ip}", "hostname"],
        env=env,
        capture_output=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert done.stdout.decode().strip() == "web07", done.stderr
    event = _wait_event(container, lambda e: e.get("eventid") == "cowrie.login.success")
    assert (event["username"], event["password"], event["sensor"]) == ("deploy", "s3cret:x", DECKY)


@docker_test
def test_telnet_negotiates_like_debian_and_logs_logins(deployed: dict[str, Any]) -> None:
    container, ip = deployed["telnet"]
    with socket.create_connection((ip, 23), timeout=5) as sock:
        opening = _recv_until(sock, lambda data: len(data) >= 12)
        assert opening == b"\xff\xfd\x18\xff\xfd\x20\xff\xfd\x23\xff\xfd\x27"  # DO TTYPE, TSPEED, XDISPLOC, NEW-ENVIRON
        sock.sendall(b"\xff\xfc\x18\xff\xfc\x20\xff\xfc\x23\xff\xfc\x27")  # WONT to each
        assert b"login: " in _recv_until(sock, lambda data: b"login: " in data)
        sock.sendall(b"root\r\n")
        assert b"Password: " in _recv_until(sock, lambda data: b"Password: " in data)
        sock.sendall(b"root123\r\n")
        assert b"root@files01" in _recv_until(sock, lambda data: data.rstrip().endswith(b"#"))
        sock.sendall(b"uname -a\r\n")
        _recv_until(sock, lambda data: data.rstrip().endswith(b"#"))
    login = _wait_event(container, lambda e: e.get("eventid") == "cowrie.login.success")
    assert (login["username"], login["password"], login["protocol"]) == ("root", "root123", "telnet")
    _wait_event(container, lambda e: e.get("eventid") == "cowrie.command.input" and e.get("input") == "uname -a")


@docker_test
def test_ftp_greets_with_the_banner_and_logs_logins(deployed: dict[str, Any]) -> None:
    container, ip = deployed["ftp"]
    with socket.create_connection((ip, 21), timeout=5) as sock:
        assert _recv_until(sock, lambda d: d.endswith(b"\r\n")) == b"220 (vsFTPd 3.0.3)\r\n"
        sock.sendall(b"USER admin\r\n")
        assert _recv_until(sock, lambda d: d.endswith(b"\r\n")).startswith(b"331")
        sock.sendall(b"PASS hunter2\r\n")
        assert _recv_until(sock, lambda d: d.endswith(b"\r\n")).startswith(b"530")
    event = _wait_event(container, lambda e: e.get("logtype") == 2000)
    assert event["logdata"] == {"USERNAME": "admin", "PASSWORD": "hunter2"}
    assert (event["node_id"], event["dst_port"]) == (DECKY, 21)


@docker_test
def test_http_serves_the_fake_app_with_the_configured_headers(deployed: dict[str, Any]) -> None:
    container, ip = deployed["http"]
    request = b"GET /index.html HTTP/1.1\r\nHost: files01\r\nUser-Agent: probe\r\nConnection: close\r\n\r\n"
    response = _exchange(ip, 80, request, done=lambda d: b"</html>" in d)
    head = response.split(b"\r\n\r\n", 1)[0].decode()
    assert head.startswith("HTTP/1.1 200 OK")
    assert "Server: nginx/1.22.1" in head.splitlines()
    assert "X-Powered-By: PHP/8.2.7" in head.splitlines()
    assert b"WordPress" in response
    body = b"username=admin&password=letmein"
    post = (
        b"POST /index.html HTTP/1.1\r\nHost: files01\r\nConnection: close\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    _exchange(ip, 80, post, done=lambda d: b"</html>" in d)
    event = _wait_event(container, lambda e: e.get("logtype") == 3001)
    assert (event["logdata"]["USERNAME"], event["logdata"]["PASSWORD"]) == ("admin", "letmein")


@docker_test
def test_https_serves_tls_with_the_configured_name(deployed: dict[str, Any]) -> None:
    container, ip = deployed["https"]
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((ip, 443), timeout=5) as raw, context.wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True)
        tls.sendall(b"GET /index.html HTTP/1.1\r\nHost: intranet\r\nConnection: close\r\n\r\n")
        response = _recv_until(tls, lambda d: b"</html>" in d)
    assert response.startswith(b"HTTP/1.1 200 OK")
    assert b"\r\nServer: Apache/2.4.62 (Debian)\r\n" in response
    assert der is not None
    assert b"intranet.corp.example" in der
    _wait_event(container, lambda e: e.get("logtype") == 3000 and e.get("dst_port") == 443)


@docker_test
def test_mysql_handshake_carries_the_configured_version(deployed: dict[str, Any]) -> None:
    container, ip = deployed["mysql"]
    greeting = _exchange(ip, 3306, done=lambda d: len(d) >= 4 and len(d) >= 4 + int.from_bytes(d[:3], "little"))
    assert greeting[4] == 10  # protocol version 10
    assert greeting[5:].startswith(b"8.0.36\x00")
    _wait_event(container, lambda e: e.get("logtype") == 9003)  # connection made


@docker_test
def test_redis_answers_ping_and_info(deployed: dict[str, Any]) -> None:
    container, ip = deployed["redis"]
    assert _exchange(ip, 6379, b"*1\r\n$4\r\nPING\r\n", done=lambda d: d.endswith(b"\r\n")) == b"+PONG\r\n"
    info = _exchange(ip, 6379, b"INFO\r\n", done=lambda d: d.endswith(b"\r\n\r\n"))
    assert info.startswith(b"$")
    assert b"\r\nredis_version:7.2.4\r\n" in info
    assert b"\r\nos:Linux 6.1.0-18-amd64 x86_64\r\n" in info
    _wait_event(container, lambda e: e.get("logtype") == 17001 and e["logdata"].get("CMD") == "INFO")


@docker_test
def test_mssql_answers_prelogin(deployed: dict[str, Any]) -> None:
    _container, ip = deployed["mssql"]
    response = _exchange(
        ip, 1433, _tds_prelogin(), done=lambda d: len(d) >= 8 and len(d) >= struct.unpack(">H", d[2:4])[0]
    )
    assert response[0] == 0x04  # tabular result


@docker_test
def test_rdp_confirms_the_connection_request(deployed: dict[str, Any]) -> None:
    container, ip = deployed["rdp"]
    cookie = b"Cookie: mstshash=administrator\r\n"
    negotiation = b"\x01\x00\x08\x00\x03\x00\x00\x00"  # RDP_NEG_REQ: TLS | CredSSP
    x224 = bytes([6 + len(cookie) + len(negotiation), 0xE0, 0, 0, 0, 0, 0]) + cookie + negotiation
    request = b"\x03\x00" + struct.pack(">H", 4 + len(x224)) + x224
    response = _exchange(ip, 3389, request, done=lambda d: len(d) >= 19)
    assert response[:6] == b"\x03\x00\x00\x13\x0e\xd0"  # TPKT + X.224 Connection Confirm
    assert response[11:12] == b"\x02"  # RDP_NEG_RSP
    assert response[15:19] == b"\x02\x00\x00\x00"  # CredSSP (NLA) selected
    event = _wait_event(container, lambda e: e.get("logtype") == 14001)
    assert event["logdata"]["USERNAME"] == "administrator"


@docker_test
def test_vnc_announces_rfb(deployed: dict[str, Any]) -> None:
    _container, ip = deployed["vnc"]
    assert _exchange(ip, 5900, done=lambda d: d.endswith(b"\n")) == b"RFB 003.008\n"


@docker_test
def test_sip_answers_options_with_the_configured_agent(deployed: dict[str, Any]) -> None:
    container, ip = deployed["sip"]
    options = (
        f"OPTIONS sip:100@{ip} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1\r\n"
        f"From: <sip:probe@192.0.2.1>;tag=1\r\nTo: <sip:100@{ip}>\r\nCall-ID: test-1\r\nCSeq: 1 OPTIONS\r\n"
        "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    answer = _udp(ip, 5060, options).decode()
    assert answer.startswith("SIP/2.0 200 OK\r\n")
    assert "Server: Asterisk PBX 18.21.0\r\n" in answer
    _wait_event(container, lambda e: e.get("logtype") == 15001)


@docker_test
def test_snmp_answers_sysdescr_for_the_community_only(deployed: dict[str, Any]) -> None:
    container, ip = deployed["snmp"]
    answer = _udp(ip, 161, _snmp_get("public", (1, 3, 6, 1, 2, 1, 1, 1, 0)))
    assert b"Linux files01 6.1.0-28-amd64 x86_64" in answer
    with pytest.raises(TimeoutError):
        _udp(ip, 161, _snmp_get("private", (1, 3, 6, 1, 2, 1, 1, 1, 0)), timeout=1)
    event = _wait_event(
        container, lambda e: e.get("logtype") == 13001 and e["logdata"]["COMMUNITY_STRING"] == "private"
    )
    assert event["src_host"]


@docker_test
def test_tftp_logs_read_requests(deployed: dict[str, Any]) -> None:
    container, ip = deployed["tftp"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"\x00\x01running-config\x00octet\x00", (ip, 69))
    event = _wait_event(container, lambda e: e.get("logtype") == 10001)
    assert (event["logdata"]["FILENAME"], event["logdata"]["OPCODE"]) == ("running-config", "READ")


# --- without Docker: errors, context hashes, entrypoint config mapping -------------------------------------


def test_unreachable_engine_is_a_typed_error(tmp_path: Path) -> None:
    client = docker.DockerClient(base_url=f"unix://{tmp_path}/no-such.sock", version="1.41", timeout=2)
    with pytest.raises(EngineUnavailableError, match="not reachable"):
        images.build_images(client=client, progress=lambda _line: None)


def test_unknown_family_is_refused() -> None:
    with pytest.raises(images.ImageBuildError, match="unknown image families: nope"):
        images.build_images(
            families=["nope"], client=docker.DockerClient(base_url="unix:///nonexistent", version="1.41")
        )
    with pytest.raises(CommandError):
        call_command("build_images", "--family", "nope")


def test_context_hash_follows_the_files_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    family = tmp_path / "fam"
    (family / "wheels").mkdir(parents=True)
    (family / "__pycache__").mkdir()
    (family / "Dockerfile").write_text("FROM scratch\n", encoding="utf-8")
    monkeypatch.setattr(image_context, "IMAGES_DIR", tmp_path)
    first = image_context.context_hash("fam", base_image_id="sha256:1")
    (family / "wheels" / "x-1.0-py3-none-any.whl").write_bytes(b"wheel")
    (family / "__pycache__" / "x.cpython-312.pyc").write_bytes(b"pyc")
    assert image_context.context_hash("fam", base_image_id="sha256:1") == first
    assert image_context.context_hash("fam", base_image_id="sha256:2") != first
    (family / "entry.py").write_text("print()\n", encoding="utf-8")
    assert image_context.context_hash("fam", base_image_id="sha256:1") != first


def test_data_dir_is_the_setting(settings: Any, tmp_path: Path) -> None:
    settings.DECNET_DATA_DIR = tmp_path
    assert image_context.data_dir() == tmp_path


def test_canary_config_enables_only_the_service() -> None:
    canary = _load_entrypoint("opencanary", "decnet_canary.py")
    for service, (port, _transport) in canary.SERVICE_PORTS.items():
        conf = canary.canary_config(service, DECKY, HOSTNAME, {})
        assert [key for key in conf if key.endswith(".enabled")] == [f"{service}.enabled"]
        assert conf[f"{service}.port"] == port
        assert conf["device.node_id"] == DECKY
        assert SERVICE_IMAGE_FAMILY[service] == "opencanary"
    with pytest.raises(canary.ConfigError):
        canary.canary_config("ssh", DECKY, HOSTNAME, {})


def test_canary_config_maps_the_service_keys() -> None:
    canary = _load_entrypoint("opencanary", "decnet_canary.py")
    assert canary.canary_config("ftp", DECKY, HOSTNAME, {"banner": "ProFTPD 1.3.8 Server"})["ftp.banner"] == (
        "ProFTPD 1.3.8 Server"
    )
    http = canary.canary_config("http", DECKY, HOSTNAME, {"server_header": "IIS", "fake_app": "jenkins"})
    assert (http["http.banner"], http["http.skin"]) == ("IIS", "jenkins")
    assert canary.canary_config("https", DECKY, HOSTNAME, {})["https.domain_name"] == HOSTNAME
    # OpenCanary refuses MySQL 8 banners: a placeholder passes its check, the real one is set at run time.
    assert canary.OPENCANARY_MYSQL_BANNER.match(canary.canary_config("mysql", DECKY, HOSTNAME, {})["mysql.banner"])
    assert canary.mysql_version({"version": "8.0.36"}) == "8.0.36"
    assert canary.mysql_version({"version": "bad\x00version"}) == canary.DEFAULT_MYSQL_VERSION
    assert [canary.mssql_version({"version": v}) for v in ("10.50.1600", "11.0.3128", "15.0.2000.5", "2008")] == [
        "2008R2",
        "2012",
        "2014",
        "2008R2",
    ]
    assert canary.extra_headers({"extra_headers": "X-A: 1\nBad Header: 2\nX-B: two\r\n"}) == [
        ("X-A", "1"),
        ("X-B", "two"),
    ]
    assert canary.extra_headers({"extra_headers": {"X-C": 3}}) == [("X-C", "3")]
    assert canary.skin_name({"fake_app": "nas"}) == "nasLogin"
    assert canary.skin_name({"fake_app": "wordpress", "custom_body": "<p>hi</p>"}) == "custom"
    assert canary.response_code({"response_code": 200}) is None
    assert canary.response_code({"response_code": "403"}) == 403
    assert canary.vnc_version({"version": "RFB 003.003"}) == "003.003"
    assert canary.vnc_version({"version": "RFB 004.001"}) == "003.008"
    assert canary.rdp_negotiation_response(b"\x01\x00\x08\x00\x01\x00\x00\x00".rjust(19, b"\0"), nla=True)[11] == 3
    with pytest.raises(canary.ConfigError):
        canary.load_service_config("[1, 2]")


def test_every_fake_app_skin_posts_username_and_password() -> None:
    skins = IMAGES_DIR / "opencanary" / "skins"
    canary = _load_entrypoint("opencanary", "decnet_canary.py")
    for skin in canary.FAKE_APP_SKINS.values():
        page = (skins / skin / "index.html").read_text(encoding="utf-8")
        for marker in ('name="username"', 'name="password"', "<!--STARTERR-->", "<!--ENDERR-->"):
            assert marker in page, (skin, marker)
    assert {p.name for p in (skins / "_common").iterdir()} == {"403.html", "404.html", "redirect.html"}


def test_cowrie_config_and_userdb() -> None:
    cowrie = _load_entrypoint("cowrie", "decnet_cowrie.py")
    cfg = {"password": "p@ss", "user": "deploy", "user_password": "with:colon", "hostname": "web07"}
    text = cowrie.cowrie_config("telnet", cowrie.shell_hostname(cfg, "x"), cfg, events_path="/dev/null", sensor=DECKY)
    for line in (
        "hostname = web07\n",
        "sensor_name = decky-img\n",
        "[ssh]\nenabled = false\n",
        "[telnet]\nenabled = true\n",
    ):
        assert line in text
    assert "version = SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\n" in text
    users = cowrie.userdb("ssh", cfg).splitlines()[1:]
    assert users == ["root:x:p@ss", r"deploy:x:/^with\x3acolon$/"]
    assert cowrie.userdb_rule("*") == r"/^\x2a$/"
    assert cowrie.userdb_rule("!no") == r"/^\x21no$/"
    assert cowrie.ssh_version({"version": "not ssh"}) == cowrie.DEFAULT_SSH_VERSION
    with pytest.raises(cowrie.ConfigError):
        cowrie.shell_hostname({"hostname": "bad host\n"}, "x")
    with pytest.raises(cowrie.ConfigError):
        cowrie.cowrie_config("ftp", "x", {}, events_path="/dev/null", sensor=DECKY)


def test_every_built_in_family_has_a_build_context() -> None:
    for family in ALL_FAMILIES:
        context = IMAGES_DIR / family
        assert context.is_dir(), family
        if family != "base":
            assert (context / "Dockerfile").is_file(), family
