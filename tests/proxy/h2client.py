"""A small HTTP/2 client on h2 (the independent peer of the in-process HTTP/2 tests)."""

from __future__ import annotations

from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import trio


@dataclass
class H2Resp:
    status: int = 0
    headers: dict = field(default_factory=dict)
    body: bytes = b""
    trailers: dict = field(default_factory=dict)
    reset: int | None = None


class H2Client:
    """One connection; ``request`` runs one stream; streams may run concurrently."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding="latin-1"))
        self.resps: dict[int, H2Resp] = {}
        self.done: dict[int, trio.Event] = {}
        self.goaway = None
        self.closed = trio.Event()
        self.window = trio.Event()
        self.lock = trio.Lock()

    @classmethod
    async def open(cls, addr, nursery) -> "H2Client":
        c = cls(await trio.open_tcp_stream(*addr))
        c.conn.initiate_connection()
        await c.flush()
        nursery.start_soon(c._reader)
        return c

    async def flush(self) -> None:
        async with self.lock:
            data = self.conn.data_to_send()
            if data:
                await self.stream.send_all(data)

    async def _reader(self) -> None:
        try:
            while True:
                data = await self.stream.receive_some(65536)
                if not data:
                    break
                for ev in self.conn.receive_data(data):
                    self._on(ev)
                await self.flush()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            self.closed.set()
            for e in self.done.values():
                e.set()

    def _on(self, ev) -> None:
        sid = getattr(ev, "stream_id", None)
        r = self.resps.get(sid)
        if isinstance(ev, h2.events.ResponseReceived):
            r.status = int(dict(ev.headers)[":status"])
            r.headers = dict(ev.headers)
        elif isinstance(ev, h2.events.DataReceived):
            r.body += ev.data
            self.conn.acknowledge_received_data(ev.flow_controlled_length, sid)
        elif isinstance(ev, h2.events.TrailersReceived):
            r.trailers = dict(ev.headers)
        elif isinstance(ev, h2.events.StreamEnded):
            self.done[sid].set()
        elif isinstance(ev, h2.events.StreamReset):
            if r is not None:
                r.reset = ev.error_code
                self.done[sid].set()
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.goaway = ev.error_code
        elif isinstance(ev, (h2.events.WindowUpdated, h2.events.RemoteSettingsChanged)):
            self.window.set()
            self.window = trio.Event()

    async def start(self, method="GET", path="/", authority="reviews:9080", headers=(),
                    end=True) -> int:
        sid = self.conn.get_next_available_stream_id()
        self.resps[sid] = H2Resp()
        self.done[sid] = trio.Event()
        self.conn.send_headers(sid, [(":method", method), (":path", path), (":scheme", "http"),
                                     (":authority", authority), *headers], end_stream=end)
        await self.flush()
        return sid

    async def send_body(self, sid: int, body: bytes, end=True) -> None:
        view = memoryview(body)
        while view:
            w = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
            if w <= 0:
                await self.window.wait()
                continue
            self.conn.send_data(sid, bytes(view[:w]))
            view = view[w:]
            await self.flush()
        if end:
            self.conn.end_stream(sid)
            await self.flush()

    async def finish(self, sid: int) -> H2Resp:
        await self.done[sid].wait()
        return self.resps[sid]

    async def request(self, method="GET", path="/", authority="reviews:9080", headers=(),
                      body=b"") -> H2Resp:
        sid = await self.start(method, path, authority, headers, end=not body)
        if body:
            await self.send_body(sid, body)
        return await self.finish(sid)

    async def aclose(self) -> None:
        await self.stream.aclose()
