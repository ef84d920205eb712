"""Route timeouts that keep the client connection, timeouts over the response body, clients that
leave mid-request (DC), and websocket upgrades only where the rule allows them."""

from __future__ import annotations

import json
from functools import partial

import trio

from trimesh.config import Snapshot, load_text, make_instance
from trimesh.routing import SourceIdentity, compile_routes

from .conftest import raw_exchange, rule, status_of

TIMEOUT_1S = rule("httpbin-timeout", "httpbin", """
route:
- labels: {version: v1}
httpReqTimeout: {simpleTimeout: {timeout: 1s}}
""")


async def read_response(stream, buf: bytes = b"") -> tuple[bytes, bytes]:
    """One Content-Length-framed response from ``stream``: (response, bytes after it)."""
    while b"\r\n\r\n" not in buf:
        data = await stream.receive_some(65536)
        assert data, f"connection closed after {buf!r}"
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        data = await stream.receive_some(65536)
        assert data, "connection closed mid-body"
        rest += data
    return head + b"\r\n\r\n" + rest[:length], rest[length:]


async def test_a_504_keeps_the_client_connection_and_discards_the_upstream_one(mesh,
                                                                               autojump_clock):
    mesh.apply(TIMEOUT_1S)
    up = mesh.upstreams["httpbin-v1"]
    stream = await trio.open_tcp_stream(*mesh.outbound)
    async with stream:
        t0 = trio.current_time()
        await stream.send_all(b"GET /slow HTTP/1.1\r\nHost: httpbin:8000\r\n"
                              b"x-upstream-delay: 5\r\n\r\n")
        first, rest = await read_response(stream)
        assert status_of(first) == 504 and trio.current_time() - t0 == 1.0
        assert b"connection: close" not in first.lower()
        assert first.endswith(b"upstream request timeout\n")
        # The same client connection carries the next request.
        await stream.send_all(b"GET /next HTTP/1.1\r\nHost: httpbin:8000\r\n\r\n")
        second, _ = await read_response(stream, rest)
        assert status_of(second) == 200
    # The upstream connection of the timed-out request was closed, not pooled: the second
    # request needed a new one, and after it one idle connection is left.
    stats = mesh.pool.statistics()
    assert stats["connects"] == 2 and stats["idle"] == 1 and stats["active"] == 0
    assert [(r["status"], r["flags"]) for r in mesh.log] == [(504, "UT"), (200, "-")]
    assert up.statistics()["served"] >= 1


async def test_the_route_timeout_covers_the_response_body(mesh, nursery, autojump_clock):
    """Envoy's route timeout runs until the response is complete: a body that stalls after the
    head is cut off at the deadline (the client connection closes: the response is truncated)."""
    stalls = []

    async def stalling_upstream(stream):
        async with stream:
            data = b""
            while b"\r\n\r\n" not in data:
                data += await stream.receive_some(65536)
            await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")
            stalls.append(trio.current_time())
            await trio.sleep_forever()

    listeners = await nursery.start(partial(trio.serve_tcp, stalling_upstream, 0,
                                            host="127.0.9.90"))
    port = listeners[0].socket.getsockname()[1]
    snapshot = Snapshot(load_text(rule("stall-timeout", "stall", """
route:
- labels: {version: v1}
httpReqTimeout: {simpleTimeout: {timeout: 2s}}
""")), [make_instance("stall", "127.0.9.90", port, labels={"version": "v1"})])
    mesh.proxy.table = compile_routes(snapshot, source=SourceIdentity(service="productpage"))
    t0 = trio.current_time()
    raw = await raw_exchange(mesh.outbound, b"GET / HTTP/1.1\r\nHost: stall:9080\r\n\r\n",
                             timeout=30)
    assert status_of(raw) == 200 and raw.endswith(b"abc")  # truncated: 3 of 10 bytes
    assert trio.current_time() - t0 == 2.0
    assert stalls and mesh.log[-1]["flags"] == "UT"
    assert mesh.server.request_timeouts == 1 and mesh.pool.statistics()["active"] == 0


async def test_a_client_that_leaves_cancels_the_upstream_request(mesh, autojump_clock):
    """Envoy's DC: the client closes while the proxy waits for the upstream; the upstream
    request is cancelled (its connection closed, not pooled) and logged with flag DC."""
    stream = await trio.open_tcp_stream(*mesh.outbound)
    await stream.send_all(b"GET / HTTP/1.1\r\nHost: reviews:9080\r\nx-upstream-delay: 7\r\n\r\n")
    await trio.sleep(3)
    await stream.aclose()
    t_closed = trio.current_time()
    while not mesh.log:
        await trio.sleep(0.1)
        assert trio.current_time() - t_closed < 2, "the proxy kept waiting for the upstream"
    rec = mesh.log[-1]
    assert (rec["status"], rec["flags"]) == (0, "DC")
    assert trio.current_time() - t_closed <= 1.0
    assert mesh.server.statistics()["client_disconnects"] == 1
    stats = mesh.pool.statistics()
    assert stats["active"] == 0 and stats["idle"] == 0  # closed, not returned to the pool


