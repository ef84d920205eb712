"""End to end in one process: h11 fake upstreams on loopback behind the outbound proxy."""

from __future__ import annotations

import json

import trio

from trimesh.config import make_instance
from trimesh.proxy import RETRY_BUFFER_LIMIT

from .conftest import http_request, raw_exchange, rule, status_of

V1 = rule("reviews-default", "reviews", "route:\n- labels: {version: v1}")


def echoed(resp) -> dict:
    return json.loads(resp.body)


async def test_routes_by_rule_and_header_match(mesh):
    mesh.apply(V1 + "---\n" + rule("reviews-jason", "reviews", """
precedence: 2
match:
  request:
    headers:
      cookie: {regex: "^(.*?;)?(user=jason)(;.*)?$"}
route:
- labels: {version: v2}
"""))
    for _ in range(4):
        assert (await mesh.get("/reviews/0")).name == "reviews-v1"
    r = await mesh.get("/reviews/0", headers=[("cookie", "user=jason")])
    assert r.name == "reviews-v2"
    assert r.headers["x-trimesh-attempts"] == "1"
    rec = mesh.log[-1]
    assert (rec["status"], rec["rule"], rec["upstream"]) == (200, "reviews-jason",
                                                             "%s:%d" % mesh.addrs["reviews-v2"])


async def test_absolute_form_target_becomes_origin_form(mesh):
    mesh.apply(V1)
    r = await http_request(mesh.outbound, "GET", "http://reviews:9080/a/b?c=1", host="reviews:9080")
    body = echoed(r)
    assert (r.status, body["path"], body["host"]) == (200, "/a/b?c=1", "reviews:9080")


async def test_request_headers_added_stripped_and_appended(mesh):
    mesh.apply(rule("r", "reviews", "route:\n- labels: {version: v1}\nappendHeaders: {x-added: hello}"))
    r = await mesh.get("/", headers=[("x-envoy-max-retries", "0"), ("x-forwarded-for", "10.0.0.1"),
                                     ("connection", "x-hop"), ("x-hop", "1"),
                                     ("keep-alive", "timeout=5"), ("x-b3-traceid", "abc")])
    h = echoed(r)["headers"]
    assert "x-envoy-max-retries" not in h and "x-hop" not in h and "keep-alive" not in h
    assert h["x-forwarded-for"] == "10.0.0.1, 127.0.0.1"
    assert len(h["x-request-id"]) == 36
    assert h["x-b3-traceid"] == "abc"
    assert h["x-added"] == "hello"
    r = await mesh.get("/", headers=[("x-request-id", "given")])
    assert echoed(r)["headers"]["x-request-id"] == "given"


async def test_mesh_generated_responses_say_why(mesh):
    mesh.apply(rule("nowhere", "reviews", "route:\n- labels: {version: v9}"))
    r = await mesh.get("/", host="nosuch:9080")
    assert (r.status, r.headers["x-trimesh-response-flags"]) == (404, "NR")
    r = await mesh.get("/")
    assert (r.status, r.headers["x-trimesh-response-flags"]) == (503, "UH")
    assert mesh.log[-1]["flags"] == "UH"


async def test_connect_failure_is_503_uf_after_retries(mesh, autojump_clock):
    dead = make_instance("ratings", "127.0.9.200", 1, labels={"version": "v1"})
    mesh.instances = (lambda orig: lambda: orig() + [dead])(mesh.instances)
    mesh.apply(rule("r", "ratings", "httpReqRetries: {simpleRetry: {attempts: 2}}"))
    r = await mesh.get("/", host="ratings:9080")
    assert (r.status, r.headers["x-trimesh-response-flags"]) == (503, "UF")
    assert r.headers["x-trimesh-attempts"] == "3"
    assert mesh.pool.statistics()["connect_failures"] == 3


