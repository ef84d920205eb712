"""The HTTP/1.1 listener shell: accept loop, per-connection request loop, timeouts, drain.

One task per downstream connection; the request and its response are driven inline in that task
(PERF.md: a task per request costs ~60 µs). The handler is an ``async (Downstream, RequestHead) ->
bool`` that reads the body through :meth:`Downstream.next_event`, writes the response to
``down.stream`` and returns whether the connection may stay open. Pipelined requests are answered in
order because the next head is only taken from the parser once the handler returned.

Timeouts cost nothing per request: each connection has one cancel scope, and a watchdog task wakes
every :data:`WATCHDOG_INTERVAL` seconds, compares the connections waiting for a head with its coarse
clock, and cancels those past their limit (resolution: the interval):

- waiting for the first head, or for the rest of a head that has started: :data:`HEADER_READ_TIMEOUT`
  (a slow client is answered 408 and closed);
- waiting idle between keep-alive requests: ``idle_timeout``;
- while the handler runs: the route's deadline (:meth:`HttpServer.arm`, below) and, every interval,
  a check that the client is still there (a ``MSG_PEEK`` of its socket): a client that closed or
  reset its connection has its request cancelled — the upstream connection is discarded and the
  access log says ``DC`` (Envoy's downstream connection termination).

Draining (:meth:`HttpServer.drain`): the listener closes, idle connections are cancelled, busy ones
finish their current request and close.

HTTP/2: a connection whose first read starts with ``PRI `` (the HTTP/2 client preface, prior
knowledge) leaves the HTTP/1.1 loop and is served by ``_h2.serve_h2`` in the same task (one task
per stream there; drain sends GOAWAY). The header, idle and client-gone watchdog checks are
HTTP/1.1's; an HTTP/2 stream learns of a gone client from RST_STREAM or the connection's end.
"""

from __future__ import annotations

import logging
import math
import socket

import trio

from ..routing import UPSTREAM_TIMEOUT, MeshReply
from . import _io
from ._body import relay_response
from ._http1 import DATA, END, HEADER_READ_TIMEOUT, HTTPError, RequestParser, reason_phrase
from ._h2 import serve_h2
from ._replies import render_reply

WATCHDOG_INTERVAL = 0.5  # seconds; resolution of the header and idle timeouts
IDLE_TIMEOUT = 300.0  # seconds a keep-alive connection may sit idle (Envoy's is 1 h; apps reconnect)
DRAIN_BODY_LIMIT = 65536  # bytes of an unread request body we read and drop to keep the connection

log = logging.getLogger("trimesh.proxy")


class ClientGone(Exception):
    """The downstream closed its side."""


_raw_recv = socket.socket.recv  # the kernel socket's recv, also for an ssl.SSLSocket


