"""HTTP/2 on the listeners: a client connection preface switches the connection to ``h2``.

Theory of operation:

- **Detection.** The listener (``_server.py``) looks at a connection's first bytes: when they
  start with ``PRI `` (the start of the client connection preface ``PRI * HTTP/2.0\\r\\n\\r\\nSM
  \\r\\n\\r\\n``, RFC 9113 §3.4 — HTTP/2 with prior knowledge, what ``curl --http2-prior-knowledge``
  and grpcio's insecure channels send), :func:`serve_h2` takes the connection over. The bytes go
  to a sans-IO ``h2.connection.H2Connection`` (server side) run in the connection's task; a bad
  preface or frame is a ``ProtocolError``: GOAWAY with its error code (PROTOCOL_ERROR …) and only
  that connection closes.
- **A task per stream.** Each request stream becomes an :class:`H2Stream` — shaped like the
  HTTP/1.1 ``Downstream`` the pipeline stages use (``parser.events`` of DATA/END, ``next_event``,
  ``client``, ``server`` with ``arm``/``disarm``, ``expired``, ``client_gone``, ``scope``…) — and
  its head an :class:`H2Head` shaped like ``RequestHead`` (``:authority`` becomes ``host``,
  ``:path`` the target). The same pipeline handler runs it in a task of its own: streams of one
  connection are concurrent by definition, so PERF.md's "no task per request" rule (for
  HTTP/1.1 keep-alive, where requests are sequential) does not apply here.
- **Flow control, both ways, no buffering.** Request DATA is queued on its stream and
  acknowledged (WINDOW_UPDATE) only when the pipeline takes it (:meth:`H2Stream.next_event`; what
  a finished stream left unread is acknowledged when it ends), so a
  slow upstream holds the client back by the window (65 535 bytes by default), not by memory.
  Response DATA goes out as the stream's and the connection's send windows allow; a sender waits
  for the peer's WINDOW_UPDATE (:meth:`H2Stream.send_data`).
- **Responses.** :meth:`H2Stream.relay` is the HTTP/2 twin of ``_body.relay_response``:
  the upstream's head (hop-by-hop fields dropped, ``:status`` added), the body as DATA frames,
  and the upstream's trailers (``grpc-status``…) when the upstream is HTTP/2.
  :meth:`H2Stream.send_reply` sends a mesh reply (``_replies.py``); toward a gRPC caller it is a
  trailers-only gRPC status (``_replies.grpc_reply_headers``).
- **gRPC deadlines.** A ``grpc-timeout`` request field (gRPC over HTTP/2: ``1*8DIGIT unit``,
  units ``H M S m u n``) becomes :attr:`H2Stream.grpc_timeout`; the pipeline bounds the route
  deadline by it.
- **Limits** (the CVE-2023-44487 "rapid reset" defence and friends):
  :data:`MAX_CONCURRENT_STREAMS` (100, Envoy's and nginx's default order) is advertised and h2
  enforces it; a header list over :data:`MAX_HEADER_LIST_BYTES` gets 431 on its stream;
  streams the client resets before their response completed are counted, and once there are at
  least :data:`PREMATURE_RESET_MIN` of them and they are more than half of the connection's
  streams the connection is closed with GOAWAY(ENHANCE_YOUR_CALM) — Envoy's premature-reset rule
  (``premature_reset_total_stream_count``, 500, halved here). A reset stream's task is cancelled
  at once, so a flood holds at most the streams in flight, never a growing backlog.
- **Draining**: the listener's drain refuses new streams (REFUSED_STREAM) while the streams in
  flight finish, then sends GOAWAY(NO_ERROR) and closes the connection.
"""

from __future__ import annotations

import logging
from collections import deque

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import trio

