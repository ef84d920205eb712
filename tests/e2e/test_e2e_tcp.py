"""TCP through real sidecars (docs/protocols.md "TCP"): a byte-echo service behind a sidecar with
``--protocol tcp``, reached through ``CONNECT`` on a client sidecar's outbound listener and
through ``--upstream``; a ``--protocol mysql`` service on 3306 relays as TCP, reached by its
sidecar entry and by a ``trimesh register``-ed bare port 3306 learnt through a real control. Loopback block 127.0.140.x only; every process stopped by PID."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from procs import free_port, spawn, trimesh_command  # noqa: E402

from trimesh.config import register_port_protocol  # noqa: E402
from trimesh.proxy import FLAGS_HEADER  # noqa: E402

ECHO_APP = "127.0.140.10"
ECHO_SIDECAR = "127.0.140.11"
CLIENT = "127.0.140.12"
DB_SIDECAR = "127.0.140.13"
READY_TIMEOUT = 30.0
IO_TIMEOUT = 30.0
MB10 = 10 * 1024 * 1024


def _wait(predicate, what: str, procs, timeout: float = READY_TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            if not p.alive():
                pytest.fail(f"{p.name} exited while waiting for {what}:\n{p.log_tail()}")
        try:
            if predicate():
                return
        except (OSError, httpx.HTTPError):
            pass
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}:\n" + "\n".join(p.log_tail() for p in procs))


def _ready(address: str, admin: int) -> bool:
    return httpx.get(f"http://{address}:{admin}/ready", timeout=1).status_code == 200


@pytest.fixture(scope="module")
def tcp_mesh(tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("tcp")
    procs = []
    try:
        echo_port = free_port(ECHO_APP)
        procs.append(spawn("echo", [sys.executable, str(Path(__file__).with_name("tcp_echo.py")),
                                    ECHO_APP, str(echo_port)], log_dir))
        svc_port = free_port(ECHO_SIDECAR)
        empty = log_dir / "empty.yaml"
        empty.write_text("[]\n")

        def sidecar(name, address, port, protocol, registry, *extra):
            admin, proxy = free_port(address), free_port(address)
            argv = trimesh_command() + [
                "run", "sidecar", "--service", name, "--version", "v1", "--port", str(port),
                "--protocol", protocol, "--app-address", ECHO_APP, "--app-port", str(echo_port),
                "--address", address, "--proxy-port", str(proxy), "--admin-port", str(admin),
                "--registry", str(registry), "--control", "none", "--drain-timeout", "1",
                "--access-log", str(log_dir / f"{name}-access.log"), *extra]
            procs.append(spawn(f"sidecar-{name}", argv, log_dir))
            return {"address": address, "admin": admin, "proxy": proxy, "port": port,
                    "log": log_dir / f"{name}-access.log"}

        echo = sidecar("echo", ECHO_SIDECAR, svc_port, "tcp", empty)
        db_protocol, _ = register_port_protocol(None, 3306)
        db = sidecar("db", DB_SIDECAR, 3306, db_protocol, empty)
        dead_port = free_port(ECHO_SIDECAR)
        registry = log_dir / "client-registry.yaml"
        registry.write_text(yaml.safe_dump([
            {"service": "echo", "address": ECHO_SIDECAR, "port": svc_port, "protocol": "tcp",
             "labels": {"version": "v1"}},
            {"service": "db", "address": DB_SIDECAR, "port": 3306, "protocol": db_protocol,
             "labels": {"version": "v1"}},
            {"service": "dead", "address": ECHO_SIDECAR, "port": dead_port, "protocol": "tcp",
             "labels": {"version": "v1"}},
        ]))
        local = free_port(CLIENT)
        client = sidecar("client", CLIENT, free_port(CLIENT), "http", registry,
                         "--upstream", f"echo:{svc_port}={local}", "--health-checks", "off")
        client["local"] = local
        for s in (echo, db, client):
            _wait(lambda s=s: _ready(s["address"], s["admin"]), f"sidecar on {s['address']}",
                  procs)
        yield {"echo": echo, "db": db, "client": client, "svc_port": svc_port,
               "db_protocol": db_protocol, "procs": procs}
    finally:
        for p in reversed(procs):
            p.stop()


def _connect(mesh, target: str) -> tuple[socket.socket, bytes]:
    c = mesh["client"]
    s = socket.create_connection((c["address"], c["proxy"]), timeout=IO_TIMEOUT)
    s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head and len(head) < 65536:
        data = s.recv(4096)
        if not data:
            break
        head += data
    return s, head


def _echo_through(sock: socket.socket, payload: bytes, chunk: int = 262144) -> bytes:
    """Send ``payload`` (from a thread), shut down the write side, read until EOF."""
    def send():
        view = memoryview(payload)
        for i in range(0, len(view), chunk):
            sock.sendall(view[i:i + chunk])
        sock.shutdown(socket.SHUT_WR)  # half-close: the reverse direction stays open

    t = threading.Thread(target=send)
    t.start()
    out = bytearray()
    while True:
        data = sock.recv(262144)
        if not data:
            break
        out += data
    t.join(IO_TIMEOUT)
    sock.close()
    return bytes(out)


def _records(path: Path, want: int, timeout: float = 10.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    rows: list[dict] = []
    while time.monotonic() < deadline:
        if path.exists():
            rows = [json.loads(x) for x in path.read_text().splitlines() if x.startswith("{")]
            rows = [r for r in rows if r.get("protocol") == "tcp"]
            if len(rows) >= want:
                return rows
        time.sleep(0.1)
    return rows


def test_connect_10mb_echoed_identically_with_half_close(tcp_mesh):
    payload = os.urandom(MB10)
    sock, head = _connect(tcp_mesh, f"echo:{tcp_mesh['svc_port']}")
    assert head.startswith(b"HTTP/1.1 200 Connection established\r\n\r\n")
    got = _echo_through(sock, payload)
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(payload).hexdigest()
    rows = _records(tcp_mesh["client"]["log"], 1)
    big = [r for r in rows if r["method"] == "CONNECT" and r["received_bytes"] == MB10]
    assert big and big[0]["sent_bytes"] == MB10 and big[0]["status"] == 200


def test_upstream_listener_10mb(tcp_mesh):
    c = tcp_mesh["client"]
    payload = os.urandom(MB10)
    sock = socket.create_connection((c["address"], c["local"]), timeout=IO_TIMEOUT)
    got = _echo_through(sock, payload)
    assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()


@pytest.mark.parametrize("way", ["connect", "upstream"])
def test_100_concurrent_connections(tcp_mesh, way):
    c = tcp_mesh["client"]

    def one(i: int) -> bool:
        payload = os.urandom(20_000 + i)
        if way == "connect":
            sock, head = _connect(tcp_mesh, f"echo:{tcp_mesh['svc_port']}")
            if not head.startswith(b"HTTP/1.1 200"):
                return False
        else:
            sock = socket.create_connection((c["address"], c["local"]), timeout=IO_TIMEOUT)
        return _echo_through(sock, payload, chunk=4096) == payload

    with ThreadPoolExecutor(max_workers=100) as pool:
        results = list(pool.map(one, range(100)))
    assert results.count(True) == 100


def test_mysql_port_relays_as_tcp(tcp_mesh):
    assert tcp_mesh["db_protocol"] == "mysql"
    sock, head = _connect(tcp_mesh, "db:3306")
    assert head.startswith(b"HTTP/1.1 200")
    assert _echo_through(sock, b"\x0a5.7.0-fake-handshake" * 100) == (
        b"\x0a5.7.0-fake-handshake" * 100)
    rows = _records(tcp_mesh["db"]["log"], 1)
    assert rows and rows[-1]["direction"] == "inbound" and rows[-1]["received_bytes"] == len(b"\x0a5.7.0-fake-handshake") * 100


@pytest.mark.parametrize("target, status, flag", [
    ("nowhere:9999", 404, "NR"),  # no route
    ("dead:{dead}", 503, "UF"),  # nothing listens: every connect try fails
])
def test_connect_failures_are_mesh_replies(tcp_mesh, target, status, flag):
    if "{dead}" in target:
        reg = yaml.safe_load(Path(tcp_mesh["client"]["log"]).with_name(
            "client-registry.yaml").read_text())
        target = target.format(dead=[r for r in reg if r["service"] == "dead"][0]["port"])
    sock, head = _connect(tcp_mesh, target)
    sock.close()
    assert head.split(b"\r\n", 1)[0].split(b" ")[1] == str(status).encode()
    assert f"{FLAGS_HEADER}: {flag}".encode() in head.lower().replace(flag.lower().encode(),
                                                                      flag.encode())


CONTROL = "127.0.140.20"
GOSSIP_CLIENT = "127.0.140.21"


def test_a_port_registered_as_3306_relays_as_tcp(tcp_mesh, tmp_path):
    """``trimesh register db-vm 127.0.140.13 3306`` (a bare well-known port) through a real
    control; a sidecar that learns the instance by gossip CONNECTs to it and the bytes relay (the
    instance is the db sidecar's TCP inbound on 3306, in front of the echo app)."""
    procs = []
    try:
        state = tmp_path / "state"
        config_port, gossip_port = free_port(CONTROL), free_port(CONTROL)
        control = spawn("control", trimesh_command() + [
            "run", "control", "--state-dir", str(state), "--address", CONTROL,
            "--config-port", str(config_port), "--gossip-port", str(gossip_port),
            "--gossip-profile", "local"], tmp_path)
        procs.append(control)
        key = state / "gossip.key"
        _wait(lambda: key.exists() and "control ready" in control.log_tail(), "control", procs)
        url = f"http://{CONTROL}:{config_port}"
        out = subprocess.run(trimesh_command() + ["register", "db-vm", DB_SIDECAR, "3306",
                                                  "--control", url],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        assert "(mysql:3306)" in out.stdout
        assert "port 3306: mysql (well-known port 3306)" in out.stdout
        admin, proxy = free_port(GOSSIP_CLIENT), free_port(GOSSIP_CLIENT)
        client = spawn("gossip-client", trimesh_command() + [
            "run", "sidecar", "--service", "vmclient", "--port", str(free_port(GOSSIP_CLIENT)),
            "--app-port", "1", "--address", GOSSIP_CLIENT, "--proxy-port", str(proxy),
            "--admin-port", str(admin), "--control", "none", "--health-checks", "off",
            "--gossip-port", str(free_port(GOSSIP_CLIENT)), "--join", f"{CONTROL}:{gossip_port}",
            "--gossip-key-file", str(key), "--gossip-profile", "local",
            "--access-log", str(tmp_path / "vmclient-access.log")], tmp_path)
        procs.append(client)
        _wait(lambda: _ready(GOSSIP_CLIENT, admin), "the gossip client", procs)

        def learned():
            clusters = httpx.get(f"http://{GOSSIP_CLIENT}:{admin}/config_dump", timeout=2).json()
            return any(i["service"] == "db-vm" and i["protocol"] == "mysql"
                       for i in clusters["instances"])

        _wait(learned, "db-vm by gossip", procs)
        mesh = {"client": {"address": GOSSIP_CLIENT, "proxy": proxy}}
        sock, head = _connect(mesh, "db-vm:3306")
        assert head.startswith(b"HTTP/1.1 200")
        payload = os.urandom(100_000)
        assert _echo_through(sock, payload) == payload
    finally:
        for p in reversed(procs):
            p.stop()


L4_CLIENT = "127.0.140.14"
OFFICE = "127.0.140.30"  # a client address the sourceSubnet rule names
ELSEWHERE = "127.0.140.31"


def test_match_tcp_source_subnet_picks_the_version(tcp_mesh, tmp_path):
    """Issue 11: RouteRule ``match.tcp.sourceSubnet`` routes TCP connections by the client's
    address (concepts.md §8.5): from the office subnet to v2 (the db sidecar's TCP port), from
    anywhere else to v1 (the echo sidecar); the same rule never touches HTTP."""
    registry = tmp_path / "l4-registry.yaml"
    registry.write_text(yaml.safe_dump([
        {"service": "echo-l4", "address": ECHO_SIDECAR, "port": tcp_mesh["svc_port"],
         "protocol": "tcp", "labels": {"version": "v1"}},
        {"service": "echo-l4", "address": DB_SIDECAR, "port": 3306,
         "protocol": tcp_mesh["db_protocol"], "labels": {"version": "v2"}},
    ]))
    rules = tmp_path / "l4-rules.yaml"
    rules.write_text(yaml.safe_dump_all([
        {"apiVersion": "config.istio.io/v1alpha2", "kind": "RouteRule",
         "metadata": {"name": "echo-l4-default"},
         "spec": {"destination": {"name": "echo-l4"}, "precedence": 1,
                  "route": [{"labels": {"version": "v1"}}]}},
        {"apiVersion": "config.istio.io/v1alpha2", "kind": "RouteRule",
         "metadata": {"name": "echo-l4-office"},
         "spec": {"destination": {"name": "echo-l4"}, "precedence": 2,
                  "match": {"tcp": {"sourceSubnet": [f"{OFFICE}/32"]}},
                  "route": [{"labels": {"version": "v2"}}]}},
    ]))
    admin, proxy = free_port(L4_CLIENT), free_port(L4_CLIENT)
    log = tmp_path / "l4client-access.log"
    client = spawn("l4client", trimesh_command() + [
        "run", "sidecar", "--service", "l4client", "--port", str(free_port(L4_CLIENT)),
        "--app-port", "1", "--address", L4_CLIENT, "--proxy-port", str(proxy),
        "--admin-port", str(admin), "--control", "none", "--health-checks", "off",
        "--registry", str(registry), "--config", str(rules), "--access-log", str(log)], tmp_path)
    try:
        _wait(lambda: _ready(L4_CLIENT, admin), "the L4 client sidecar", [client])
        target = f"echo-l4:{tcp_mesh['svc_port']}"
        for source in (OFFICE, ELSEWHERE):
            s = socket.create_connection((L4_CLIENT, proxy), timeout=IO_TIMEOUT,
                                         source_address=(source, 0))
            s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
            head = b""
            while b"\r\n\r\n" not in head:
                data = s.recv(4096)
                assert data, head
                head += data
            assert head.startswith(b"HTTP/1.1 200"), head
            payload = os.urandom(50_000)
            assert _echo_through(s, payload) == payload
        rows = _records(log, 2)
        by_rule = {r["rule"]: r["upstream"] for r in rows}
        assert by_rule == {"echo-l4-office": f"{DB_SIDECAR}:3306",
                           "echo-l4-default": f"{ECHO_SIDECAR}:{tcp_mesh['svc_port']}"}, rows
        # an HTTP request from the office address does not take the L4 rule (whatever v1's
        # byte echo makes of it: the record says which rule routed it)
        with httpx.Client(transport=httpx.HTTPTransport(local_address=OFFICE)) as http:
            http.get(f"http://{L4_CLIENT}:{proxy}/", headers={"host": target}, timeout=10)
        deadline = time.monotonic() + 10
        http_rows: list[dict] = []
        while not http_rows and time.monotonic() < deadline:
            http_rows = [json.loads(x) for x in log.read_text().splitlines()
                         if x.startswith("{") and json.loads(x).get("protocol") != "tcp"]
            time.sleep(0.1)
        assert http_rows and http_rows[-1]["rule"] == "echo-l4-default", http_rows
    finally:
        client.stop()
