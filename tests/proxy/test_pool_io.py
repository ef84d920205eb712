"""Upstream pool (reuse, LIFO, bounds, stale retry) and the thin socket layer."""

from __future__ import annotations

import socket

import pytest

from trimesh.errors import UpstreamConnectError
import trio

from trimesh.proxy import FastStream, UpstreamPool
from trimesh.proxy import _io
from trimesh.proxy._pool import UpstreamRequest, exchange
from trimesh.testing import FakeUpstream, serve_upstream

GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


async def _drain(conn):
    while (await conn.next_event())[0] != 2:
        pass


async def test_pool_reuses_lifo_and_bounds_idle(nursery):
    up = FakeUpstream(name="u")
    port = await nursery.start(serve_upstream, up, "127.0.9.60", 0)
    ep = ("127.0.9.60", port)
    pool = UpstreamPool(max_idle_per_endpoint=2)
    conns = [await pool.acquire(ep) for _ in range(3)]
    assert pool.statistics()["connects"] == 3 and pool.statistics()["active"] == 3
    for c in conns:
        pool.release(c)
    s = pool.statistics()
    assert (s["idle"], s["idle_closed"], s["active"]) == (2, 1, 0)
    again = await pool.acquire(ep)
    assert again is conns[2] and again.reused  # LIFO: the most recently released
    pool.release(again)
    for _ in range(5):
        conn, head = await exchange(pool, ep, UpstreamRequest(GET))
        assert head.status == 200
        await _drain(conn)
        pool.release(conn)
    s = pool.statistics()
    assert s["connects"] == 3 and s["reuses"] == 6
    assert "UpstreamPool" in repr(pool)
    pool.close()


async def test_idle_timeout_drops_old_connections(nursery, autojump_clock):
    up = FakeUpstream(name="u")
    port = await nursery.start(serve_upstream, up, "127.0.9.61", 0)
    ep = ("127.0.9.61", port)
    pool = UpstreamPool(idle_timeout=5.0)
    pool.release(await pool.acquire(ep))
    await trio.sleep(6)
    await pool.acquire(ep)
    s = pool.statistics()
    assert (s["connects"], s["reuses"], s["idle_closed"]) == (2, 0, 1)


async def test_stale_pooled_connection_is_retried_once(nursery):
    """The server closed an idle pooled connection: a replayable request goes out again on a
    fresh connection, without the caller noticing."""
    listener = _io.open_listener("127.0.9.62", 0)
    ep = listener.getsockname()[:2]
    served = []

    async def server():
        first = True
        while True:
            sock, _ = await _io.accept(listener)
            stream = FastStream(sock)
            data = await stream.receive_some()
            if first:
                first = False
                await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na")
                await trio.sleep(0.05)
                stream.close()  # closes while the client keeps it in the pool
                continue
            served.append(data)
            await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb")

    nursery.start_soon(server)
    pool = UpstreamPool()
    conn, head = await exchange(pool, ep, UpstreamRequest(GET))
    await _drain(conn)
    pool.release(conn)
    await trio.sleep(0.2)
    conn, head = await exchange(pool, ep, UpstreamRequest(GET))
    assert head.status == 200 and len(served) == 1
    assert pool.statistics()["stale_retries"] == 1
    pool.discard(conn)
    listener.close()


async def test_connect_failure_raises_the_projects_error():
    pool = UpstreamPool()
    with pytest.raises(UpstreamConnectError, match="127.0.9.63:1"):
        await pool.acquire(("127.0.9.63", 1))
    assert pool.statistics()["connect_failures"] == 1


async def test_head_response_has_no_body(nursery):
    up = FakeUpstream(name="u")
    port = await nursery.start(serve_upstream, up, "127.0.9.64", 0)
    pool = UpstreamPool()
    ep = ("127.0.9.64", port)
    head_get = UpstreamRequest(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", head_request=True)
    conn, head = await exchange(pool, ep, head_get)
    assert head.status == 200 and head.content_length and head.no_body
    assert (await conn.next_event())[0] == 2  # END right away, no body bytes awaited
    pool.release(conn)
    conn, head = await exchange(pool, ep, UpstreamRequest(GET))
    assert conn.reused and head.status == 200


@pytest.mark.parametrize("mode", ["fast", "trio"])
async def test_streams_move_bytes_and_cancel_cleanly(mode, monkeypatch):
    monkeypatch.setattr(_io, "IO_MODE", mode)
    a, b = socket.socketpair()
    sa = FastStream(a) if mode == "fast" else _io.TrioStream(a)
    sb = FastStream(b) if mode == "fast" else _io.TrioStream(b)
    payload = b"z" * (4 * 1024 * 1024)  # larger than the socket buffers: send must wait

    async def reader(out):
        while len(out) < len(payload):
            out += await sb.receive_some()

    got = bytearray()
    async with trio.open_nursery() as n:
        n.start_soon(reader, got)
        await sa.send_all(payload)
    assert bytes(got) == payload
    # a receive with nothing to read waits, and a cancel leaves the stream usable
    with trio.move_on_after(0.05) as scope:
        await sb.receive_some()
    assert scope.cancelled_caught
    await sa.send_all(b"after")
    assert await sb.receive_some() == b"after"
    sa.close()
    assert await sb.receive_some() == b""
    sb.close()


async def test_fast_stream_checkpoints_periodically():
    """A connection whose socket is always ready still lets other tasks run."""
    a, b = socket.socketpair()
    sa, sb = FastStream(a), FastStream(b)
    ticks = []

    async def other():
        for _ in range(5):
            ticks.append(1)
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as n:
        n.start_soon(other)
        for _ in range(_io.CHECKPOINT_EVERY * 6):
            await sa.send_all(b"x")
            await sb.receive_some()
        # the sockets never made us wait: only the periodic checkpoints let `other` run
        assert len(ticks) == 5
    sa.close()
    sb.close()


async def test_tls_origination(nursery):
    """Egress to an https port: the pool originates TLS and verifies the server's name."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    server_ctx = __import__("ssl").create_default_context(__import__("ssl").Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    up = FakeUpstream(name="tls-upstream")
    from trimesh.testing._upstream import _serve_connection

    async def handler(stream):
        tls = trio.SSLStream(stream, server_ctx, server_side=True)
        await _serve_connection(tls, up)

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    nursery.start_soon(trio.serve_listeners, handler, listeners)
    client_ctx = __import__("ssl").create_default_context()
    ca.configure_trust(client_ctx)
    pool = UpstreamPool(tls_context=client_ctx)
    ep = ("localhost", port, "tls")
    for _ in range(2):
        conn, head = await exchange(pool, ep, UpstreamRequest(GET))
        assert head.status == 200
        await _drain(conn)
        pool.release(conn)
    assert pool.statistics()["connects"] == 1 and up.statistics()["served"] == 2
    # an untrusted certificate is a connect failure
    with pytest.raises(UpstreamConnectError):
        await UpstreamPool().acquire(ep)
    nursery.cancel_scope.cancel()