from ..errors import UpstreamError
from ..routing import UPSTREAM_TIMEOUT
from ._body import response_headers
from ._http1 import DATA, END, HOP_BY_HOP, MAX_HEADER_BYTES
from ._replies import grpc_reply_headers, reply_parts

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
MAX_CONCURRENT_STREAMS = 100  # SETTINGS_MAX_CONCURRENT_STREAMS we advertise (Envoy: 100 on HTTP/2 upstreams, nginx 128)
MAX_HEADER_LIST_BYTES = MAX_HEADER_BYTES  # same as HTTP/1.1: Envoy's max_request_headers_kb (60 KiB)
PREMATURE_RESET_MIN = 100  # resets before the ratio check applies (Envoy: 500)
RECV_SIZE = 65536
GRPC_END_GRACE = 0.01  # seconds a gRPC request's end may lag its first message and still be buffered

log = logging.getLogger("trimesh.proxy")

# Fields of a HTTP/1.1 message that HTTP/2 forbids (RFC 9113 §8.2.2), plus content-length, which
# the HTTP/2 side re-emits itself from the upstream's framing.
_H2_DROP = HOP_BY_HOP | {"host"}
_GRPC_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


class StreamGone(Exception):
    """The client reset the stream or the connection went away."""


def parse_grpc_timeout(value: str) -> float | None:
    """Seconds of a ``grpc-timeout`` value (``"200m"``), or None when malformed."""
    if not 2 <= len(value) <= 9 or not value[:-1].isdigit():
        return None
    unit = _GRPC_UNITS.get(value[-1])
    return None if unit is None else int(value[:-1]) * unit


class H2Head:
    """A request head built from a HEADERS block, with ``RequestHead``'s fields (trimesh/proxy/
    _http1.py): ``headers`` are the regular fields (lower-case) with ``host`` first (from
    ``:authority``), so the stages and the HTTP/1.1 upstream side see what they see on HTTP/1.1."""

    __slots__ = ("method", "target", "version", "headers", "keep_alive", "content_length",
                 "chunked", "upgrade", "expect_continue", "host", "connection", "scheme",
                 "ended")

    def __init__(self, fields: list[tuple[str, str]], ended: bool) -> None:
        self.method = "GET"
        self.target = "/"
        self.version = "2"
        self.keep_alive = True
        self.content_length: int | None = None
        self.upgrade = None
        self.expect_continue = False
        self.connection = None
        self.scheme = "http"
        self.ended = ended  # HEADERS carried END_STREAM: no body
        authority = None
        host = None
        headers = []
        for n, v in fields:
            if n[0] == ":":
                if n == ":method":
                    self.method = v
                elif n == ":path":
                    self.target = v
                elif n == ":authority":
                    authority = v
                elif n == ":scheme":
                    self.scheme = v
                continue
            if n == "host":
                host = v
            elif n == "content-length" and v.isdigit():
                self.content_length = int(v)
            headers.append((n, v))
        self.host = authority if authority is not None else host
        if host is None and authority is not None:
            headers.insert(0, ("host", authority))
        self.headers = headers
        # Body with no declared length: "chunked" in RequestHead's terms (streamed, re-framed).
        self.chunked = not ended and self.content_length is None

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)

    def __repr__(self) -> str:
        return f"<H2Head {self.method} {self.target} {len(self.headers)} headers>"


class _Events:
    """What the stages read from ``down.parser``: the event queue (and no upgrade)."""

    __slots__ = ("events",)
    upgraded = False

    def __init__(self) -> None:
        self.events: deque = deque()


