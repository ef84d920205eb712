"""In-process fixtures: real fake upstreams (h11) on loopback behind a real outbound proxy."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import h11
import pytest
import trio

from trimesh.config import Snapshot, load_text, make_instance
from trimesh.telemetry import AccessLog
from trimesh.proxy import HttpServer, OutboundProxy, UpstreamPool
from trimesh.routing import SourceIdentity, compile_routes
from trimesh.testing import FakeUpstream, serve_upstream


@dataclass
class Resp:
    status: int
    headers: dict
    body: bytes

    @property
    def name(self) -> str:
        return self.headers.get("x-upstream-name", f"mesh-{self.status}")


async def http_request(addr, method="GET", target="/", headers=(), body=b"",
                       host="reviews:9080") -> Resp:
    """One request on a fresh connection, parsed by h11 (an independent client)."""
    stream = await trio.open_tcp_stream(*addr)
    async with stream:
        conn = h11.Connection(h11.CLIENT)
        hdrs = [("host", host)] if host else []
        hdrs += list(headers)
        if body:
            hdrs.append(("content-length", str(len(body))))
        data = conn.send(h11.Request(method=method, target=target, headers=hdrs))
        if body:
            data += conn.send(h11.Data(data=body))
        data += conn.send(h11.EndOfMessage())
        await stream.send_all(data)
        status, rh, out = 0, {}, b""
        while True:
            ev = conn.next_event()
            if ev is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
                continue
            if isinstance(ev, h11.Response):
                status = ev.status_code
                rh = {n.decode(): v.decode() for n, v in ev.headers}
            elif isinstance(ev, h11.Data):
                out += ev.data
            elif isinstance(ev, (h11.EndOfMessage, h11.ConnectionClosed)):
                return Resp(status, rh, out)


async def raw_exchange(addr, data: bytes, *, until_close: bool = True, timeout: float = 5.0) -> bytes:
    """Send raw bytes; return everything received until the server closes (or ``timeout``)."""
    stream = await trio.open_tcp_stream(*addr)
    out = b""
    async with stream:
        await stream.send_all(data)
        with trio.move_on_after(timeout):
            while True:
                try:
                    chunk = await stream.receive_some(65536)
                except trio.BrokenResourceError:
                    break
                if not chunk:
                    break
                out += chunk
                if not until_close and b"\r\n\r\n" in out:
                    break
    return out


def status_of(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


@dataclass
class MiniMesh:
    """Upstreams reviews-v1/v2 and httpbin-v1/v2 behind one outbound proxy (no sidecar)."""

    upstreams: dict
    addrs: dict
    proxy: OutboundProxy
    server: HttpServer
    outbound: tuple
    pool: UpstreamPool
    log: list = field(default_factory=list)

    def instances(self):
        return [make_instance(n.rsplit("-", 1)[0], a[0], a[1], labels={"version": n.rsplit("-")[1]})
                for n, a in self.addrs.items()]

    def apply(self, text: str):
        snapshot = Snapshot(load_text(text) if text.strip() else [], self.instances())
        self.proxy.table = compile_routes(snapshot, source=SourceIdentity(service="productpage"),
                                          previous=self.proxy.table)

    async def get(self, target="/", **kw) -> Resp:
        return await http_request(self.outbound, "GET", target, **kw)


@pytest.fixture
async def mesh(nursery):
    upstreams, addrs = {}, {}
    for i, name in enumerate(["reviews-v1", "reviews-v2", "httpbin-v1", "httpbin-v2"]):
        svc, ver = name.rsplit("-", 1)
        up = FakeUpstream(name=name, service=svc, version=ver)
        host = f"127.0.9.{i + 1}"
        port = await nursery.start(serve_upstream, up, host, 0)
        upstreams[name] = up
        addrs[name] = (host, port)
    log: list = []
    pool = UpstreamPool()
    proxy = OutboundProxy(None, rng=random.Random(7), pool=pool,
                          access_log=AccessLog(sink=log.append), mirror_nursery=nursery)
    server = HttpServer("outbound", proxy)
    outbound = await nursery.start(server.serve, "127.0.9.100", 0)
    m = MiniMesh(upstreams, addrs, proxy, server, outbound, pool, log)
    m.apply("")
    return m


def rule(name: str, service: str, spec_yaml: str) -> str:
    lines = "\n".join("  " + ln for ln in spec_yaml.strip().splitlines())
    return (f"apiVersion: config.istio.io/v1alpha2\nkind: RouteRule\nmetadata:\n  name: {name}\n"
            f"spec:\n  destination:\n    name: {service}\n{lines}\n")
