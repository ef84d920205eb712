"""CONNECT tunnels on a real outbound proxy (in-process, loopback): routing, weights, connect
retries onto another host, mesh replies, the per-connection record."""

from __future__ import annotations

import trio

from trimesh.config import make_instance
from trimesh.proxy import TcpServer
from trimesh.proxy import TCP_CONNECT_TRIES as CONNECT_TRIES

from .conftest import raw_exchange, rule, status_of
from .test_pipeline import with_instances

DEAD = ("127.0.140.201", 1)  # nothing listens there: connect refused


async def _echo_server(nursery, address: str, tag: bytes):
    async def echo(stream, client):
        await stream.send_all(tag)
        while True:
            data = await stream.receive_some(65536)
            if not data:
                break
            await stream.send_all(data)
        await stream.send_eof()

    return await nursery.start(TcpServer(f"echo-{tag.decode()}", echo).serve, address, 0)


async def _tunnel(mesh, target: str, payload: bytes) -> bytes:
    stream = await trio.open_tcp_stream(*mesh.outbound)
    async with stream:
        await stream.send_all(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode()
                              + payload)
        await stream.send_eof()
        out = b""
        with trio.fail_after(10):
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    return out
                out += data


async def _connect_records(mesh, n: int) -> list[dict]:
    """The log's CONNECT records once there are ``n``: a tunnel's record is written when the
    proxy's side of it ends, which can be just after the client saw its EOF."""
    with trio.fail_after(5):
        while True:
            tcp = [r for r in mesh.log if r["method"] == "CONNECT"]
            if len(tcp) >= n:
                return tcp
            await trio.sleep(0.01)


async def test_connect_routes_retries_connects_and_records_bytes(mesh, nursery):
    v1 = await _echo_server(nursery, "127.0.140.101", b"1")
    with_instances(mesh, make_instance("echo", *v1, labels={"version": "v1"}, protocol="tcp"),
                   make_instance("echo", *DEAD, labels={"version": "v1"}, protocol="tcp"))
    mesh.apply("")
    outs = [await _tunnel(mesh, "echo:9000", b"ping%d" % i) for i in range(6)]
    head = b"HTTP/1.1 200 Connection established\r\n\r\n"
    assert outs == [head + b"1" + b"ping%d" % i for i in range(6)]
    tcp = await _connect_records(mesh, 6)
    assert len(tcp) == 6 and {r["protocol"] for r in tcp} == {"tcp"}
    assert [(r["received_bytes"], r["sent_bytes"]) for r in tcp] == [(5, 6)] * 6
    assert {r["upstream"] for r in tcp} == {f"{v1[0]}:{v1[1]}"}
    assert 2 in {r["attempts"] for r in tcp}  # round robin hit the dead host: tried the other


async def test_weighted_route_between_versions(mesh, nursery):
    v1 = await _echo_server(nursery, "127.0.140.102", b"1")
    v2 = await _echo_server(nursery, "127.0.140.103", b"2")
    with_instances(mesh, make_instance("echo", *v1, labels={"version": "v1"}, protocol="tcp"),
                   make_instance("echo", *v2, labels={"version": "v2"}, protocol="tcp"))
    mesh.apply(rule("echo-split", "echo", """
route:
- labels: {version: v1}
  weight: 25
- labels: {version: v2}
  weight: 75
"""))
    tags = [(await _tunnel(mesh, "echo:9000", b""))[-1:] for _ in range(200)]
    assert 30 <= tags.count(b"1") <= 70 and tags.count(b"1") + tags.count(b"2") == 200


async def test_connect_mesh_replies(mesh, nursery):
    with_instances(mesh, make_instance("gone", *DEAD, labels={"version": "v1"}, protocol="tcp"))
    mesh.apply("")
    nr = await raw_exchange(mesh.outbound, b"CONNECT nowhere:1 HTTP/1.1\r\nHost: nowhere:1\r\n\r\n")
    uf = await raw_exchange(mesh.outbound, b"CONNECT gone:1 HTTP/1.1\r\nHost: gone:1\r\n\r\n")
    assert status_of(nr) == 404 and b"x-trimesh-response-flags: NR" in nr
    assert status_of(uf) == 503 and b"x-trimesh-response-flags: UF" in uf
    rec = [r for r in mesh.log if r["authority"] == "gone:1"][0]
    # one host: tried again (Envoy's previous_hosts falls back to any host) up to CONNECT_TRIES
    assert (rec["flags"], rec["attempts"]) == ("UF", CONNECT_TRIES)
