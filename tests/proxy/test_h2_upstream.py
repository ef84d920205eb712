"""Upstream HTTP/2 (trimesh/proxy/_h2up.py) in-process: an h2-based HTTP/2-only test server as the
instance of a ``grpc`` service behind the outbound; h2 (tests/proxy/h2client.py) or h11 clients."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import pytest
import trio
import trio.testing

from trimesh.config import Snapshot, load_text, make_instance
from trimesh.proxy._h2up import H2Pool
from trimesh.proxy._http1 import DATA, END
from trimesh.routing import SourceIdentity, compile_routes

from .conftest import http_request, rule
from .h2client import H2Client

ADDR = "127.0.9.50"


class H2Server:
    """HTTP/2 only. Answers gRPC-style: the request body echoed, trailers grpc-status 0; path
    ``/unavailable`` fails its first request per connection-set with a trailers-only status 14."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict, bytes]] = []
        self.connections = 0
        self.fail_left = 1

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED):
        listeners = await trio.open_tcp_listeners(0, host=ADDR)
        task_status.started(listeners[0].socket.getsockname()[1])
        await trio.serve_listeners(self._conn, listeners)

    async def _conn(self, stream) -> None:
        self.connections += 1
        conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=False, header_encoding="latin-1"))
        conn.initiate_connection()
        await stream.send_all(conn.data_to_send())
        heads, bodies = {}, {}
        self.pending = {}
        while True:
            try:
                data = await stream.receive_some(65536)
            except trio.BrokenResourceError:
                return
            if not data:
                return
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.RequestReceived):
                    heads[ev.stream_id] = dict(ev.headers)
                    bodies[ev.stream_id] = b""
                elif isinstance(ev, h2.events.DataReceived):
                    bodies[ev.stream_id] += ev.data
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded):
                    sid = ev.stream_id
                    self.requests.append((heads[sid], bodies[sid]))
                    self._answer(conn, sid, heads[sid], bodies[sid])
            self._drain(conn)
            await stream.send_all(conn.data_to_send())

    def _drain(self, conn) -> None:
        """Send pending response bodies as the client's windows allow, then the trailers."""
        for sid, (out, head) in list(self.pending.items()):
            while out:
                n = min(len(out), conn.max_outbound_frame_size,
                        conn.local_flow_control_window(sid))
                if n <= 0:
                    break
                conn.send_data(sid, out[:n])
                out = out[n:]
            self.pending[sid] = (out, head)
            if not out:
                del self.pending[sid]
                conn.send_headers(sid, [("grpc-status", "0"), ("grpc-message", "ok"),
                                        ("x-seen-te", head.get("te", ""))], end_stream=True)

    def _answer(self, conn, sid, head, body) -> None:
        if head[":path"] == "/hold":
            return  # never answered: a stream that stays open (a quiet server-streaming call)
        if head[":path"] == "/unavailable" and self.fail_left > 0:
            self.fail_left -= 1
            conn.send_headers(sid, [(":status", "200"), ("content-type", "application/grpc"),
                                    ("grpc-status", "14"), ("grpc-message", "try again")],
                              end_stream=True)
            return
        conn.send_headers(sid, [(":status", "200"), ("content-type", "application/grpc")])
        self.pending[sid] = (body or b"empty", head)


@pytest.fixture
async def grpc_mesh(mesh, nursery):
    server = H2Server()
    port = await nursery.start(server.serve)
    extra = [make_instance("grpcsvc", ADDR, port, labels={"version": "v1"}, protocol="grpc")]

    def apply(text: str = ""):
        snap = Snapshot(load_text(text) if text.strip() else [], mesh.instances() + extra)
        mesh.proxy.table = compile_routes(snap, source=SourceIdentity(service="productpage"),
                                          previous=mesh.proxy.table)

    apply()
    return mesh, server, f"grpcsvc:{port}", apply


GRPC = [("content-type", "application/grpc"), ("te", "trailers")]


