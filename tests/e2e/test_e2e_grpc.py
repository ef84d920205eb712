"""Issue 11 acceptance, real processes on 127.0.150.x: HTTP/2 and gRPC through the mesh.

A real grpcio greeter (tests/e2e/grpc_greeter.py), v1 and v2, each behind its own sidecar
(``--protocol grpc``: the inbound speaks HTTP/2 to it); a fake HTTP/1.1-only upstream ``web``; a
client sidecar whose registry lists the greeters (protocol ``grpc``) and ``web``. The grpcio
client uses an insecure channel to the client sidecar's outbound listener with the authority set
to the service (``greeter:9080``), so the mesh routes it like any request to that host.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from e2e_harness import (Proc, Sidecar, dump_rules, free_port, require_tool, rule, spawn,
                         trimesh_command, wait_until)

HERE = Path(__file__).parent
BLOCK = "127.0.150"
GREETER = f"greeter:9080"


def _require_grpc():
    from e2e_harness import _tests_conftest
    return _tests_conftest().require_module("grpc")


def _sidecar(log_dir: Path, service: str, address: str, port: int, instances: list, *,
             version: str = "v1", app: tuple[str, int] | None = None,
             protocol: str = "http") -> Sidecar:
    registry = log_dir / f"{service}-{version}-registry.yaml"
    registry.write_text(yaml.safe_dump(instances))
    config = log_dir / f"{service}-{version}-config.yaml"
    config.write_text("")
    proxy_port, admin_port = free_port(address), free_port(address)
    app_address, app_port = app or ("127.0.0.1", free_port("127.0.0.1"))
    argv = trimesh_command() + [
        "run", "sidecar", "--service", service, "--version", version, "--protocol", protocol,
        "--port", str(port), "--app-address", app_address, "--app-port", str(app_port),
        "--address", address, "--proxy-port", str(proxy_port), "--admin-port", str(admin_port),
        "--registry", str(registry), "--drain-timeout", "1",
        "--access-log", str(log_dir / f"{service}-access.log"), "--seed", "7",
        "--config", str(config), "--control", "none"]
    proc = spawn(f"sidecar-{service}-{version}", argv, log_dir)
    return Sidecar(service, address, port, proxy_port, admin_port, config, registry, proc)


class GrpcMesh:
    def __init__(self, client: Sidecar, grpc, web_port: int) -> None:
        self.client = client
        self.grpc = grpc
        self.outbound = f"{client.address}:{client.proxy_port}"
        self.channel = grpc.insecure_channel(self.outbound,
                                             options=[("grpc.default_authority", GREETER)])
        self.web_port = web_port

    def call(self, method: str, request: bytes, timeout: float = 10.0):
        stub = self.channel.unary_unary(f"/greeter.Greeter/{method}")
        return stub.with_call(request, timeout=timeout)


@pytest.fixture(scope="module")
def gmesh(tmp_path_factory):
    grpc = _require_grpc()
    log_dir = tmp_path_factory.mktemp("grpc")
    procs: list[Proc] = []
    try:
        greeters = []
        for i, version in enumerate(("v1", "v2")):
            address = f"{BLOCK}.{i + 1}"
            port = free_port(address)
            procs.append(spawn(f"greeter-{version}", [sys.executable,
                               str(HERE / "grpc_greeter.py"), address, str(port), version],
                               log_dir))
            greeters.append((address, port, version))
        web_addr = f"{BLOCK}.30"
        web_port = free_port(web_addr)
        procs.append(spawn("web", [sys.executable, "-m", "trimesh.testing.upstream", "--address",
                                   web_addr, "--port", str(web_port), "--name", "web-v1",
                                   "--service", "web", "--version", "v1"], log_dir))
        instances = []
        sidecars = []
        for i, (address, port, version) in enumerate(greeters):
            sc_addr = f"{BLOCK}.{11 + i}"
            sc = _sidecar(log_dir, "greeter", sc_addr, 9080, [], version=version,
                          app=(address, port), protocol="grpc")
            procs.append(sc.proc)
            sidecars.append(sc)
            instances.append({"service": "greeter", "namespace": "default", "address": sc_addr,
                              "port": 9080, "protocol": "grpc", "labels": {"version": version}})
        instances.append({"service": "web", "namespace": "default", "address": web_addr,
                          "port": web_port, "labels": {"version": "v1"}})
        client = _sidecar(log_dir, "client", f"{BLOCK}.20", free_port(f"{BLOCK}.20"), instances)
        procs.append(client.proc)
        for sc in sidecars + [client]:
            wait_until(lambda sc=sc: sc.admin("/ready").status_code == 200, 30,
                       f"{sc.proc.name} ready", sc.proc)
        m = GrpcMesh(client, grpc, web_port)
        wait_until(lambda: _ok(m), 30, "a first gRPC call through the mesh", client.proc)
        yield m
        m.channel.close()
    finally:
        for p in procs:
            p.stop()


def _ok(m: GrpcMesh) -> bool:
    try:
        return m.call("Hello", b"x", timeout=2)[0].endswith(b":x")
    except Exception:
        return False


def test_unary_server_streaming_and_bidi(gmesh):
    resp, call = gmesh.call("Hello", b"world")
    assert resp in (b"v1:world", b"v2:world")
    assert call.code() == gmesh.grpc.StatusCode.OK
    many = gmesh.channel.unary_stream("/greeter.Greeter/Many")
    got = list(many(b"50", timeout=10))
    assert len(got) == 50 and got[0].split(b":")[1] == b"0" and got[-1].endswith(b":49")
    chat = gmesh.channel.stream_stream("/greeter.Greeter/Chat")
    out = list(chat(iter([b"a", b"b", b"c" * 100000]), timeout=10))
    assert [o.split(b":", 1)[1] for o in out] == [b"a", b"b", b"c" * 100000]


def test_bidi_interleaves_without_buffering(gmesh):
    """Each answer arrives before the next request is sent: nothing waits for the stream's end."""
    import queue
    q: queue.Queue = queue.Queue()
    chat = gmesh.channel.stream_stream("/greeter.Greeter/Chat")

    def requests():
        for i in range(5):
            yield str(i).encode()
            assert q.get(timeout=5) == i  # the answer to i came back first

    responses = chat(requests(), timeout=20)
    for i, r in enumerate(responses):
        assert r.endswith(str(i).encode())
        q.put(i)
    assert i == 4