async def test_timeout_is_504_ut(mesh, autojump_clock):
    mesh.apply(rule("r", "reviews", """
route:
- labels: {version: v1}
httpReqTimeout: {simpleTimeout: {timeout: 1s}}
"""))
    start = trio.current_time()
    r = await mesh.get("/slow", headers=[("x-upstream-delay", "2")])
    assert (r.status, r.body) == (504, b"upstream request timeout\n")
    assert r.headers["x-trimesh-response-flags"] == "UT"
    assert trio.current_time() - start == 1.0
    # x-envoy-upstream-rq-timeout-ms overrides the rule
    r = await mesh.get("/slow", headers=[("x-upstream-delay", "2"),
                                         ("x-envoy-upstream-rq-timeout-ms", "3000")])
    assert r.status == 200


async def test_retry_until_success_reports_attempts(mesh, autojump_clock):
    mesh.apply(rule("r", "reviews", """
route:
- labels: {version: v1}
httpReqRetries: {simpleRetry: {attempts: 3}}
"""))
    r = await mesh.get("/x", headers=[("x-upstream-fail", "2"), ("x-upstream-key", "k1"),
                                      ("x-upstream-fail-with", "503")])
    assert (r.status, r.name, r.headers["x-trimesh-attempts"]) == (200, "reviews-v1", "3")
    assert mesh.log[-1]["attempts"] == 3
    # a reset (connection closed without answer) is retried too; on a fresh connection (a reused
    # one closing first could just be stale, which is retried without counting an attempt)
    mesh.pool.close()
    r = await mesh.get("/x", headers=[("x-upstream-fail", "1"), ("x-upstream-key", "k2"),
                                      ("x-upstream-fail-with", "close")])
    assert (r.status, r.headers["x-trimesh-attempts"]) == (200, "2")
    # out of attempts: the last 503 goes back to the client
    r = await mesh.get("/x", headers=[("x-upstream-fail", "9"), ("x-upstream-key", "k3")])
    assert (r.status, r.headers["x-trimesh-attempts"]) == (503, "4")


async def test_per_try_timeout_retries(mesh, autojump_clock):
    mesh.apply(rule("r", "reviews", """
route:
- labels: {version: v1}
httpReqTimeout: {simpleTimeout: {timeout: 10s}}
httpReqRetries: {simpleRetry: {attempts: 2, perTryTimeout: 1s}}
"""))
    start = trio.current_time()
    r = await mesh.get("/x", headers=[("x-upstream-fail", "1"), ("x-upstream-key", "pt"),
                                      ("x-upstream-fail-with", "delay:5")])
    assert (r.status, r.headers["x-trimesh-attempts"]) == (200, "2")
    assert 1.0 <= trio.current_time() - start < 1.5


async def test_body_beyond_retry_buffer_gets_one_try(mesh, autojump_clock):
    mesh.apply(rule("r", "reviews", """
route:
- labels: {version: v1}
httpReqRetries: {simpleRetry: {attempts: 3}}
"""))
    big = b"x" * (RETRY_BUFFER_LIMIT + 10)
    r = await http_request(mesh.outbound, "POST", "/big", body=big,
                           headers=[("x-upstream-fail", "1"), ("x-upstream-key", "big")])
    assert (r.status, r.headers["x-trimesh-attempts"]) == (503, "1")
    small = b"y" * 1000
    r = await http_request(mesh.outbound, "POST", "/small", body=small,
                           headers=[("x-upstream-fail", "1"), ("x-upstream-key", "small")])
    assert (r.status, r.headers["x-trimesh-attempts"]) == (200, "2")
    sizes = [q["body_size"] for q in mesh.upstreams["reviews-v1"].requests]
    assert sizes == [len(big), len(small), len(small)]


async def test_fault_abort_and_delay(mesh, autojump_clock):
    mesh.apply(rule("r", "reviews", """
route:
- labels: {version: v1}
httpFault:
  abort: {percent: 100, httpStatus: 418}
"""))
    r = await mesh.get("/")
    assert (r.status, r.headers["x-trimesh-response-flags"]) == (418, "FI")
    assert not mesh.upstreams["reviews-v1"].requests
    mesh.apply(rule("r", "reviews", """
route:
- labels: {version: v1}
httpFault:
  delay: {percent: 100, fixedDelay: 7s}
"""))
    start = trio.current_time()
    r = await mesh.get("/")
    assert (r.status, r.name) == (200, "reviews-v1")
    assert trio.current_time() - start == 7.0
    assert mesh.log[-1]["flags"] == "DI"