async def test_h2_to_h2_relays_body_and_trailers(grpc_mesh, nursery):
    mesh, server, authority, _ = grpc_mesh
    c = await H2Client.open(mesh.outbound, nursery)
    r = await c.request("POST", "/svc/Echo", authority, GRPC, body=b"\x00\x00\x00\x00\x03abc")
    assert r.status == 200
    assert r.body == b"\x00\x00\x00\x00\x03abc"
    assert r.trailers == {"grpc-status": "0", "grpc-message": "ok", "x-seen-te": "trailers"}
    head, _ = server.requests[-1]
    assert head[":authority"] == authority and head[":path"] == "/svc/Echo"
    await c.aclose()


async def test_large_request_streams_to_h2_upstream(grpc_mesh, nursery):
    mesh, server, authority, _ = grpc_mesh
    body = bytes(range(256)) * 800  # 200 KiB: past the retry buffer and the windows
    c = await H2Client.open(mesh.outbound, nursery)
    r = await c.request("POST", "/svc/Big", authority, [("content-type", "application/octet-stream")],
                        body=body)
    assert r.status == 200 and r.body == body
    assert server.requests[-1][1] == body
    await c.aclose()


async def test_streams_share_one_upstream_connection(grpc_mesh, nursery):
    mesh, server, authority, _ = grpc_mesh
    c = await H2Client.open(mesh.outbound, nursery)
    got = []

    async def one(i):
        got.append(await c.request("POST", f"/svc/{i}", authority, GRPC, body=b"x%d" % i))

    async with trio.open_nursery() as n:
        for i in range(10):
            n.start_soon(one, i)
    assert sorted(r.body for r in got) == sorted(b"x%d" % i for i in range(10))
    assert server.connections == 1
    await c.aclose()


async def test_grpc_unavailable_is_retried(grpc_mesh, nursery):
    mesh, server, authority, apply = grpc_mesh
    apply(rule("retry", "grpcsvc", "httpReqRetries:\n  simpleRetry: {attempts: 2, perTryTimeout: 5s}"))
    c = await H2Client.open(mesh.outbound, nursery)
    r = await c.request("POST", "/unavailable", authority, GRPC, body=b"\x00\x00\x00\x00\x00")
    assert r.trailers.get("grpc-status") == "0", (r, server.requests, mesh.log[-2:])
    assert r.headers["x-trimesh-attempts"] == "2"
    assert len(server.requests) == 2
    await c.aclose()


async def test_trailers_only_status_reaches_the_client_as_is(grpc_mesh, nursery):
    mesh, server, authority, _ = grpc_mesh
    c = await H2Client.open(mesh.outbound, nursery)
    r = await c.request("POST", "/unavailable", authority, GRPC, body=b"\x00\x00\x00\x00\x00")
    assert r.status == 200 and r.headers["grpc-status"] == "14"  # no retry rule: relayed
    assert r.headers["grpc-message"] == "try again" and r.body == b""
    await c.aclose()


async def test_http1_client_to_h2_only_upstream(grpc_mesh):
    mesh, server, authority, _ = grpc_mesh
    r = await http_request(mesh.outbound, "POST", "/svc/Plain", host=authority,
                           headers=[("content-type", "application/grpc")], body=b"hello")
    assert r.status == 200 and r.body == b"hello"
    assert "content-length" in r.headers or "transfer-encoding" in r.headers
    head, body = server.requests[-1]
    assert head["te"] == "trailers" and body == b"hello"


def _fields(path: str) -> list[tuple[str, str]]:
    return [(":method", "POST"), (":scheme", "http"), (":authority", "grpcsvc"),
            (":path", path), *GRPC]


