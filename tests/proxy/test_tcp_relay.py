"""The TCP relay (trimesh/proxy/_tcp.py): half-close, byte counts, idle timeout, in-process."""

import socket

import trio
import trio.testing

from trimesh.proxy import FastStream, RelayStats, TcpServer, relay

ADDR = "127.0.140.250"  # this helper's loopback block (tests use 127.0.140.x)


def _pairs():
    client, proxy_a = trio.testing.memory_stream_pair()
    proxy_b, server = trio.testing.memory_stream_pair()
    return client, proxy_a, proxy_b, server


async def _read_all(stream) -> bytes:
    out = b""
    for _ in range(10_000):  # bounded
        data = await stream.receive_some(65536)
        if not data:
            return out
        out += data
    raise AssertionError("no EOF")


async def test_half_close_keeps_the_other_direction(autojump_clock):
    client, a, b, server = _pairs()
    stats = RelayStats()
    got = {}
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: relay(a, b, stats=stats, idle_timeout=60))
        await client.send_all(b"hello")
        await client.send_eof()  # the client is done sending
        got["server"] = await _read_all(server)  # sees the bytes, then EOF
        await trio.sleep(5)  # the reverse direction is still open
        await server.send_all(b"world" * 3)
        await server.send_eof()
        got["client"] = await _read_all(client)
    assert got == {"server": b"hello", "client": b"world" * 3}
    assert (stats.received, stats.sent, stats.idle_timed_out, stats.reset) == (5, 15, False, False)


async def test_first_bytes_are_sent_and_counted(autojump_clock):
    client, a, b, server = _pairs()
    async with trio.open_nursery() as nursery:
        result = []

        async def run():
            result.append(await relay(a, b, first=b"early", idle_timeout=60))

        nursery.start_soon(run)
        await client.send_eof()
        assert await _read_all(server) == b"early"
        await server.send_eof()
        assert await _read_all(client) == b""
    assert (result[0].received, result[0].sent) == (5, 0)


async def test_idle_timeout_in_virtual_time(autojump_clock):
    client, a, b, server = _pairs()
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        async def chatter():
            await trio.sleep(30)
            await client.send_all(b"x")  # activity at t=30 pushes the deadline to t=130

        nursery.start_soon(chatter)
        stats = await relay(a, b, idle_timeout=100)
    assert stats.idle_timed_out and stats.received == 1
    assert trio.current_time() - start == 130


async def test_reset_on_one_side_ends_both(autojump_clock):
    client, a, b, server = _pairs()
    async with trio.open_nursery() as nursery:
        async def breaker():
            await trio.sleep(1)
            await b.aclose()  # the upstream side goes away: sends fail
            await client.send_all(b"data")

        nursery.start_soon(breaker)
        stats = await relay(a, b, idle_timeout=60)
    assert stats.reset and not stats.idle_timed_out


def _sock_pair():
    lst = socket.socket()
    lst.bind((ADDR, 0))
    lst.listen(1)
    c = socket.create_connection(lst.getsockname())
    s, _ = lst.accept()
    lst.close()
    return c, s


async def test_loopback_sockets_megabytes_and_half_close():
    """Real sockets through FastStream: 2 MB up, 3 MB down, the client's write side shut first."""
    c1, s1 = _sock_pair()  # client <-> relay side a
    c2, s2 = _sock_pair()  # relay side b <-> server
    client, a, b, server = FastStream(c1), FastStream(s1), FastStream(c2), FastStream(s2)
    up = bytes(range(256)) * (2 * 4096)
    down = bytes(reversed(range(256))) * (3 * 4096)
    got = {}
    try:
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                stats_box = []

                async def run():
                    stats_box.append(await relay(a, b))

                async def serve():
                    got["server"] = await _read_all(server)
                    await server.send_all(down)
                    await server.send_eof()

                async def use():
                    await client.send_all(up)
                    await client.send_eof()
                    got["client"] = await _read_all(client)

                nursery.start_soon(run)
                nursery.start_soon(serve)
                nursery.start_soon(use)
    finally:
        for s in (client, a, b, server):
            s.close()
    assert got["server"] == up and got["client"] == down
    assert (stats_box[0].received, stats_box[0].sent) == (len(up), len(down))


async def test_tcp_server_drains():
    seen = []

    async def handler(stream, client):
        seen.append(client)
        await stream.send_all(await stream.receive_some(100))

    server = TcpServer("t", handler)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            host, port = await nursery.start(server.serve, ADDR, 0)
            s = await trio.open_tcp_stream(host, port)
            await s.send_all(b"ping")
            assert await s.receive_some(100) == b"ping"
            await s.aclose()
            server.drain()
            await server.wait_drained()
    assert len(seen) == 1 and server.statistics()["accepted"] == 1 and server.connections == 0
