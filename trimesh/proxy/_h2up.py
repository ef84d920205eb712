"""Upstream HTTP/2: multiplexed connections to instances whose protocol is ``http2`` or ``grpc``.

Theory of operation:

- **One connection per endpoint, more when full.** :class:`H2Pool` keeps the open connections of
  each endpoint; a request takes the first whose open streams are below the server's
  ``SETTINGS_MAX_CONCURRENT_STREAMS`` (and that has not said GOAWAY), else a new connection is
  made (cleartext HTTP/2 with prior knowledge, the 1 s connect timeout of the HTTP/1.1 pool);
  requests that find none while one is being opened wait for that one.
- **No background task.** Whoever waits for something on a connection (a response head, body
  bytes, a send window) reads the socket for everybody: one waiter at a time holds the read
  (:meth:`H2UpConnection._pump`), feeds h2, hands each event to its stream and wakes the others
  — the scheme httpcore uses for HTTP/2. A waiter flushes what it queued before it waits for
  the reader (its WINDOW_UPDATEs cannot wait for the reader's next read: the server may be
  waiting for them). A connection nobody waits on is not read; the server's PINGs wait for the
  next request.
- **An upstream stream looks like an HTTP/1.1 upstream connection** to the relay:
  :class:`H2UpStream` has ``parser.events`` (DATA, then END whose value is the trailers or
  None), ``next_event()`` raising ``UpstreamResetError``, ``close()`` (the route deadline's
  way to wake its waiter: the stream is reset) and ``requests``; the pool's ``release`` /
  ``discard`` hand it back here (``multiplexed``). Body DATA is acknowledged (WINDOW_UPDATE) once
  the relay has taken it off the stream's queue — counted, not hooked, since the relays pop
  queued events directly: every read settles each stream's taken bytes, and a finished stream
  settles all it received — so the client's pace bounds what is buffered and no byte is left
  unacknowledged to shrink the connection's window for good.
- **Translation from HTTP/1.1** (:func:`h2_request_fields`): ``host`` becomes ``:authority``;
  connection-specific fields are dropped (RFC 9113 §8.2.2) and framing is HTTP/2's; a gRPC
  request (``content-type: application/grpc*``) gets ``te: trailers``.
- **Request bodies** go out as the windows allow; a body larger than the retry buffer streams
  from the client — in a task of the client's HTTP/2 session when the client is HTTP/2, so a
  bidi-streaming call's responses flow while its requests do; inline before the response for an
  HTTP/1.1 client (HTTP/1.1 cannot interleave anyway).
- The response head is a :class:`H2ResponseHead` with ``ResponseHead``'s fields. A gRPC
  trailers-only answer (HEADERS with END_STREAM) keeps that form toward an HTTP/2 client; its
  ``grpc-status`` is :attr:`H2ResponseHead.grpc_status`, which the attempt stage reads (14,
  UNAVAILABLE, is retried like a 503: Istio's ``retry_on`` for gRPC).
"""

from __future__ import annotations

from collections import deque

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import trio

from ..errors import UpstreamConnectError, UpstreamResetError
from . import _io
from ._h2 import H2Stream
from ._http1 import DATA, END, HOP_BY_HOP

H2_PROTOCOLS = frozenset({"http2", "grpc"})
RECV_SIZE = 65536
_DROP = HOP_BY_HOP | {"host"}


def h2_request_fields(method: str, path: str, hdrs, scheme: str = "http") -> list:
    """HTTP/2 request fields from an HTTP/1.1-style head (module docstring)."""
    authority = ""
    out = []
    grpc = False
    for n, v in hdrs:
        if n == "host":
            if not authority:
                authority = v
            continue
        if n in _DROP:
            continue
        if n == "content-type" and v.startswith("application/grpc"):
            grpc = True
        out.append((n, v))
    fields = [(":method", method), (":scheme", scheme), (":authority", authority),
              (":path", path)]
    if grpc:
        fields.append(("te", "trailers"))
    fields.extend(out)
    return fields


