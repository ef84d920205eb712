"""HTTP/2 on the outbound listener (trimesh/proxy/_h2.py), with h2 as the client peer: the same
port as HTTP/1.1, routing, streaming with flow control, mesh replies (plain and gRPC), bad input."""

from __future__ import annotations

import json

import h2.errors
import pytest
import trio

from trimesh.proxy import PREFACE, grpc_status_for_http
from trimesh.proxy._h2 import MAX_CONCURRENT_STREAMS, parse_grpc_timeout

from .conftest import http_request, rule
from .h2client import H2Client, H2Resp


async def _client(mesh, nursery) -> H2Client:
    return await H2Client.open(mesh.outbound, nursery)


async def test_h2_and_http1_share_the_port_and_route(mesh, nursery):
    mesh.apply(rule("r", "reviews", "route:\n- labels: {version: v2}"))
    c = await _client(mesh, nursery)
    r = await c.request(path="/reviews/1")
    assert r.status == 200
    doc = json.loads(r.body)
    assert doc["name"] == "reviews-v2" and doc["path"] == "/reviews/1"
    assert doc["host"] == "reviews:9080"  # :authority became Host toward HTTP/1.1
    assert r.headers["x-trimesh-attempts"] == "1"
    assert "transfer-encoding" not in r.headers and "connection" not in r.headers
    plain = await http_request(mesh.outbound, target="/reviews/2")  # HTTP/1.1 on the same port
    assert plain.status == 200 and plain.name == "reviews-v2"
    await c.aclose()


async def test_concurrent_streams_on_one_connection(mesh, nursery):
    c = await _client(mesh, nursery)
    results = []

    async def one(i):
        results.append(await c.request(path=f"/x/{i}", headers=[("x-upstream-delay", "0.05")]))

    async with trio.open_nursery() as n:
        for i in range(20):
            n.start_soon(one, i)
    assert sorted(json.loads(r.body)["path"] for r in results) == sorted(
        f"/x/{i}" for i in range(20))
    assert mesh.server.connections == 1
    await c.aclose()


async def test_large_bodies_stream_both_ways_under_flow_control(mesh, nursery):
    body = bytes(range(256)) * 1024  # 256 KiB: four times the default window, over the retry buffer
    c = await _client(mesh, nursery)
    r = await c.request("POST", "/echo", body=body)
    assert r.status == 200
    doc = json.loads(r.body)
    assert doc["method"] == "POST"
    seen = [q for name in ("reviews-v1", "reviews-v2") for q in mesh.upstreams[name].requests
            if q["path"] == "/echo"]
    assert [q["body_size"] for q in seen] == [len(body)]
    await c.aclose()


async def test_fault_abort_toward_grpc_caller_is_trailers_only(mesh, nursery):
    mesh.apply(rule("r", "reviews", "httpFault:\n  abort: {percent: 100, httpStatus: 503}"))
    c = await _client(mesh, nursery)
    r = await c.request("POST", "/greeter.Greeter/Hello",
                        headers=[("content-type", "application/grpc"), ("te", "trailers")],
                        body=b"\x00\x00\x00\x00\x00")
    assert r.status == 200
    assert r.headers["grpc-status"] == "14"  # UNAVAILABLE
    assert r.headers["content-type"] == "application/grpc"
    assert "fault" in r.headers["grpc-message"]
    assert r.body == b""
    plain = await c.request(path="/x")  # not gRPC: the HTTP status itself
    assert plain.status == 503 and plain.headers["x-trimesh-response-flags"] == "FI"
    assert plain.body == b"fault filter abort\n"
    await c.aclose()


async def test_route_timeout_on_h2_stream_is_504(mesh, nursery, autojump_clock):
    mesh.apply(rule("r", "reviews", "httpReqTimeout:\n  simpleTimeout: {timeout: 1s}"))
    c = await _client(mesh, nursery)
    r = await c.request(path="/slow", headers=[("x-upstream-delay", "3")])
    assert r.status == 504 and r.headers["x-trimesh-response-flags"] == "UT"
    await c.aclose()


async def test_grpc_timeout_bounds_the_deadline(mesh, nursery, autojump_clock):
    c = await _client(mesh, nursery)
    t0 = trio.current_time()
    r = await c.request("POST", "/greeter.Greeter/Hello", body=b"\x00\x00\x00\x00\x00",
                        headers=[("content-type", "application/grpc"),
                                 ("grpc-timeout", "200m"), ("x-upstream-delay", "3")])
    assert r.headers["grpc-status"] == "4"  # DEADLINE_EXCEEDED
    assert trio.current_time() - t0 < 1.0
    await c.aclose()