def test_weighted_split_50_50(gmesh):
    gmesh.client.apply(dump_rules(rule("greeter-split", "greeter", [
        {"labels": {"version": "v1"}, "weight": 50}, {"labels": {"version": "v2"}, "weight": 50}])))
    try:
        v1 = sum(gmesh.call("Hello", b"n")[0].startswith(b"v1:") for _ in range(400))
        assert abs(v1 / 400 - 0.5) <= 0.08, v1
    finally:
        gmesh.client.apply("")


def test_fault_abort_503_is_unavailable(gmesh):
    grpc = gmesh.grpc
    gmesh.client.apply(dump_rules(rule("greeter-abort", "greeter", [{"labels": {"version": "v1"}}],
                                       httpFault={"abort": {"percent": 100, "httpStatus": 503}})))
    try:
        with pytest.raises(grpc.RpcError) as err:
            gmesh.call("Hello", b"x")
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "fault filter abort" in err.value.details()
    finally:
        gmesh.client.apply("")


def test_route_timeout_is_deadline_exceeded(gmesh):
    grpc = gmesh.grpc
    gmesh.client.apply(dump_rules(rule("greeter-timeout", "greeter", [{"labels": {"version": "v1"}}],
                                       httpReqTimeout={"simpleTimeout": {"timeout": "1s"}})))
    try:
        t0 = time.monotonic()
        with pytest.raises(grpc.RpcError) as err:
            gmesh.call("Slow", b"x", timeout=10)
        elapsed = time.monotonic() - t0
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert elapsed < 1.5, elapsed
    finally:
        gmesh.client.apply("")


def test_client_deadline_enforced_by_the_mesh(gmesh):
    grpc = gmesh.grpc
    t0 = time.monotonic()
    with pytest.raises(grpc.RpcError) as err:
        gmesh.call("Slow", b"x", timeout=0.2)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - t0 < 1.0
    # Without a client-side timer: a raw HTTP/2 request with grpc-timeout 200m gets the mesh's
    # own DEADLINE_EXCEEDED (curl does not enforce grpc-timeout).
    curl = require_tool("curl")
    t0 = time.monotonic()
    out = subprocess.run([curl, "-s", "--http2-prior-knowledge", "-D", "-", "-o", "/dev/null",
                          "-H", f"Host: {GREETER}", "-H", "content-type: application/grpc",
                          "-H", "grpc-timeout: 200m", "--data-binary", "@-",
                          f"http://{gmesh.outbound}/greeter.Greeter/Slow"],
                         input=b"\x00\x00\x00\x00\x01x", capture_output=True, timeout=10)
    assert time.monotonic() - t0 < 1.5
    head = out.stdout.decode("latin-1").lower()
    assert "grpc-status: 4" in head, head


def test_status_and_trailers_reach_the_client_unchanged(gmesh):
    grpc = gmesh.grpc
    with pytest.raises(grpc.RpcError) as err:
        gmesh.call("Fail", b"x")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert err.value.details() == "no such greeting"
    assert ("x-why", "test") in tuple(err.value.trailing_metadata())
    _, call = gmesh.call("Hello", b"x")
    assert call.code() == grpc.StatusCode.OK


def test_curl_h2_prior_knowledge_to_http1_upstream(gmesh):
    curl = require_tool("curl")
    out = subprocess.run([curl, "-s", "--http2-prior-knowledge", "-w", "\n%{http_version}",
                          "-H", f"Host: web:{gmesh.web_port}",
                          f"http://{gmesh.outbound}/hello"], capture_output=True, text=True,
                         timeout=10)
    body, version = out.stdout.rsplit("\n", 1)
    assert version == "2"
    assert '"name": "web-v1"' in body and '"path": "/hello"' in body


def test_http1_client_to_http2_only_upstream(gmesh):
    r = httpx.post(f"http://{gmesh.outbound}/greeter.Greeter/Hello",
                   headers={"host": GREETER, "content-type": "application/grpc"},
                   content=b"\x00\x00\x00\x00\x02hi", timeout=10)
    assert r.status_code == 200
    assert r.content[5:] in (b"v1:hi", b"v2:hi")
    assert r.content[:5] == b"\x00\x00\x00\x00\x05"