class H2Stream:
    """One request stream as a ``Downstream`` (module docstring)."""

    __slots__ = ("session", "stream_id", "head", "parser", "client", "server", "scope", "armed",
                 "expired", "upstream", "soft", "client_gone", "response_started", "grpc",
                 "grpc_timeout", "reset", "done", "_wake", "_window", "peer")

    def __init__(self, session: "H2Session", stream_id: int, head: H2Head) -> None:
        self.session = session
        self.stream_id = stream_id
        self.head = head
        self.parser = _Events()
        self.client = session.client
        self.peer = session.peer  # the verified client's _tls.Peer under mutual TLS
        self.server = session.server
        self.scope = trio.CancelScope()
        self.armed = None
        self.expired = False
        self.upstream = None
        self.soft = False
        self.client_gone = False
        self.response_started = False
        self.reset = False  # the client reset the stream
        self.done = False  # our side of the stream ended
        ctype = ""
        timeout = None
        for n, v in head.headers:
            if n == "content-type":
                ctype = v
            elif n == "grpc-timeout":
                timeout = parse_grpc_timeout(v)
        self.grpc = ctype.startswith("application/grpc")
        self.grpc_timeout = timeout
        self._wake: trio.Event | None = None
        self._window: trio.Event | None = None
        if head.ended:
            self.parser.events.append((END, None))

    # -- the request side ------------------------------------------------------------------------
    def push(self, kind: int, ev) -> None:
        self.parser.events.append((kind, ev))
        self.wake()

    def wake(self) -> None:
        if self._wake is not None:
            self._wake.set()
            self._wake = None

    def wake_window(self) -> None:
        if self._window is not None:
            self._window.set()
            self._window = None

    async def next_event(self):
        events = self.parser.events
        while not events:
            if self.reset or self.session.closed:
                raise StreamGone()
            self._wake = trio.Event()
            await self._wake.wait()
        kind, ev = events.popleft()
        if kind == DATA and ev:
            self.session.acknowledge(self.stream_id, len(ev))
            await self.session.flush()
        return kind, ev

    def _queued(self) -> tuple[bool, int, bytes]:
        ended = False
        size = 0
        first = b""
        for kind, ev in self.parser.events:
            if kind == END:
                ended = True
            elif ev:
                size += len(ev)
                if len(first) < 5:
                    first += ev[:5]
        return ended, size, first

    async def streaming_limit(self, limit: int) -> int:
        """The body bytes to buffer before the first try of a gRPC call. A unary call (one
        length-prefixed message, then END_STREAM) is buffered whole, so it can be retried; a
        streaming call may wait for answers between its messages, so once the first message is
        here and the end does not follow within :data:`GRPC_END_GRACE`, only what has arrived
        is buffered and the call gets one try."""
        grace_until = None
        while True:
            ended, size, first = self._queued()
            if ended:
                return limit
            if len(first) == 5 and size >= 5 + int.from_bytes(first[1:5], "big"):
                if grace_until is None:
                    grace_until = trio.current_time() + GRPC_END_GRACE
            if size > limit:
                return limit
            if self.reset or self.session.closed:
                raise StreamGone()
            self._wake = trio.Event()
            if grace_until is None:
                await self._wake.wait()
            else:
                with trio.move_on_at(grace_until) as scope:
                    await self._wake.wait()
                if scope.cancelled_caught:
                    return min(limit, size - 1)

    async def discard_body(self) -> bool:
        """An unread request body needs no draining on HTTP/2: when the response ends first the
        stream is reset with NO_ERROR (RFC 9113 §8.1)."""
        return True

    # -- the response side -----------------------------------------------------------------------
    def _check(self) -> None:
        if self.reset or self.session.closed:
            raise StreamGone()

    async def send_head(self, status: int, headers, end: bool = False) -> None:
        self._check()
        fields = [(":status", str(status))]
        fields.extend((n, v) for n, v in headers if n not in _H2_DROP)
        self.response_started = True
        self.session.conn.send_headers(self.stream_id, fields, end_stream=end)
        if end:
            self.done = True
        await self.session.flush()

    async def send_data(self, data: bytes, end: bool = False) -> None:
        """Send ``data`` as the stream's and connection's windows allow (waits for the peer's
        WINDOW_UPDATE)."""
        conn = self.session.conn
        view = memoryview(data)
        while view:
            self._check()
            window = conn.local_flow_control_window(self.stream_id)
            if window <= 0:
                self._window = trio.Event()
                await self._window.wait()
                continue
            n = min(window, conn.max_outbound_frame_size, len(view))
            conn.send_data(self.stream_id, bytes(view[:n]), end_stream=end and n == len(view))
            view = view[n:]
            await self.session.flush()
        if end and not data:
            self._check()
            conn.end_stream(self.stream_id)
            await self.session.flush()
        if end:
            self.done = True

    async def send_end(self, trailers=None) -> None:
        self._check()
        if trailers:
            self.session.conn.send_headers(
                self.stream_id, [(n, v) for n, v in trailers if n not in _H2_DROP],
                end_stream=True)
        else:
            self.session.conn.end_stream(self.stream_id)
        self.done = True
        await self.session.flush()

    async def relay(self, ex, pool, conn, rh, extra, reuse: bool = True) -> bool:
        """``_body.relay_response`` for an HTTP/2 client (module docstring)."""
        headers = response_headers(rh, extra)
        if rh.content_length is not None and (not rh.no_body or ex.head_request):
            headers.append(("content-length", str(rh.content_length)))
        events = conn.parser.events
        try:
            if rh.no_body:
                await self.send_head(rh.status, headers, end=True)
                while events and events[0][0] != END:  # an HTTP/1 parser queues END
                    events.popleft()
                if events:
                    events.popleft()
            else:
                await self.send_head(rh.status, headers)
                while True:
                    kind, ev = events.popleft() if events else await conn.next_event()
                    if kind == DATA:
                        await self.send_data(ev)
                    elif kind == END:
                        await self.send_end(ev)
                        break
        except UpstreamError:
            pool.discard(conn)  # the upstream broke mid-body: the client's stream is reset
            self.session.reset(self.stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR)
            return False
        except BaseException:
            pool.discard(conn)
            raise
        if reuse and getattr(rh, "keep_alive", True) and not events and not getattr(
                rh, "close_delimited", False):
            pool.release(conn)
        else:
            pool.discard(conn)
        return True

    async def send_reply(self, ex, reply, extra=(), pending: bool = True) -> bool:
        """A mesh reply on this stream (a trailers-only gRPC status toward a gRPC caller). An
        unread request body needs no draining (see :meth:`discard_body`): the connection always
        stays open."""
        self._queue_reply(reply, ex.add_flag(reply.flag), ex.attempts, extra, ex.head_request)
        await self.session.flush()
        return True

    def time_out(self, ex) -> None:
        """The route deadline cancelled ``ex``: a 504 UT (``DEADLINE_EXCEEDED`` for gRPC) if
        nothing was sent yet, else the stream is reset; the connection goes on."""
        if not self.response_started:
            self.send_reply_now(UPSTREAM_TIMEOUT, flags=ex.add_flag("UT"), attempts=ex.attempts,
                                head_request=ex.head_request)
        else:
            ex.add_flag("UT")
            self.session.reset(self.stream_id)

    def send_reply_now(self, reply, *, flags: str, attempts: int, head_request: bool) -> None:
        """The same without awaiting (the stream's task is being cancelled): the frames are
        queued and the session's task sends them."""
        try:
            self._queue_reply(reply, flags, attempts, (), head_request)
        except (StreamGone, h2.exceptions.H2Error):
            return
        self.session.kick()

    def _queue_reply(self, reply, flags, attempts, extra, head_request) -> None:
        self._check()
        conn = self.session.conn
        self.response_started = True
        self.done = True
        if self.grpc:
            conn.send_headers(self.stream_id, grpc_reply_headers(
                reply, flags=flags, attempts=attempts, extra=extra), end_stream=True)
            return
        status, hdrs, body = reply_parts(reply, flags=flags, attempts=attempts, extra=extra)
        fields = [(":status", str(status)), ("content-length", str(len(body)))]
        fields.extend((n, v) for n, v in hdrs if n not in _H2_DROP)
        if head_request or not body or len(body) > conn.local_flow_control_window(self.stream_id):
            conn.send_headers(self.stream_id, fields, end_stream=True)  # (replies are one line)
            return
        conn.send_headers(self.stream_id, fields)
        conn.send_data(self.stream_id, body, end_stream=True)

    def __repr__(self) -> str:
        return f"<H2Stream {self.stream_id} {self.head.method} {self.head.target}>"