class H2ResponseHead:
    """``ResponseHead``'s fields for an HTTP/2 response."""

    __slots__ = ("status", "reason", "version", "headers", "keep_alive", "content_length",
                 "chunked", "close_delimited", "no_body", "connection", "grpc_status")

    def __init__(self, fields, ended: bool, head_request: bool) -> None:
        self.status = 0
        self.reason = ""
        self.version = "2"
        self.keep_alive = True
        self.chunked = False
        self.close_delimited = False
        self.connection = None
        self.content_length: int | None = 0 if ended else None
        self.grpc_status: str | None = None
        headers = []
        for n, v in fields:
            if n[0] == ":":
                if n == ":status":
                    self.status = int(v)
                continue
            if n == "content-length" and v.isdigit() and not ended:
                self.content_length = int(v)
            elif n == "grpc-status":
                self.grpc_status = v
            headers.append((n, v))
        self.headers = headers
        self.no_body = ended or head_request or self.status in (204, 304)

    def __repr__(self) -> str:
        return f"<H2ResponseHead {self.status} grpc-status={self.grpc_status}>"


class _Events:
    __slots__ = ("events", "mid_message")

    def __init__(self) -> None:
        self.events: deque = deque()
        self.mid_message = False


class H2UpStream:
    """One request on an upstream HTTP/2 connection (module docstring)."""

    __slots__ = ("conn", "stream_id", "parser", "head", "trailers", "ended", "error", "requests",
                 "endpoint", "finished", "_scope", "body_scope", "received", "acked")
    multiplexed = True
    reused = False

    def __init__(self, conn: "H2UpConnection", stream_id: int) -> None:
        self.conn = conn
        self.stream_id = stream_id
        self.endpoint = conn.endpoint
        self.parser = _Events()
        self.head: H2ResponseHead | None = None
        self.trailers = None
        self.ended = False
        self.error: str | None = None
        self.requests = 1
        self.finished = False
        self._scope: trio.CancelScope | None = None
        self.body_scope: trio.CancelScope | None = None
        self.received = 0  # DATA bytes queued for the relay so far
        self.acked = 0  # of which acknowledged (WINDOW_UPDATE) since they left the queue

    async def _wait(self) -> None:
        """Wait for anything new on this stream; raises UpstreamResetError once it broke."""
        if self.error is None:
            with trio.CancelScope() as self._scope:
                await self.conn._pump()
            self._scope = None
        if self.error is not None and not self.ended:
            raise UpstreamResetError(f"{self.endpoint[0]}:{self.endpoint[1]}: {self.error}")

    async def next_event(self):
        events = self.parser.events
        while not events:
            if self.ended:
                raise UpstreamResetError("read past the end of the response")
            await self._wait()
        return events.popleft()

    def fail(self, reason: str) -> None:
        if self.error is None:
            self.error = reason
        if self._scope is not None:
            self._scope.cancel()

    def close(self) -> None:
        """The route deadline passed: reset the stream, wake its waiter."""
        self.fail("stream closed by the proxy")
        self.finish(reset=True)

    def finish(self, reset: bool = False) -> None:
        """Done with the stream: reset it unless it ended cleanly; free its slot."""
        if self.finished:
            return
        self.finished = True
        if self.body_scope is not None:
            self.body_scope.cancel()
        self.conn.forget(self, reset or not self.ended)

    def __repr__(self) -> str:
        return f"<H2UpStream {self.endpoint[0]}:{self.endpoint[1]}#{self.stream_id}>"