async def test_hanging_mirror_does_not_delay_primary(mesh, autojump_clock):
    mesh.upstreams["httpbin-v2"].hang = True
    mesh.apply(rule("mirror", "httpbin", """
route:
- labels: {version: v1}
  weight: 100
mirror:
  name: httpbin
  labels: {version: v2}
"""))
    start = trio.current_time()
    for _ in range(3):
        r = await mesh.get("/headers", host="httpbin:8000")
        assert (r.status, r.name) == (200, "httpbin-v1")
    assert trio.current_time() - start < 0.1
    await trio.testing.wait_all_tasks_blocked()
    mirrored = mesh.upstreams["httpbin-v2"].requests
    assert len(mirrored) == 3
    assert mirrored[0]["headers"]["host"] == "httpbin-shadow:8000"
    assert mesh.proxy.statistics()["mirror_started"] == 3


async def test_redirect_rewrite_and_cors(mesh):
    mesh.apply(rule("redir", "reviews", "redirect: {uri: /v2/reviews, authority: newreviews}")
               + "---\n" + rule("rw", "httpbin", """
route:
- labels: {version: v1}
rewrite: {uri: /anything}
corsPolicy:
  allowOrigin: [http://example.com]
  allowMethods: [GET, POST]
  maxAge: 60s
"""))
    r = await mesh.get("/reviews/1")
    assert r.status == 302 and r.headers["location"].endswith("newreviews/v2/reviews")
    r = await mesh.get("/status/200", host="httpbin:8000", headers=[("origin", "http://example.com")])
    assert echoed(r)["path"] == "/anything"
    assert r.headers["access-control-allow-origin"] == "http://example.com"
    r = await http_request(mesh.outbound, "OPTIONS", "/x", host="httpbin:8000",
                           headers=[("origin", "http://example.com"),
                                    ("access-control-request-method", "POST")])
    assert r.status == 200 and r.headers["access-control-allow-methods"] == "GET,POST"
    assert r.headers["access-control-max-age"] == "60"