class H2Session:
    """One HTTP/2 client connection: the h2 state machine, its streams and their tasks."""

    def __init__(self, server, handler, stream, client: str) -> None:
        self.server = server
        self.handler = handler
        self.stream = stream
        self.client = client
        self.peer = None  # the verified client's _tls.Peer (serve_h2's peer)
        config = h2.config.H2Configuration(client_side=False, header_encoding="latin-1",
                                           validate_inbound_headers=True)
        self.conn = h2.connection.H2Connection(config=config)
        self.conn.local_settings = h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS,
            # h2 refuses a larger block for the whole connection; ours is checked per stream
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 4 * MAX_HEADER_LIST_BYTES,
        })
        # (h2 sizes its HPACK decoder's limit from the settings it was built with)
        self.conn.decoder.max_header_list_size = 4 * MAX_HEADER_LIST_BYTES
        self.streams: dict[int, H2Stream] = {}
        self.closed = False
        self.draining = False
        self.opened = 0
        self.premature_resets = 0
        self.oversized = 0
        self._lock = trio.Lock()
        self._nursery: trio.Nursery | None = None

    # -- output ----------------------------------------------------------------------------------
    async def flush(self) -> None:
        async with self._lock:
            data = self.conn.data_to_send()
            if data:
                await self.stream.send_all(data)

    def kick(self) -> None:
        """Flush from the session's own task (for code that cannot await)."""
        if self._nursery is not None and not self.closed:
            self._nursery.start_soon(self._flush_quietly)

    async def _flush_quietly(self) -> None:
        try:
            await self.flush()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    def acknowledge(self, stream_id: int, n: int) -> None:
        self.conn.acknowledge_received_data(n, stream_id)

    def _give_back(self, s) -> None:
        """The request body a finished stream left unread (answered first, or reset) still
        counted against the connection's window: acknowledge it, or the client's window shrinks
        with every such stream until it cannot send."""
        left = sum(len(ev) for kind, ev in s.parser.events if kind == DATA)
        if left and not self.closed:
            self.conn.acknowledge_received_data(left, s.stream_id)  # closed: the connection's
            self.kick()

    def reset(self, stream_id: int, code=h2.errors.ErrorCodes.CANCEL) -> None:
        try:
            self.conn.reset_stream(stream_id, code)
        except h2.exceptions.H2Error:
            pass
        self.kick()

    def drain(self) -> None:
        """No new streams (REFUSED_STREAM, safe for clients to retry); once the streams in
        flight are done, GOAWAY(NO_ERROR) and close. (h2's GOAWAY closes its state machine, so
        it can only be sent last.)"""
        if self.draining or self.closed:
            return
        self.draining = True
        if not self.streams:
            self._finish_drain()

    def _finish_drain(self) -> None:
        if self._nursery is not None and not self.closed:
            self._nursery.start_soon(self._goaway_and_stop)

    async def _goaway_and_stop(self) -> None:
        await self._goaway(h2.errors.ErrorCodes.NO_ERROR, "draining")
        self._stop()

    def _stop(self) -> None:
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    # -- input -----------------------------------------------------------------------------------
    async def serve(self, first: bytes) -> None:
        """Run the connection until the client closes it, a protocol error or GOAWAY."""
        self.conn.initiate_connection()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                try:
                    data = first
                    while data:
                        self._receive(data)
                        await self.flush()
                        if self.closed:
                            break
                        data = await self.stream.receive_some(RECV_SIZE)
                except h2.exceptions.ProtocolError as exc:
                    self.server.bad_requests += 1
                    code = getattr(exc, "error_code", h2.errors.ErrorCodes.PROTOCOL_ERROR)
                    await self._goaway(code, str(exc))
                finally:
                    self.closed = True
                    for s in list(self.streams.values()):
                        s.client_gone = not s.done
                        s.scope.cancel()
                        s.wake()
                        s.wake_window()
        finally:
            self.closed = True
            self._nursery = None

    async def _goaway(self, code, reason: str) -> None:
        try:
            self.conn.close_connection(code, additional_data=reason.encode()[:256])
        except h2.exceptions.H2Error:
            pass
        self.closed = True
        with trio.move_on_after(1.0):
            try:
                async with self._lock:
                    data = self.conn.data_to_send()
                    if data:
                        await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    def _receive(self, data: bytes) -> None:
        for event in self.conn.receive_data(data):
            t = type(event)
            if t is h2.events.DataReceived:
                s = self.streams.get(event.stream_id)
                pad = event.flow_controlled_length - len(event.data)
                if s is None:
                    self.conn.acknowledge_received_data(event.flow_controlled_length,
                                                        event.stream_id)
                    continue
                if pad:
                    self.conn.acknowledge_received_data(pad, event.stream_id)
                s.push(DATA, event.data)
            elif t is h2.events.RequestReceived:
                self._open(event)
            elif t is h2.events.StreamEnded:
                s = self.streams.get(event.stream_id)
                if s is not None and not s.head.ended:
                    s.head.ended = True
                    s.push(END, None)
            elif t is h2.events.TrailersReceived:
                s = self.streams.get(event.stream_id)
                if s is not None and not s.head.ended:
                    s.head.ended = True  # request trailers are dropped (HTTP/1.1 cannot carry them)
                    s.push(END, None)
            elif t is h2.events.StreamReset:
                self._on_reset(event.stream_id)
            elif t is h2.events.WindowUpdated or t is h2.events.RemoteSettingsChanged:
                sid = getattr(event, "stream_id", 0)
                if sid:
                    s = self.streams.get(sid)
                    if s is not None:
                        s.wake_window()
                else:
                    for s in self.streams.values():
                        s.wake_window()
            elif t is h2.events.ConnectionTerminated:
                self.closed = True

    def _open(self, event) -> None:
        sid = event.stream_id
        ended = event.stream_ended is not None
        fields = event.headers
        if self.draining:
            self.conn.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
            return
        size = 0
        for n, v in fields:
            size += len(n) + len(v) + 32  # RFC 9113 §6.5.2's accounting
        if size > MAX_HEADER_LIST_BYTES:
            self.oversized += 1
            self.conn.send_headers(sid, [(":status", "431"), ("content-length", "0")],
                                   end_stream=True)
            if not ended:
                self.conn.reset_stream(sid, h2.errors.ErrorCodes.NO_ERROR)
            return
        self.opened += 1
        s = H2Stream(self, sid, H2Head(fields, ended))
        self.streams[sid] = s
        self._nursery.start_soon(self._run_stream, s)

    def _on_reset(self, sid: int) -> None:
        s = self.streams.get(sid)
        if s is None:
            return
        s.reset = True
        if not s.done:
            s.client_gone = True
            self.premature_resets += 1
            self.server.client_disconnects += 1
        s.scope.cancel()
        s.wake()
        s.wake_window()
        if (self.premature_resets >= PREMATURE_RESET_MIN
                and self.premature_resets * 2 > self.opened):
            raise h2.exceptions.DenialOfServiceError("too many streams reset by the client")

    async def _run_stream(self, s: H2Stream) -> None:
        server = self.server
        server.in_flight += 1
        try:
            with s.scope:
                try:
                    await self.handler(s, s.head)
                except (StreamGone, h2.exceptions.StreamClosedError, trio.BrokenResourceError,
                        trio.ClosedResourceError):
                    pass
                except Exception:
                    server.internal_errors += 1
                    log.exception("%s: internal error on an HTTP/2 stream from %s", server.name,
                                  self.client)
                    if not s.response_started and not s.reset and not self.closed:
                        self.reset(s.stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR)
            if not self.closed and not s.reset:
                if not s.done:
                    self.reset(s.stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR)
                elif not s.head.ended:  # answered before the body was read: RFC 9113 §8.1
                    self.reset(s.stream_id, h2.errors.ErrorCodes.NO_ERROR)
        finally:
            server.in_flight -= 1
            server.disarm(s)
            del self.streams[s.stream_id]
            self._give_back(s)
            if self.draining and not self.streams:
                self._finish_drain()

    def statistics(self) -> dict[str, object]:
        return {"streams": len(self.streams), "opened": self.opened,
                "premature_resets": self.premature_resets, "oversized": self.oversized,
                "closed": self.closed, "draining": self.draining}

    def __repr__(self) -> str:
        return f"<H2Session {self.client} streams={len(self.streams)} opened={self.opened}>"


async def serve_h2(server, handler, stream, client: str, first: bytes, *,
                   peer=None) -> H2Session:
    """Serve an HTTP/2 connection whose first bytes (``first``) are already read."""
    session = H2Session(server, handler, stream, client)
    session.peer = peer
    server.h2_sessions.add(session)
    try:
        await session.serve(first)
    finally:
        server.h2_sessions.discard(session)
    return session