class H2UpConnection:
    """One client HTTP/2 connection to an upstream endpoint."""

    def __init__(self, pool: "H2Pool", endpoint, stream) -> None:
        self.pool = pool
        self.endpoint = endpoint
        self.stream = stream
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding="latin-1"))
        self.streams: dict[int, H2UpStream] = {}
        self.broken: str | None = None
        self.goaway = False
        self._reading = False
        self._progress = trio.Event()
        self._lock = trio.Lock()
        self.conn.initiate_connection()

    @property
    def usable(self) -> bool:
        return self.broken is None and not self.goaway and (
            len(self.streams) < self.conn.remote_settings.max_concurrent_streams)

    async def flush(self) -> None:
        async with self._lock:
            data = self.conn.data_to_send()
            if data:
                try:
                    await self.stream.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                    self._break(f"send failed: {exc}")

    def settle(self, s: H2UpStream, everything: bool = False) -> None:
        """Acknowledge the DATA bytes that have left ``s``'s queue (all it received when
        ``everything``: the stream is done), however the relay took them — by ``next_event`` or
        straight off ``parser.events``. Sent with the next flush."""
        queued = 0 if everything else sum(len(ev) for kind, ev in s.parser.events if kind == DATA)
        n = s.received - queued - s.acked
        if n > 0:
            s.acked += n
            self.conn.acknowledge_received_data(n, s.stream_id)

    def forget(self, s: H2UpStream, reset: bool) -> None:
        self.settle(s, everything=True)  # the connection's window must not shrink for good
        self.streams.pop(s.stream_id, None)
        if reset and self.broken is None:
            try:
                self.conn.reset_stream(s.stream_id, h2.errors.ErrorCodes.CANCEL)
            except h2.exceptions.H2Error:
                pass
        if self.broken is not None or (self.goaway and not self.streams):
            self.pool.drop(self)

    def _break(self, reason: str) -> None:
        if self.broken is None:
            self.broken = reason
            self.stream.close()
            self.pool.drop(self)
        for s in list(self.streams.values()):
            s.fail(reason)

    async def _pump(self) -> None:
        """Read once for every waiter of this connection (module docstring)."""
        if self.broken is not None:
            return
        for s in self.streams.values():  # window updates for what the relays took meanwhile
            self.settle(s)
        if self._reading:
            # What this waiter queued (the WINDOW_UPDATEs of the data it took) goes out now: the
            # reader is blocked in a read and flushes only after it, and the server may have
            # nothing to send until it gets them. The event is taken first: a read that ends
            # during the flush has set it, so the caller looks again instead of sleeping.
            progress = self._progress
            await self.flush()
            await progress.wait()
            return
        self._reading = True
        try:
            try:
                await self.flush()  # window updates and frames queued meanwhile
                data = await self.stream.receive_some(RECV_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                self._break(f"connection lost: {exc}")
                return
            if not data:
                self._break("the upstream closed the connection")
                return
            try:
                events = self.conn.receive_data(data)
            except h2.exceptions.ProtocolError as exc:
                self._break(f"HTTP/2 protocol error: {exc}")
                return
            for ev in events:
                self._dispatch(ev)
            await self.flush()
        finally:
            self._reading = False
            progress, self._progress = self._progress, trio.Event()
            progress.set()

    def _dispatch(self, ev) -> None:
        t = type(ev)
        s = self.streams.get(getattr(ev, "stream_id", 0) or 0)
        if t is h2.events.ResponseReceived:
            if s is not None:
                s.head = H2ResponseHead(ev.headers, ev.stream_ended is not None,
                                        s.parser.mid_message)
        elif t is h2.events.DataReceived:
            pad = ev.flow_controlled_length - len(ev.data)
            if s is None:
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                return
            if pad:
                self.conn.acknowledge_received_data(pad, ev.stream_id)
            s.received += len(ev.data)
            s.parser.events.append((DATA, ev.data))
        elif t is h2.events.TrailersReceived:
            if s is not None:
                s.trailers = ev.headers
        elif t is h2.events.StreamEnded:
            if s is not None:
                s.ended = True
                s.parser.events.append((END, s.trailers))
        elif t is h2.events.StreamReset:
            # (a reset after the response ended is the server's way of saying it needs no
            # more of the request, RFC 9113 §8.1: the response stands)
            if s is not None and not s.ended:
                s.fail(f"stream reset by the upstream (error {ev.error_code})")
        elif t is h2.events.ConnectionTerminated:
            self.goaway = True
            last = ev.last_stream_id or 0
            for sid, st in list(self.streams.items()):
                if sid > last:
                    st.fail("refused by GOAWAY")
            if not self.streams:
                self.pool.drop(self)

    async def request(self, fields, body: bytes, end: bool, head_request: bool) -> H2UpStream:
        sid = self.conn.get_next_available_stream_id()
        s = H2UpStream(self, sid)
        s.parser.mid_message = head_request  # (reused as the HEAD marker until the head)
        self.streams[sid] = s
        self.conn.send_headers(sid, fields, end_stream=end and not body)
        await self.flush()
        if body:
            await self.send_data(s, body, end)
        return s

    async def send_data(self, s: H2UpStream, data: bytes, end: bool) -> None:
        view = memoryview(data)
        conn = self.conn
        while view:
            if s.error is not None:
                raise UpstreamResetError(s.error)
            window = conn.local_flow_control_window(s.stream_id)
            if window <= 0:
                await s._wait()
                continue
            n = min(window, conn.max_outbound_frame_size, len(view))
            conn.send_data(s.stream_id, bytes(view[:n]), end_stream=end and n == len(view))
            view = view[n:]
            await self.flush()
        if end and not data:
            conn.end_stream(s.stream_id)
            await self.flush()

    async def end(self, s: H2UpStream) -> None:
        if s.error is None:
            self.conn.end_stream(s.stream_id)
            await self.flush()

    def __repr__(self) -> str:
        return f"<H2UpConnection {self.endpoint[0]}:{self.endpoint[1]} streams={len(self.streams)}>"


class H2Pool:
    """The HTTP/2 connections of a sidecar side, per endpoint (module docstring)."""

    def __init__(self, connect_timeout: float = 1.0) -> None:
        self.connect_timeout = connect_timeout
        self.mtls = None  # the sidecar's _tls.MeshTls, for mutual-TLS endpoints
        self._conns: dict[tuple, list[H2UpConnection]] = {}
        self._opening: dict[tuple, trio.Event] = {}  # endpoint -> set when its connect ends
        self.connects = 0
        self.streams = 0

    async def connection(self, endpoint) -> H2UpConnection:
        """A usable connection to ``endpoint``; requests that find none while one is being
        opened wait for it instead of opening their own (streams arriving together share one)."""
        while True:
            for c in self._conns.get(endpoint, ()):
                if c.usable:
                    return c
            opening = self._opening.get(endpoint)
            if opening is None:
                break
            await opening.wait()
        opened = self._opening[endpoint] = trio.Event()
        try:
            return await self._connect(endpoint)
        finally:
            del self._opening[endpoint]
            opened.set()

    async def _connect(self, endpoint) -> H2UpConnection:
        self.connects += 1
        try:
            with trio.fail_after(self.connect_timeout):
                if len(endpoint) > 2:  # (address, port, "mtls", identity): _tls.MeshTls
                    stream = await self.mtls.connect(endpoint, h2=True)
                else:
                    stream = await _io.connect(endpoint[0], endpoint[1])
        except trio.TooSlowError:
            raise UpstreamConnectError(
                f"connect to {endpoint[0]}:{endpoint[1]} timed out") from None
        except OSError as exc:
            raise UpstreamConnectError(f"connect to {endpoint[0]}:{endpoint[1]}: {exc}") from exc
        c = H2UpConnection(self, endpoint, stream)
        self._conns.setdefault(endpoint, []).append(c)
        return c

    def drop(self, c: H2UpConnection) -> None:
        conns = self._conns.get(c.endpoint)
        if conns and c in conns:
            conns.remove(c)
            if not conns:
                del self._conns[c.endpoint]
        if c.broken is None:
            c.broken = "closed"
            c.stream.close()

    def close(self) -> None:
        for conns in list(self._conns.values()):
            for c in list(conns):
                self.drop(c)

    def statistics(self) -> dict[str, object]:
        return {"h2_connections": sum(len(v) for v in self._conns.values()),
                "h2_connects": self.connects, "h2_streams": self.streams}

    def __repr__(self) -> str:
        return f"<H2Pool connections={self.statistics()['h2_connections']}>"


async def _pump_body(down, conn: H2UpConnection, s: H2UpStream) -> None:
    """The rest of the client's request body to the upstream stream."""
    while True:
        kind, ev = await down.next_event()
        if kind == DATA:
            await conn.send_data(s, ev, False)
        elif kind == END:
            await conn.end(s)
            return


async def _pump_body_task(down, conn: H2UpConnection, s: H2UpStream) -> None:
    with trio.CancelScope() as s.body_scope:
        try:
            await _pump_body(down, conn, s)
        except Exception:  # the client or the upstream went away: the relay sees it
            s.fail("request body relay failed")


async def h2_exchange(pool: H2Pool, endpoint, ex, fields, body: bytes):
    """Send the request of ``ex`` on an HTTP/2 connection to ``endpoint`` and wait for the final
    response head: ``(H2UpStream, H2ResponseHead)`` (the contract of ``_pool.exchange``)."""
    down = ex.down
    conn = await pool.connection(endpoint)
    pool.streams += 1
    try:
        s = await conn.request(fields, body, ex.complete, ex.head_request)
    except h2.exceptions.H2Error as exc:
        conn._break(str(exc))
        raise UpstreamResetError(f"{endpoint[0]}:{endpoint[1]}: {exc}") from exc
    down.upstream = s
    try:
        if down.expired:
            raise UpstreamResetError("request deadline passed")
        if not ex.complete:
            if type(down) is H2Stream and down.session._nursery is not None:
                down.session._nursery.start_soon(_pump_body_task, down, conn, s)
            else:
                await _pump_body(down, conn, s)
        while s.head is None:
            await s._wait()
        return s, s.head
    except BaseException:
        s.finish(reset=True)
        raise