async def test_pipelined_requests_are_not_mistaken_for_a_departed_client(mesh, autojump_clock):
    stream = await trio.open_tcp_stream(*mesh.outbound)
    async with stream:
        await stream.send_all(b"GET /a HTTP/1.1\r\nHost: reviews:9080\r\nx-upstream-delay: 2\r\n\r\n"
                              b"GET /b HTTP/1.1\r\nHost: reviews:9080\r\n\r\n")
        first, rest = await read_response(stream)
        second, _ = await read_response(stream, rest)
    assert status_of(first) == status_of(second) == 200
    assert mesh.server.statistics()["client_disconnects"] == 0


WS_REQUEST = (b"GET /ws HTTP/1.1\r\nHost: reviews:9080\r\nConnection: Upgrade\r\n"
              b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")


async def test_websocket_upgrade_is_stripped_unless_the_rule_allows_it(mesh):
    """Istio's ``websocketUpgrade`` defaults to false: the request goes upstream as plain HTTP
    (no Upgrade, no Connection: upgrade), and the connection closes after the response."""
    raw = await raw_exchange(mesh.outbound, WS_REQUEST, timeout=5)
    assert status_of(raw) == 200
    seen = json.loads(raw.split(b"\r\n\r\n", 1)[1])["headers"]
    assert "upgrade" not in seen and "connection" not in seen
    assert mesh.log[-1]["status"] == 200


async def test_inbound_logs_dc_when_the_caller_leaves(nursery, autojump_clock):
    import random

    from trimesh.telemetry import AccessLog
    from trimesh.proxy import HttpServer, InboundProxy, UpstreamPool
    from trimesh.testing import FakeUpstream, serve_upstream

    port = await nursery.start(serve_upstream, FakeUpstream(name="app"), "127.0.9.60", 0)
    log: list = []
    pool = UpstreamPool()
    inbound = HttpServer("inbound", InboundProxy(("127.0.9.60", port), rng=random.Random(1),
                                                 pool=pool, access_log=AccessLog(sink=log.append)))
    addr = await nursery.start(inbound.serve, "127.0.9.61", 0)
    stream = await trio.open_tcp_stream(*addr)
    await stream.send_all(b"GET / HTTP/1.1\r\nHost: app\r\nx-upstream-delay: 7\r\n\r\n")
    await trio.sleep(1)
    await stream.aclose()
    await trio.sleep(1)
    assert [(r["status"], r["flags"]) for r in log] == [(0, "DC")]
    assert pool.statistics()["active"] == 0 and pool.statistics()["idle"] == 0
    nursery.cancel_scope.cancel()


def policy(simple_cb: str, route: str = "route:\n- labels: {version: v1}") -> str:
    body = "\n".join("      " + ln for ln in simple_cb.strip().splitlines())
    return f"""apiVersion: config.istio.io/v1alpha2
kind: DestinationPolicy
metadata: {{name: httpbin-cb}}
spec:
  destination:
    name: httpbin
    labels: {{version: v1}}
  circuitBreaker:
    simpleCb:
{body}
---
""" + rule("httpbin-default-v1", "httpbin", route)


async def test_http_max_requests_per_connection_is_honoured_by_the_pool(mesh):
    mesh.apply(policy("httpMaxRequestsPerConnection: 2"))
    for _ in range(5):
        r = await mesh.get("/", host="httpbin:8000")
        assert r.status == 200
    # 5 requests, at most 2 per upstream connection: 3 connections
    assert mesh.pool.statistics()["connects"] == 3


async def test_every_attempt_reports_to_outlier_detection(mesh, autojump_clock):
    """Two failed attempts of ONE client request (retried) make two consecutive errors."""
    mesh.apply(policy("httpConsecutiveErrors: 2\nsleepWindow: 30s",
                      "route:\n- labels: {version: v1}\n"
                      "httpReqRetries: {simpleRetry: {attempts: 1}}"))
    r = await mesh.get("/", host="httpbin:8000", headers=[("x-upstream-status", "503")])
    assert (r.status, r.headers["x-trimesh-attempts"]) == (503, "2")
    (cluster,) = [c for n, c in mesh.proxy.table.clusters().items() if "httpbin" in n
                  and "v1" in n]
    stats = cluster.statistics()
    assert stats["outlier_detection.ejections_total"] == 1
    assert stats["upstream_rq_retry"] == 1