async def test_pipelined_requests_answered_in_order_and_pool_reused(mesh):
    mesh.apply(V1)
    reqs = b"".join(b"GET /p%d HTTP/1.1\r\nHost: reviews:9080\r\n\r\n" % i for i in range(5))
    reqs += b"HEAD /h HTTP/1.1\r\nHost: reviews:9080\r\n\r\n"
    reqs += (b"POST /c HTTP/1.1\r\nHost: reviews:9080\r\nTransfer-Encoding: chunked\r\n"
             b"Connection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
    raw = await raw_exchange(mesh.outbound, reqs)
    paths = [json.loads(part.split(b"\r\n\r\n", 1)[1].split(b"HTTP/1.1")[0])["path"]
             for part in raw.split(b"HTTP/1.1 200 OK")[1:] if b'"path"' in part]
    assert paths == ["/p0", "/p1", "/p2", "/p3", "/p4", "/c"]
    assert raw.count(b"HTTP/1.1 200 OK") == 7
    assert raw.rstrip().endswith(b"}")
    stats = mesh.pool.statistics()
    assert stats["connects"] == 1 and stats["reuses"] == 6
    posted = mesh.upstreams["reviews-v1"].requests[-1]
    assert (posted["method"], posted["body_size"]) == ("POST", 3)


async def test_bad_requests_get_400_431(mesh):
    mesh.apply(V1)
    cases = [
        (b"POST / HTTP/1.1\r\nHost: reviews\r\nContent-Length: 3\r\n"
         b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: reviews\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400),
        (b"POST / HTTP/1.1\r\nHost: reviews\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: reviews\r\n" + b"X-A: b\r\n" * 101 + b"\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: reviews\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/2.0\r\nHost: reviews\r\n\r\n", 505),
    ]
    for data, status in cases:
        raw = await raw_exchange(mesh.outbound, data)
        assert status_of(raw) == status, (data[:60], raw[:80])
    assert mesh.server.statistics()["bad_requests"] == len(cases)
    assert not mesh.upstreams["reviews-v1"].requests


async def test_slow_head_is_cut_off(mesh, autojump_clock):
    mesh.apply(V1)
    start = trio.current_time()
    raw = await raw_exchange(mesh.outbound, b"GET / HTTP/1.1\r\nHost: rev", timeout=60)
    assert status_of(raw) == 408
    assert 10.0 <= trio.current_time() - start <= 10.5  # the watchdog's resolution
    assert mesh.server.statistics()["header_timeouts"] == 1


async def test_snapshot_swap_mid_request(mesh, autojump_clock):
    """A request in flight finishes on the table it started with; the next one sees the new."""
    mesh.apply(V1)
    results = []

    async def slow():
        results.append(await mesh.get("/slow", headers=[("x-upstream-delay", "5")]))

    async with trio.open_nursery() as n:
        n.start_soon(slow)
        await trio.sleep(1)
        mesh.apply(rule("reviews-default", "reviews", "route:\n- labels: {version: v2}"))
        assert (await mesh.get("/now")).name == "reviews-v2"
    assert results[0].name == "reviews-v1"


async def test_inbound_strips_envoy_headers(nursery):
    import random as _random

    from trimesh.telemetry import AccessLog
    from trimesh.proxy import HttpServer, InboundProxy, UpstreamPool
    from trimesh.testing import FakeUpstream, serve_upstream

    app = FakeUpstream(name="app")
    port = await nursery.start(serve_upstream, app, "127.0.9.50", 0)
    inbound = HttpServer("inbound", InboundProxy(("127.0.9.50", port), rng=_random.Random(1),
                                                 pool=UpstreamPool(), access_log=AccessLog()))
    addr = await nursery.start(inbound.serve, "127.0.9.51", 0)
    r = await http_request(addr, headers=[("x-envoy-retry-on", "5xx"), ("x-request-id", "rid")])
    h = echoed(r)["headers"]
    assert r.status == 200 and "x-envoy-retry-on" not in h and h["x-request-id"] == "rid"
    nursery.cancel_scope.cancel()


async def test_websocket_upgrade_is_relayed(mesh, nursery):
    from trio_websocket import serve_websocket, wrap_client_stream

    from trimesh.config import Snapshot
    from trimesh.routing import SourceIdentity, compile_routes

    async def echo(request):
        ws = await request.accept()
        while True:
            msg = await ws.get_message()
            await ws.send_message("echo:" + msg)

    server = await nursery.start(serve_websocket, echo, "127.0.9.80", 0, None)
    port = server.port
    from trimesh.config import load_text
    snapshot = Snapshot(load_text(rule("chat-ws", "chat", """
route:
- labels: {version: v1}
websocketUpgrade: true
""")), [make_instance("chat", "127.0.9.80", port, labels={"version": "v1"})])
    mesh.proxy.table = compile_routes(snapshot, source=SourceIdentity(service="productpage"))
    stream = await trio.open_tcp_stream(*mesh.outbound)
    ws = await wrap_client_stream(nursery, stream, "chat:9080", "/ws")
    for text in ("hello", "x" * 100_000):
        await ws.send_message(text)
        assert await ws.get_message() == "echo:" + text
    await ws.aclose()
    assert mesh.log[-1]["status"] == 101
    nursery.cancel_scope.cancel()


CB_POLICY = """apiVersion: config.istio.io/v1alpha2
kind: DestinationPolicy
metadata: {name: httpbin-cb}
spec:
  destination:
    name: httpbin
    labels: {version: v1}
  circuitBreaker:
    simpleCb:
      maxConnections: 1
      httpMaxPendingRequests: 1
      httpConsecutiveErrors: 2
      sleepWindow: 30s
---
""" + rule("httpbin-default-v1", "httpbin", "route:\n- labels: {version: v1}")


async def test_circuit_breaker_overflow_is_503_uo(mesh, autojump_clock):
    mesh.apply(CB_POLICY)
    results = []

    async def call(i):
        await trio.sleep(i * 0.01)
        results.append(await mesh.get("/", host="httpbin:8000",
                                      headers=[("x-upstream-delay", "1")]))

    start = trio.current_time()
    async with trio.open_nursery() as n:
        for i in range(3):
            n.start_soon(call, i)
    statuses = sorted((r.status, r.headers.get("x-trimesh-response-flags", "-")) for r in results)
    assert statuses == [(200, "-"), (200, "-"), (503, "UO")]
    overflow = [r for r in results if r.status == 503][0]
    assert overflow.headers["x-envoy-overloaded"] == "true"
    # the pending request waited for the only connection: the two 200s were served one by one
    assert trio.current_time() - start >= 2.0
    (cluster,) = [c for name, c in mesh.proxy.table.clusters().items() if "httpbin" in name
                  and "v1" in name]
    assert cluster.statistics()["upstream_rq_pending_overflow"] == 1
    # the proxy's statistics (the sidecar's /stats) carry the same counter under Envoy's name
    stats = mesh.proxy.statistics()["clusters"]
    assert stats[f"cluster.out.{cluster.name}.upstream_rq_pending_overflow"] == 1
    assert stats[f"cluster.out.{cluster.name}.upstream_rq_total"] >= 2


async def test_outlier_detection_ejects_failing_instance(mesh, autojump_clock):
    mesh.apply(CB_POLICY)
    for _ in range(2):
        r = await mesh.get("/", host="httpbin:8000", headers=[("x-upstream-status", "500")])
        assert r.status == 500
    r = await mesh.get("/", host="httpbin:8000")
    assert (r.status, r.headers.get("x-trimesh-response-flags")) == (503, "UH")


async def test_expect_100_continue_is_answered_by_the_proxy(mesh):
    mesh.apply(V1)
    stream = await trio.open_tcp_stream(*mesh.outbound)
    async with stream:
        await stream.send_all(b"POST /up HTTP/1.1\r\nHost: reviews:9080\r\nContent-Length: 5\r\n"
                              b"Expect: 100-continue\r\n\r\n")
        interim = await stream.receive_some(65536)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        await stream.send_all(b"hello")
        raw = b""
        while b"}" not in raw:
            raw += await stream.receive_some(65536)
    assert status_of(raw) == 200
    sent = mesh.upstreams["reviews-v1"].requests[-1]
    assert sent["body_size"] == 5 and "expect" not in sent["headers"]


async def test_http10_client_gets_close_unless_keep_alive(mesh):
    mesh.apply(V1)
    raw = await raw_exchange(mesh.outbound, b"GET /a HTTP/1.0\r\nHost: reviews:9080\r\n\r\n")
    head = raw.split(b"\r\n\r\n")[0].lower()
    assert status_of(raw) == 200 and b"connection: close" in head  # and the server closed
    raw = await raw_exchange(mesh.outbound, b"GET /a HTTP/1.0\r\nHost: reviews:9080\r\n"
                             b"Connection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\nHost: reviews:9080\r\n\r\n")
    assert raw.count(b"HTTP/1.1 200 OK") == 2
    assert b"connection: keep-alive" in raw.split(b"\r\n\r\n")[0].lower()


async def test_response_hop_by_hop_dropped_and_close_delimited_rechunked(mesh, nursery):
    from trimesh.config import Snapshot
    from trimesh.proxy import _io
    from trimesh.routing import SourceIdentity, compile_routes

    listener = _io.open_listener("127.0.9.90", 0)
    port = listener.getsockname()[1]

    async def legacy_server():
        while True:
            sock, _ = await _io.accept(listener)
            s = _io.FastStream(sock)
            await s.receive_some()
            await s.send_all(b"HTTP/1.0 200 OK\r\nConnection: close, x-private\r\nX-Private: 1\r\n"
                             b"Keep-Alive: timeout=5\r\nX-Kept: yes\r\n\r\npart1")
            await trio.sleep(0.01)
            await s.send_all(b"part2")
            s.close()

    nursery.start_soon(legacy_server)
    snapshot = Snapshot([], [make_instance("legacy", "127.0.9.90", port)])
    mesh.proxy.table = compile_routes(snapshot, source=SourceIdentity(service="productpage"))
    r = await mesh.get("/", host="legacy:9080")
    assert r.status == 200 and r.body == b"part1part2"
    assert r.headers["x-kept"] == "yes" and r.headers["transfer-encoding"] == "chunked"
    assert "x-private" not in r.headers and "keep-alive" not in r.headers
    assert mesh.pool.statistics()["idle"] == 0  # a close-delimited connection is not reused
    listener.close()
    nursery.cancel_scope.cancel()


async def test_large_bodies_stream_both_ways_intact(mesh, nursery):
    """A 4 MiB chunked response and a 1 MiB chunked upload pass through byte for byte."""
    import hashlib
    import os as _os

    from trimesh.config import Snapshot
    from trimesh.proxy import _io
    from trimesh.routing import SourceIdentity, compile_routes

    blob = _os.urandom(4 * 1024 * 1024)
    listener = _io.open_listener("127.0.9.91", 0)
    port = listener.getsockname()[1]
    uploads = []

    async def server():
        from trimesh.proxy import RequestParser
        from trimesh.proxy._http1 import DATA, END, encode_chunk
        sock, _ = await _io.accept(listener)
        s = _io.FastStream(sock)
        parser = RequestParser()
        while True:
            got = b""
            done = False
            while not done:
                while not parser.events:
                    data = await s.receive_some()
                    if not data:
                        return
                    parser.feed(data)
                kind, ev = parser.events.popleft()
                if kind == DATA:
                    got += ev
                done = kind == END
            uploads.append(hashlib.sha256(got).hexdigest())
            await s.send_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for i in range(0, len(blob), 100_000):
                await s.send_all(encode_chunk(blob[i:i + 100_000]))
            await s.send_all(b"0\r\n\r\n")

    nursery.start_soon(server)
    snapshot = Snapshot([], [make_instance("blob", "127.0.9.91", port)])
    mesh.proxy.table = compile_routes(snapshot, source=SourceIdentity(service="productpage"))
    stream = await trio.open_tcp_stream(*mesh.outbound)
    upload = _os.urandom(1024 * 1024)
    async with stream:
        async def send_upload():
            await stream.send_all(b"POST /u HTTP/1.1\r\nHost: blob\r\nTransfer-Encoding: chunked\r\n\r\n")
            for i in range(0, len(upload), 65536):
                await stream.send_all(encode(upload[i:i + 65536]))
            await stream.send_all(b"0\r\n\r\n")

        from trimesh.proxy._http1 import encode_chunk as encode
        from trimesh.proxy import ResponseParser
        from trimesh.proxy._http1 import DATA, END, HEAD
        rp = ResponseParser()
        rp.expect()
        body = bytearray()
        async with trio.open_nursery() as n:
            n.start_soon(send_upload)
            done = False
            while not done:
                data = await stream.receive_some(65536)
                assert data
                rp.feed(data)
                while rp.events:
                    kind, ev = rp.events.popleft()
                    if kind == HEAD:
                        assert ev.status == 200 and ev.chunked
                    elif kind == DATA:
                        body += ev
                    elif kind == END:
                        done = True
    assert hashlib.sha256(body).digest() == hashlib.sha256(blob).digest()
    assert uploads == [hashlib.sha256(upload).hexdigest()]
    listener.close()
    nursery.cancel_scope.cancel()


async def test_upstream_dying_mid_body_closes_client_and_frees_pool(mesh, nursery):
    from trimesh.config import Snapshot
    from trimesh.proxy import _io
    from trimesh.routing import SourceIdentity, compile_routes

    listener = _io.open_listener("127.0.9.92", 0)
    port = listener.getsockname()[1]

    async def server():
        sock, _ = await _io.accept(listener)
        s = _io.FastStream(sock)
        await s.receive_some()
        await s.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
        s.close()

    nursery.start_soon(server)
    snapshot = Snapshot([], [make_instance("flaky", "127.0.9.92", port)])
    mesh.proxy.table = compile_routes(snapshot, source=SourceIdentity(service="productpage"))
    raw = await raw_exchange(mesh.outbound, b"GET / HTTP/1.1\r\nHost: flaky\r\n\r\n")
    assert status_of(raw) == 200 and raw.endswith(b"0123456789")  # truncated, then closed
    s = mesh.pool.statistics()
    assert (s["active"], s["idle"]) == (0, 0)
    listener.close()
    nursery.cancel_scope.cancel()


async def test_mirror_copies_are_bounded(mesh, autojump_clock):
    mesh.proxy.mirror_max_in_flight = 2
    mesh.upstreams["httpbin-v2"].hang = True
    mesh.apply(rule("mirror", "httpbin", """
route:
- labels: {version: v1}
mirror:
  name: httpbin
  labels: {version: v2}
"""))
    for _ in range(4):
        assert (await mesh.get("/", host="httpbin:8000")).status == 200
    await trio.testing.wait_all_tasks_blocked()
    stats = mesh.proxy.statistics()
    assert (stats["mirror_started"], stats["mirror_dropped"], stats["mirrors_in_flight"]) == (2, 2, 2)
    await trio.sleep(20)  # the route timeout (15 s default) ends the hanging copies
    stats = mesh.proxy.statistics()
    assert (stats["mirrors_in_flight"], stats["mirror_timeout"]) == (0, 2)


async def test_deadline_timer_orders_routes_with_different_timeouts(mesh, autojump_clock):
    """The request deadline timer: a short timeout armed after a long one still fires on time;
    the 504 keeps the client connection; finished requests leave nothing armed."""
    mesh.apply(rule("slow-route", "reviews", """
route:
- labels: {version: v1}
httpReqTimeout: {simpleTimeout: {timeout: 10s}}
""") + "---\n" + rule("fast-route", "httpbin", """
route:
- labels: {version: v1}
httpReqTimeout: {simpleTimeout: {timeout: 1s}}
"""))
    done = {}
    start = trio.current_time()

    async def call(name, host, delay, after):
        await trio.sleep(after)
        raw = await raw_exchange(mesh.outbound, b"GET / HTTP/1.1\r\nHost: %s\r\n"
                                 b"x-upstream-delay: %d\r\n\r\n" % (host.encode(), delay),
                                 timeout=60, until_close=False)
        done[name] = (status_of(raw), trio.current_time() - start, raw)

    async with trio.open_nursery() as n:
        n.start_soon(call, "long", "reviews:9080", 20, 0)
        n.start_soon(call, "short", "httpbin:8000", 5, 0.5)
        n.start_soon(call, "ok", "httpbin:8000", 0, 0.7)
    assert done["short"][:2] == (504, 1.5)
    assert done["long"][:2] == (504, 10.0)
    assert done["ok"][0] == 200
    assert b"connection: close" not in done["short"][2]
    assert b"x-trimesh-response-flags: UT" in done["short"][2]
    assert mesh.server.request_timeouts == 2
    assert all(not bucket for bucket in mesh.server._buckets.values())
    assert [r["flags"] for r in mesh.log if r["status"] == 504] == ["UT", "UT"]


async def test_a_handler_bug_answers_500_and_keeps_the_listener(mesh, caplog):
    class Broken:
        def decide(self, req, rng):
            raise KeyError("routing bug")

    good = mesh.proxy.table
    mesh.proxy.table = Broken()
    r = await mesh.get("/")
    assert r.status == 500
    assert mesh.server.statistics()["internal_errors"] == 1
    assert "routing bug" in caplog.text
    mesh.proxy.table = good
    assert (await mesh.get("/")).status == 200


async def test_docs_7s_delay_for_jason_only(mesh, autojump_clock):
    """traffic-tasks.md §3.1: route-rule-ratings-test-delay delays jason's calls by 7 s (100 %);
    everyone else is answered at once. Virtual time makes the 7 s exact."""
    mesh.apply(rule("ratings-test-delay", "reviews", """
precedence: 2
match:
  request:
    headers:
      cookie:
        regex: "^(.*?;)?(user=jason)(;.*)?$"
route:
- labels: {version: v1}
httpFault:
  delay: {percent: 100, fixedDelay: 7s}
"""))
    start = trio.current_time()
    r = await mesh.get("/", headers=[("cookie", "session=x;user=jason")])
    assert (r.status, r.name) == (200, "reviews-v1")
    assert trio.current_time() - start == 7.0
    assert mesh.log[-1]["flags"] == "DI"
    start = trio.current_time()
    r = await mesh.get("/", headers=[("cookie", "session=x; user=jason")])  # a space: no match
    assert r.status == 200
    assert trio.current_time() - start == 0.0
    assert mesh.log[-1]["flags"] == "-"