def _peer_closed(stream) -> bool:
    """Has the client closed (EOF) or reset its connection? A non-blocking ``MSG_PEEK`` leaves
    any pipelined bytes in place. (On a TLS socket the peek goes to the TCP socket underneath:
    ``SSLSocket.recv`` refuses flags, and a FIN is what matters.)"""
    sock = getattr(stream, "sock", None)
    if sock is None:
        return False
    try:
        return _raw_recv(sock, 1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


class Http1Answers:
    """What the pipeline asks of an HTTP/1.1 downstream — the response relayed, a mesh reply,
    the route deadline's 504 — for any class with ``parser``, ``stream``, ``server``,
    ``response_started`` and ``discard_body`` (:class:`Downstream`; the embedding API's
    in-memory one). ``_h2.H2Stream`` answers the same for an HTTP/2 stream."""

    __slots__ = ()
    grpc = False  # (an HTTP/2 stream's: the request is a gRPC call)
    grpc_timeout = None  # (an HTTP/2 stream's: the caller's grpc-timeout, seconds)
    relay = staticmethod(relay_response)  # (ex, pool, conn, rh, extra, reuse): the response

    async def send_reply(self, ex, reply, extra=(), pending: bool = True) -> bool:
        """Answer ``ex`` with the mesh reply ``reply``; whether the connection stays open.
        ``pending``: the request body may still be unread (read and dropped, up to
        :data:`DRAIN_BODY_LIMIT`, so the connection can stay open)."""
        head = ex.head
        parser = self.parser
        keep = head.keep_alive and not self.server.draining
        if keep and pending and not parser.upgraded and (parser.events or head.has_body):
            try:
                keep = await self.discard_body()
            except HTTPError:
                keep = False
        data = render_reply(reply, flags=ex.add_flag(reply.flag), attempts=ex.attempts,
                            extra=extra, keep_alive=keep, head_request=ex.head_request)
        self.response_started = True
        await self.stream.send_all(data)
        return keep

    def time_out(self, ex) -> None:
        """The route deadline cancelled ``ex`` (its task cannot await): a 504 UT goes out with
        one non-blocking send if no response byte has, then the connection closes."""
        if self.response_started:
            ex.add_flag("UT")
            return
        data = render_reply(UPSTREAM_TIMEOUT, flags=ex.add_flag("UT"), attempts=ex.attempts,
                            keep_alive=False, head_request=ex.head_request)
        self.response_started = True
        try:
            self.stream.sock.send(data)
        except OSError:
            pass


class Downstream(Http1Answers):
    """One client connection: its stream, request parser and address."""

    __slots__ = ("stream", "parser", "client", "response_started", "server", "scope",
                 "wait_since", "head_timed", "timed_out", "armed", "expired", "upstream", "soft",
                 "client_gone", "preface", "peer")

    def __init__(self, stream, client: str, server: "HttpServer", peer=None) -> None:
        self.peer = peer  # the verified client's _tls.Peer under mutual TLS, else None
        self.scope: trio.CancelScope | None = None
        self.armed: dict | None = None  # the timer bucket holding this connection's deadline
        self.expired = False  # the request deadline passed (see HttpServer.arm)
        self.upstream = None  # the upstream connection the request is using (see HttpServer.arm)
        self.soft = False  # an expired request can be answered 504 on this connection
        self.client_gone = False  # the client closed or reset while its request was in flight
        self.wait_since = 0.0
        self.head_timed = True
        self.timed_out = False
        self.stream = stream
        self.parser = RequestParser()
        self.client = client
        self.response_started = False
        self.server = server
        self.preface: bytes | None = None  # first bytes of an HTTP/2 connection (see _h2.py)

    async def next_event(self):
        events = self.parser.events
        while not events:
            data = await self.stream.receive_some()
            if not data:
                raise ClientGone()
            self.parser.feed(data)
        return events.popleft()

    async def discard_body(self) -> bool:
        """Read and drop the rest of the current request body. False when it was too large (the
        connection must close instead)."""
        seen = 0
        while True:
            kind, ev = await self.next_event()
            if kind == END:
                return True
            if kind == DATA:
                seen += len(ev)
                if seen > DRAIN_BODY_LIMIT:
                    return False


class HttpServer:
    """Serves one listening socket with ``handler``. ``name`` is for logs (``inbound``...)."""

    def __init__(self, name: str, handler, *, idle_timeout: float = IDLE_TIMEOUT,
                 header_timeout: float = HEADER_READ_TIMEOUT, tls_context=None) -> None:
        self.name = name
        self.tls_context = tls_context  # ssl.SSLContext: every connection starts with a handshake
        # Mutual TLS (the inbound under authPolicy MUTUAL_TLS): a _tls.MeshTls whose server
        # context every connection must pass (a client certificate from the mesh root), read
        # per connection so a renewal or a MeshConfig change applies to the next one.
        self.mtls = None
        self.tls_failures = 0
        self.mtls_refused = 0  # connections refused: mutual TLS required and no certificate held
        self.handler = handler
        self.idle_timeout = idle_timeout
        self.header_timeout = header_timeout
        self.draining = False
        self.in_flight = 0
        self.connections = 0
        self.accepted = 0
        self.bad_requests = 0
        self.header_timeouts = 0
        self.internal_errors = 0
        self._waiting: set[Downstream] = set()
        self.h2_sessions: set = set()  # HTTP/2 connections being served (_h2.H2Session)
        self._busy: set[Downstream] = set()  # connections whose request is in the handler
        self.client_disconnects = 0
        self._tick = 0.0
        self._buckets: dict[object, dict[Downstream, float]] = {}
        self._timer_wake = math.inf
        self._timer_scope = trio.CancelScope()
        self.request_timeouts = 0
        self._listener = None
        self._idle_event = trio.Event()
        self.address: tuple[str, int] | None = None

    async def serve(self, host: str, port: int, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        try:
            listener = _io.open_listener(host, port)
        except OSError as exc:
            raise OSError(exc.errno, f"{self.name} listener {host}:{port}: {exc.strerror}") from None
        self._listener = listener
        self.address = listener.getsockname()[:2]
        try:
            async with trio.open_nursery() as nursery:
                self._tick = trio.current_time()
                nursery.start_soon(self._watchdog)
                nursery.start_soon(self._timer)
                task_status.started(self.address)
                await _io.accept_connections(listener, nursery, self)
        finally:
            if self._listener is not None:
                _io.close_listener(listener)
                self._listener = None

    def drain(self) -> None:
        """Stop accepting, close idle connections, let busy ones finish their request."""
        if self.draining:
            return
        self.draining = True
        if self._listener is not None:
            _io.close_listener(self._listener)
            self._listener = None
        for down in list(self._waiting):
            if not down.parser.in_head:
                down.scope.cancel()
        for session in list(self.h2_sessions):
            session.drain()
        self._timer_scope.cancel()  # let the timer see the drain
        if self.connections == 0:
            self._idle_event.set()

    async def wait_drained(self) -> None:
        """Return once no connection is left (after :meth:`drain`)."""
        if self.connections:
            await self._idle_event.wait()

    # -- request deadlines ---------------------------------------------------------------------
    # A cancel scope per request costs ~9 % of the proxy's CPU (PERF.md budget). Instead, a
    # request's deadline is recorded in a bucket keyed by the route's timeout: within a bucket,
    # deadlines = arm time + the same constant, so insertion order is deadline order and the
    # earliest is the first entry. One timer task sleeps until the earliest deadline of all
    # buckets; when a deadline passes while the request is still armed, the timer marks it
    # ``expired`` and wakes the handler:
    #
    # - ``soft`` (the request was read completely, no response byte sent yet): it closes the
    #   upstream connection the handler waits on (``down.upstream``; nothing when between
    #   attempts — those waits are bounded by the deadline). The handler sees the closed stream,
    #   answers 504 UT and the client connection stays open; the upstream one is discarded.
    # - otherwise (the response has started, or the request body is still streaming): it
    #   cancels the connection's scope; the handler logs UT without awaiting (and writes a 504
    #   when nothing was sent yet) and the connection closes — the response cannot be framed.

    def arm(self, down: Downstream, key: object, deadline: float, soft: bool = False) -> None:
        """Enforce ``deadline`` on the request ``down`` is handling (``key``: its timeout);
        ``soft``: the request was read completely, so expiry can be answered in place."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = {}
        bucket[down] = deadline
        down.armed = bucket
        down.expired = False
        down.soft = soft
        if deadline < self._timer_wake:
            self._timer_wake = deadline
            self._timer_scope.deadline = deadline  # rare: only an earlier deadline wakes it

    def detach(self, down: Downstream) -> None:
        """The connection became a tunnel (CONNECT, an upgrade) that handles its client's EOF
        itself (half-close): the watchdog no longer takes an EOF for a client gone."""
        self._busy.discard(down)

    def disarm(self, down: Downstream) -> None:
        bucket = down.armed
        if bucket is not None:
            del bucket[down]
            down.armed = None

    async def _timer(self) -> None:
        while not (self.draining and self.connections == 0):
            with trio.CancelScope(deadline=self._timer_wake) as self._timer_scope:
                await trio.sleep_forever()
            now = trio.current_time()
            wake = math.inf
            for bucket in self._buckets.values():
                while bucket:
                    down, deadline = next(iter(bucket.items()))
                    if deadline > now:
                        wake = min(wake, deadline)
                        break
                    del bucket[down]
                    down.armed = None
                    down.expired = True
                    self.request_timeouts += 1
                    if down.soft and not down.response_started:
                        if down.upstream is not None:
                            down.upstream.close()  # wakes its waiter: ClosedResourceError
                    else:
                        down.scope.cancel()
            self._timer_wake = wake

    async def _watchdog(self) -> None:
        """Cut off connections that wait too long for a head (or sit idle too long)."""
        while not (self.draining and self.connections == 0):
            await trio.sleep(WATCHDOG_INTERVAL)
            now = self._tick = trio.current_time()
            for down in list(self._busy):
                if not down.client_gone and _peer_closed(down.stream):
                    # Envoy's DC: the client went away while its request was in flight. The
                    # handler is cancelled: its upstream connection is discarded, not pooled.
                    down.client_gone = True
                    self.client_disconnects += 1
                    down.scope.cancel()
            for down in list(self._waiting):
                limit = (self.header_timeout if down.head_timed or down.parser.in_head
                         else self.idle_timeout)
                if now - down.wait_since >= limit:
                    down.timed_out = True
                    down.scope.cancel()

    async def _serve_connection(self, sock, addr) -> None:
        ctx = self.tls_context
        mtls = self.mtls
        peer = None
        if mtls is not None:
            ctx = mtls.server
            if ctx is None:  # mutual TLS is required and there is no certificate yet
                self.mtls_refused += 1
                sock.close()
                return
        if ctx is None:
            stream = _io.make_stream(sock)
        else:
            stream = await self._tls_handshake(sock, ctx)
            if stream is None:
                return
            if mtls is not None:
                peer = mtls.accepted(stream)
        down = Downstream(stream, addr[0] if addr else "", self, peer)
        scope = down.scope = trio.CancelScope()
        self.connections += 1
        try:
            with scope:
                await self._serve_requests(down)
                if down.preface is not None:
                    await serve_h2(self, self.handler, stream, down.client, down.preface,
                                   peer=peer)
            if down.timed_out and not self.draining:
                self.header_timeouts += 1
                if down.parser.in_head:
                    await self._try_send_error(down, 408, "request head not received in time")
        except HTTPError as exc:
            self.bad_requests += 1
            if not down.response_started:
                await self._try_send_error(down, exc.status, exc.message)
        except (ClientGone, trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except Exception:
            # A bug in a handler must not take the listener (and every other connection) down:
            # log it with its traceback, answer 500 if nothing was sent yet, close this one.
            # (Exception only: Cancelled and KeyboardInterrupt propagate.)
            self.internal_errors += 1
            log.exception("%s: internal error on a connection from %s", self.name, down.client)
            if not down.response_started:
                await self._try_send_error(down, 500, "internal error in the proxy")
        finally:
            self.connections -= 1
            stream.close()
            if self.draining and self.connections == 0:
                self._idle_event.set()
                self._timer_scope.cancel()

    async def _tls_handshake(self, sock, ctx):
        """A TLS stream for an accepted connection, or None (counted) when the handshake fails
        or takes longer than the header timeout (a plaintext client, a bad certificate)."""
        from ._tls import tls_handshake

        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with trio.move_on_after(self.header_timeout):
            try:
                return await tls_handshake(sock, ctx, server_side=True)
            except OSError as exc:
                self.tls_failures += 1
                log.debug("%s: TLS handshake failed: %s", self.name, exc)
                return None
        self.tls_failures += 1
        sock.close()
        return None

    async def _serve_requests(self, down: Downstream) -> None:
        """The connection's request loop: wait for a head, hand it to the handler, repeat while
        the connection may stay open (pipelined requests in order)."""
        stream = down.stream
        parser = down.parser
        events = parser.events
        waiting = self._waiting
        busy = self._busy
        while True:
            if not events:
                # Wait for the next head. No deadline per request: the watchdog checks waiting
                # connections against the coarse clock it keeps (PERF.md: a cancel-scope
                # deadline change costs several microseconds).
                down.wait_since = self._tick
                down.head_timed = parser.messages == 0 or parser.in_head
                waiting.add(down)
                try:
                    while not events:
                        if self.draining and not parser.in_head:
                            return
                        # After a response the next request is not there yet.
                        data = await (stream.wait_and_receive() if parser.messages
                                      else stream.receive_some())
                        if not data:
                            return
                        if not parser.messages and not parser.in_head:
                            while len(data) < 4 and b"PRI ".startswith(data):
                                more = await stream.receive_some()  # a preface cut short
                                if not more:
                                    return
                                data += more
                            if data[:4] == b"PRI ":
                                down.preface = data  # HTTP/2 with prior knowledge (_h2.py)
                                return
                        parser.feed(data)
                        if parser.in_head and not down.head_timed:
                            down.head_timed = True
                            down.wait_since = trio.current_time()
                finally:
                    waiting.discard(down)
            kind, head = events.popleft()
            down.response_started = False
            self.in_flight += 1
            busy.add(down)
            try:
                keep = await self.handler(down, head)
            finally:
                self.in_flight -= 1
                busy.discard(down)
                down.upstream = None
            if not keep or self.draining or parser.upgraded or (parser.closed and not events):
                return

    async def _try_send_error(self, down: Downstream, status: int, message: str) -> None:
        """A codec-level answer (400/408/431/505/500, Envoy's flag DPE), rendered like every
        mesh reply (trimesh/proxy/_replies.py), then the connection closes."""
        reply = MeshReply(status, "DPE", f"{reason_phrase(status)}: {message}")
        down.response_started = True
        try:
            with trio.move_on_after(1.0):
                await down.stream.send_all(render_reply(reply, flags="DPE", keep_alive=False))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    def statistics(self) -> dict[str, object]:
        return {"connections": self.connections, "accepted": self.accepted,
                "in_flight": self.in_flight, "bad_requests": self.bad_requests,
                "header_timeouts": self.header_timeouts, "request_timeouts": self.request_timeouts,
                "internal_errors": self.internal_errors,
                "client_disconnects": self.client_disconnects, "draining": self.draining,
                "tls_failures": self.tls_failures, "mtls_refused": self.mtls_refused}

    def __repr__(self) -> str:
        return (f"<HttpServer {self.name} on {self.address} connections={self.connections} "
                f"in_flight={self.in_flight}>")