async def test_window_updates_go_out_while_another_stream_holds_the_read(nursery):
    """A stream's acknowledgements (WINDOW_UPDATE) reach the server even while another stream's
    waiter is the one reading the connection; if they wait for that reader's next read, the reader
    waits for data the server cannot send (the windows are spent) and both streams hang — what
    the gRPC e2e tests and ``bench/h2_bench.py --rounds 2`` ran into."""
    server = H2Server()
    port = await nursery.start(server.serve)
    pool = H2Pool()
    conn = await pool.connection((ADDR, port))
    held = await conn.request(_fields("/hold"), b"", True, False)

    async def wait_for_the_held_head():
        while held.head is None:
            await held._wait()  # this task becomes the connection's reader

    async with trio.open_nursery() as inner:
        inner.start_soon(wait_for_the_held_head)
        await trio.testing.wait_all_tasks_blocked()
        body = bytes(range(256)) * 1024  # 256 KiB: four times the initial windows
        big = await conn.request(_fields("/echo"), body, True, False)
        got = b""
        with trio.fail_after(10):
            # Let the reader take in all the server may send (the initial 64 KiB window)
            # before this stream looks at it: its acknowledgements then come while the other
            # task reads.
            while sum(len(d) for k, d in big.parser.events if k == DATA) < 65535:
                await trio.sleep(0.01)
            while True:
                kind, data = await big.next_event()
                if kind == DATA:
                    got += data
                elif kind == END:
                    break
        assert got == body
        assert held.head is None  # /hold is still open, unanswered
        inner.cancel_scope.cancel()
    pool.close()


@pytest.mark.parametrize("client", ["h2", "http/1.1"])
async def test_many_responses_on_one_upstream_connection_keep_its_window_open(
        grpc_mesh, nursery, client):
    """Every response byte taken off an upstream stream is acknowledged, however the relay takes
    it (the relays pop queued DATA directly): 200 responses of 1 KiB on one HTTP/2 connection are
    three times its 64 KiB window, so a byte never acknowledged would stop the connection."""
    mesh, server, authority, _ = grpc_mesh
    body = b"k" * 1024
    c = await H2Client.open(mesh.outbound, nursery) if client == "h2" else None
    with trio.fail_after(20):
        for i in range(200):
            if c is not None:
                r = await c.request("POST", f"/svc/{i}", authority, GRPC, body=body)
            else:
                r = await http_request(mesh.outbound, "POST", f"/svc/{i}", GRPC, body=body,
                                       host=authority)
            assert (r.status, r.body) == (200, body), i
    assert server.connections == 1
    if c is not None:
        await c.aclose()


async def test_a_mirror_copy_to_an_h2_instance_goes_as_http2(grpc_mesh, nursery):
    """Issue 11: the mirror of a request whose shadow instances speak HTTP/2 (grpc) is sent to
    them in HTTP/2 (an HTTP/1.1 copy would be refused by an HTTP/2-only server)."""
    mesh, server, authority, apply = grpc_mesh
    shadow = H2Server()
    port = await nursery.start(shadow.serve)
    mesh_instances = mesh.instances
    mesh.instances = lambda: [*mesh_instances(), make_instance(
        "grpcsvc", ADDR, port, labels={"version": "v2"}, protocol="grpc")]
    apply(rule("mirror", "grpcsvc", """
route:
- labels: {version: v1}
  weight: 100
mirror:
  name: grpcsvc
  labels: {version: v2}
"""))
    c = await H2Client.open(mesh.outbound, nursery)
    r = await c.request("POST", "/svc/Echo", authority, GRPC, body=b"\x00\x00\x00\x00\x03abc")
    assert r.status == 200 and r.body == b"\x00\x00\x00\x00\x03abc"
    with trio.fail_after(5):
        while not shadow.requests:
            await trio.sleep(0.01)
    head, body = shadow.requests[-1]
    assert head[":path"] == "/svc/Echo" and head[":authority"].startswith("grpcsvc-shadow")
    assert body == b"\x00\x00\x00\x00\x03abc"
    with trio.fail_after(5):
        while mesh.proxy.statistics().get("mirror_ok", 0) < 1:
            await trio.sleep(0.01)
    await c.aclose()