async def test_client_reset_cancels_the_request(mesh, nursery, autojump_clock):
    c = await _client(mesh, nursery)
    sid = await c.start(path="/hang", headers=[("x-upstream-delay", "5")])
    await trio.sleep(0.5)
    c.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
    await c.flush()
    await trio.sleep(0.5)
    assert mesh.server.client_disconnects == 1
    r = await c.request(path="/after")  # the connection still serves
    assert r.status == 200
    await c.aclose()


async def test_invalid_preface_gets_goaway_protocol_error(mesh):
    stream = await trio.open_tcp_stream(*mesh.outbound)
    await stream.send_all(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + b"\x00" * 9)
    out = b""
    with trio.move_on_after(5):
        while True:
            chunk = await stream.receive_some(65536)
            if not chunk:
                break
            out += chunk
    await stream.aclose()
    # a GOAWAY frame (type 7) whose error code is PROTOCOL_ERROR (1)
    i = 0
    codes = []
    while i + 9 <= len(out):
        length = int.from_bytes(out[i:i + 3], "big")
        if out[i + 3] == 7:
            codes.append(int.from_bytes(out[i + 13:i + 17], "big"))
        i += 9 + length
    assert codes == [h2.errors.ErrorCodes.PROTOCOL_ERROR]
    plain = await http_request(mesh.outbound, target="/y")  # the listener is fine
    assert plain.status == 200


async def test_bad_frame_closes_only_that_connection(mesh, nursery):
    good = await _client(mesh, nursery)
    bad = await _client(mesh, nursery)
    await bad.stream.send_all(b"\x00\x00\x04\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00")  # WINDOW_UPDATE 0
    with trio.fail_after(5):
        await bad.closed.wait()
    assert bad.goaway == h2.errors.ErrorCodes.PROTOCOL_ERROR
    assert (await good.request(path="/z")).status == 200
    await good.aclose()


async def test_oversized_header_block_gets_431(mesh, nursery):
    c = await _client(mesh, nursery)
    big = [(f"x-big-{i}", "v" * 4000) for i in range(20)]  # 80 KB > 60 KiB
    r = await c.request(path="/big", headers=big)
    assert r.status == 431, (r, c.goaway, mesh.server.statistics())
    assert (await c.request(path="/small")).status == 200  # the connection goes on
    await c.aclose()


async def test_rapid_reset_flood_is_bounded_and_others_unaffected(mesh, nursery):
    other = await _client(mesh, nursery)
    flood = await _client(mesh, nursery)
    sent = 0
    for _ in range(1000):
        if flood.closed.is_set():
            break
        sid = flood.conn.get_next_available_stream_id()
        flood.conn.send_headers(sid, [(":method", "GET"), (":path", "/f"), (":scheme", "http"),
                                      (":authority", "reviews:9080"),
                                      ("x-upstream-delay", "1")], end_stream=True)
        flood.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
        sent += 1
        try:
            await flood.flush()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            break
        if sent % 50 == 0:
            await trio.sleep(0.01)
    with trio.fail_after(5):
        await flood.closed.wait()
    # GOAWAY(ENHANCE_YOUR_CALM) is sent; the client may see the reset of the closed socket first
    assert flood.goaway in (h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, None)
    assert mesh.server.bad_requests == 1 and sent < 1000
    assert sum(s.statistics()["streams"] for s in mesh.server.h2_sessions) <= MAX_CONCURRENT_STREAMS
    with trio.fail_after(5):
        assert (await other.request(path="/ok")).status == 200
    await other.aclose()


@pytest.mark.parametrize("value,seconds", [("200m", 0.2), ("1S", 1.0), ("2M", 120.0),
                                           ("5u", 5e-6), ("", None), ("12x", None),
                                           ("123456789S", None)])
def test_parse_grpc_timeout(value, seconds):
    got = parse_grpc_timeout(value)
    assert got == pytest.approx(seconds) if seconds is not None else got is None


@pytest.mark.parametrize("status,code", [(200, 0), (400, 13), (401, 16), (403, 7), (404, 12),
                                         (429, 14), (502, 14), (503, 14), (504, 4), (500, 2)])
def test_grpc_status_mapping(status, code):
    assert grpc_status_for_http(status) == code


def test_preface_constant():
    assert PREFACE == b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


async def test_drain_sends_goaway_and_lets_streams_finish(mesh, nursery):
    c = await _client(mesh, nursery)
    sid = await c.start(path="/slow", headers=[("x-upstream-delay", "0.3")])
    await trio.sleep(0.1)
    mesh.server.drain()
    r = await c.finish(sid)
    assert r.status == 200  # the stream in flight finished
    with trio.fail_after(5):
        await c.closed.wait()
    assert c.goaway == h2.errors.ErrorCodes.NO_ERROR
    with trio.fail_after(5):
        await mesh.server.wait_drained()


async def test_unread_request_bodies_give_the_client_its_window_back(mesh, nursery):
    """A stream answered without reading its body (here a fault abort) acknowledges the DATA it
    had queued when it ends: five 30 KB bodies on one connection are more than its 64 KiB
    window, so bytes never acknowledged would leave the client unable to send."""
    mesh.apply(rule("r", "reviews", "httpFault:\n  abort: {percent: 100, httpStatus: 503}"))
    c = await _client(mesh, nursery)
    with trio.fail_after(10):
        for i in range(5):
            while c.conn.outbound_flow_control_window < 30000:  # a client waits for window
                await c.window.wait()
            # the whole request in one write (the proxy may answer before a later DATA frame)
            sid = c.conn.get_next_available_stream_id()
            c.resps[sid], c.done[sid] = H2Resp(), trio.Event()
            c.conn.send_headers(sid, [(":method", "POST"), (":path", f"/upload/{i}"),
                                      (":scheme", "http"), (":authority", "reviews:9080")])
            c.conn.send_data(sid, b"u" * 15000)
            c.conn.send_data(sid, b"u" * 15000, end_stream=True)
            await c.flush()
            r = await c.finish(sid)
            assert r.status == 503 and r.headers["x-trimesh-response-flags"] == "FI", i
    await c.aclose()


async def test_a_preface_split_across_reads_is_still_http2(mesh, nursery):
    """The listener decides HTTP/2 by the first four bytes (``PRI ``), so a first read shorter
    than that waits for more instead of handing ``PR`` to the HTTP/1.1 parser (a 400)."""
    import trio.testing

    c = H2Client(await trio.open_tcp_stream(*mesh.outbound))
    c.conn.initiate_connection()
    data = c.conn.data_to_send()
    await c.stream.send_all(data[:2])
    await trio.testing.wait_all_tasks_blocked()  # the listener has read b"PR" and waits
    await c.stream.send_all(data[2:])
    nursery.start_soon(c._reader)
    r = await c.request(path="/reviews/1")
    assert r.status == 200 and json.loads(r.body)["path"] == "/reviews/1"
    await c.aclose()


async def test_route_rule_matching_rewrite_and_retries_work_on_streams(mesh, nursery):
    """Issue 11: RouteRule features on HTTP/2 streams — a header match, a ``uri`` prefix match
    and ``:authority`` routing, a rewrite of path and authority, and retries of a 503."""
    mesh.apply(rule("jason", "reviews", """
precedence: 3
match:
  request:
    headers:
      cookie: {regex: "^(.*?;)?(user=jason)(;.*)?$"}
route:
- labels: {version: v2}
""") + "---\n" + rule("prefix", "reviews", """
precedence: 2
match:
  request:
    headers:
      uri: {prefix: /old/}
rewrite: {uri: /new/, authority: reviews-renamed}
route:
- labels: {version: v2}
""") + "---\n" + rule("default", "reviews", """
precedence: 1
route:
- labels: {version: v1}
httpReqRetries:
  simpleRetry: {attempts: 2, perTryTimeout: 1s}
"""))
    c = await _client(mesh, nursery)
    jason = await c.request(path="/reviews/0", headers=[("cookie", "user=jason")])
    assert json.loads(jason.body)["name"] == "reviews-v2"
    moved = json.loads((await c.request(path="/old/page")).body)
    assert moved["name"] == "reviews-v2"
    assert moved["path"] == "/new/page" and moved["host"] == "reviews-renamed"
    other = await c.request(path="/reviews/0", headers=[("cookie", "user=sam")])
    assert json.loads(other.body)["name"] == "reviews-v1"
    # the default route retries: the first try's 503 is not what the client sees
    retried = await c.request(path="/flaky", headers=[("x-upstream-fail", "1"),
                                                      ("x-upstream-key", "h2-retry"),
                                                      ("x-upstream-fail-with", "503")])
    assert retried.status == 200 and retried.headers["x-trimesh-attempts"] == "2"
    await c.aclose()
