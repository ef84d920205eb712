"""Upstream connection pools: keep-alive HTTP/1.1 connections per endpoint, reused LIFO.

Theory of operation (PERF.md: connecting per request doubles CPU and latency):

- One idle list per endpoint: ``(address, port)``, ``(host, port, "tls")`` for TLS origination,
  or ``(address, port, "mtls", identity)`` for a sidecar called with mutual TLS (``self.mtls``,
  a :class:`~._tls.MeshTls`, connects those and checks secure naming).
  :meth:`UpstreamPool.acquire` pops the most recently used connection (LIFO: the warmest one,
  least likely to have hit the server's idle timeout; the cold tail ages out), dropping any idle longer than ``idle_timeout``; with none left it connects.
- :meth:`release` puts a connection whose last response allowed keep-alive back; at most
  ``max_idle_per_endpoint`` are kept (the oldest is closed), like Envoy's per-host pool bound.
- A pooled connection can have been closed by the server while idle; the first use then fails with
  EOF/reset before any response byte. :func:`exchange` retries such a request once on a fresh
  connection when it is safe to replay (the body is buffered), counted as ``stale_retries`` — the
  rule httpcore and Envoy follow.

I/O is outside any lock: the pool is only touched by synchronous code between awaits.
"""

from __future__ import annotations

from collections import deque

import trio

from ..errors import UpstreamConnectError, UpstreamResetError
from . import _io
from ._http1 import HEAD, INFO, HTTPError, ResponseParser

MAX_IDLE_PER_ENDPOINT = 64  # idle keep-alive connections kept per endpoint
IDLE_TIMEOUT = 55.0  # seconds; below common server keep-alive timeouts (nginx 75 s, Node 5 s → set low)
CONNECT_TIMEOUT = 1.0  # seconds; Istio 0.x's cluster connect_timeout default (1s)


class UpstreamConnection:
    """A connection to one endpoint with its response parser. ``reused`` is True when it came from
    the idle list (so a failure before any response byte may just mean it went stale)."""

    __slots__ = ("stream", "endpoint", "parser", "requests", "last_used", "reused")
    multiplexed = False  # an HTTP/2 stream (_h2up.H2UpStream) is handed back to its connection

    def __init__(self, stream, endpoint: tuple[str, int]) -> None:
        self.stream = stream
        self.endpoint = endpoint
        self.parser = ResponseParser()
        self.requests = 0
        self.last_used = 0.0
        self.reused = False

    async def next_event(self):
        """The next response event, reading from the socket as needed. A broken connection or a
        malformed response raises UpstreamResetError (the one error the relay handles)."""
        events = self.parser.events
        try:
            while not events:
                data = await self.stream.receive_some()
                if data:
                    self.parser.feed(data)
                else:
                    self.parser.feed_eof()
        except (trio.BrokenResourceError, trio.ClosedResourceError, HTTPError) as exc:
            raise UpstreamResetError(f"{self.endpoint[0]}:{self.endpoint[1]}: {exc}") from exc
        return events.popleft()

    def close(self) -> None:
        self.stream.close()

    def __repr__(self) -> str:
        return f"<UpstreamConnection {self.endpoint[0]}:{self.endpoint[1]} requests={self.requests}>"


class UpstreamPool:
    def __init__(self, *, max_idle_per_endpoint: int = MAX_IDLE_PER_ENDPOINT,
                 idle_timeout: float = IDLE_TIMEOUT, connect_timeout: float = CONNECT_TIMEOUT,
                 tls_context=None, mtls=None) -> None:
        self.tls_context = tls_context  # ssl.SSLContext for TLS origination (None: system trust)
        self.mtls = mtls  # the sidecar's _tls.MeshTls: connects "mtls" endpoints
        self.max_idle_per_endpoint = max_idle_per_endpoint
        self.idle_timeout = idle_timeout
        self.connect_timeout = connect_timeout
        self._idle: dict[tuple[str, int], deque[UpstreamConnection]] = {}
        self._active = 0
        self._connects = 0
        self._connect_failures = 0
        self._reuses = 0
        self._stale_retries = 0
        self._closed_idle = 0

    async def acquire(self, endpoint: tuple[str, int]) -> UpstreamConnection:
        """A connection to ``endpoint``: the most recently released idle one, or a new one.
        Raises UpstreamConnectError when connecting fails (or takes longer than
        ``connect_timeout``)."""
        conn = self.take_idle(endpoint)
        return conn if conn is not None else await self.connect(endpoint)

    def take_idle(self, endpoint: tuple[str, int]) -> UpstreamConnection | None:
        """The most recently released idle connection to ``endpoint`` still within
        ``idle_timeout``, or None (synchronous: the hot path needs no coroutine for it)."""
        idle = self._idle.get(endpoint)
        if idle:
            now = trio.current_time()
            while idle:
                conn = idle.pop()
                if now - conn.last_used < self.idle_timeout:
                    conn.reused = True
                    self._reuses += 1
                    self._active += 1
                    return conn
                conn.close()
                self._closed_idle += 1
        return None

    async def connect(self, endpoint: tuple[str, int]) -> UpstreamConnection:
        self._connects += 1
        try:
            with trio.fail_after(self.connect_timeout):
                if len(endpoint) > 2:
                    if endpoint[2] == "mtls":  # a sidecar, with mutual TLS (_tls.MeshTls)
                        stream = await self.mtls.connect(endpoint)
                    else:  # "tls": egress TLS origination
                        stream = await _io.connect_tls(endpoint[0], endpoint[1],
                                                       context=self.tls_context)
                else:
                    stream = await _io.connect(endpoint[0], endpoint[1])
        except trio.TooSlowError:
            self._connect_failures += 1
            raise UpstreamConnectError(
                f"connect to {endpoint[0]}:{endpoint[1]} timed out") from None
        except OSError as exc:  # refused, unreachable, TLS handshake failures (ssl.SSLError)
            self._connect_failures += 1
            raise UpstreamConnectError(f"connect to {endpoint[0]}:{endpoint[1]}: {exc}") from exc
        self._active += 1
        return UpstreamConnection(stream, endpoint)

    def release(self, conn: UpstreamConnection) -> None:
        """Return a connection whose last exchange completed cleanly and allows keep-alive."""
        if conn.multiplexed:
            conn.finish()
            return
        self._active -= 1
        conn.last_used = trio.current_time()
        conn.reused = False
        idle = self._idle.get(conn.endpoint)
        if idle is None:
            idle = self._idle[conn.endpoint] = deque()
        idle.append(conn)
        if len(idle) > self.max_idle_per_endpoint:
            idle.popleft().close()
            self._closed_idle += 1

    def discard(self, conn: UpstreamConnection) -> None:
        """Close a connection that cannot be reused (error, ``Connection: close``, cancelled)."""
        if conn.multiplexed:
            conn.finish(reset=True)
            return
        self._active -= 1
        conn.close()

    def note_stale_retry(self) -> None:
        self._stale_retries += 1

    def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()

    def statistics(self) -> dict[str, object]:
        return {
            "connects": self._connects,
            "connect_failures": self._connect_failures,
            "reuses": self._reuses,
            "stale_retries": self._stale_retries,
            "active": self._active,
            "idle": sum(len(d) for d in self._idle.values()),
            "idle_closed": self._closed_idle,
            "endpoints": len(self._idle),
        }

    def __repr__(self) -> str:
        s = self.statistics()
        return (f"<UpstreamPool endpoints={s['endpoints']} active={s['active']} idle={s['idle']} "
                f"connects={s['connects']} reuses={s['reuses']}>")


class UpstreamRequest:
    """What :func:`exchange` sends: ``payload`` (the head, plus the whole body when buffered),
    whether it answers a HEAD, whether it can be replayed (the body is all in ``payload``), the
    ``streamer`` that sends the rest of a larger body, and the ``down`` (Downstream) it serves.
    The pipeline's Exchange has the same attributes and is passed as it is."""

    __slots__ = ("payload", "head_request", "complete", "streamer", "down")

    def __init__(self, payload: bytes, *, head_request: bool = False, complete: bool = True,
                 streamer=None, down=None) -> None:
        self.payload = payload
        self.head_request = head_request
        self.complete = complete
        self.streamer = streamer
        self.down = down


async def _send_and_read_head(conn: UpstreamConnection, req):
    conn.parser.expect(head_request=req.head_request)
    await conn.stream.send_all(req.payload)
    if req.streamer is not None:
        await req.streamer(conn)
    events = conn.parser.events
    while True:
        if not events:  # the response cannot be there yet: wait before reading
            data = await conn.stream.wait_and_receive()
            if data:
                conn.parser.feed(data)
            else:
                conn.parser.feed_eof()
            continue
        kind, ev = events.popleft()
        if kind == HEAD:
            conn.requests += 1
            return ev
        if kind != INFO:  # 100 Continue and friends: the proxy answers those itself
            raise HTTPError(502, "unexpected response event")


async def exchange(pool: UpstreamPool, endpoint: tuple[str, int], req):
    """Send ``req`` (an :class:`UpstreamRequest`, or the pipeline's Exchange) on a pooled or new
    connection to ``endpoint`` and wait for the final response head. Returns ``(conn,
    ResponseHead)``; the caller reads the body with ``conn.next_event()`` and then releases or
    discards ``conn``.

    Raises :class:`~trimesh.errors.UpstreamConnectError` for a connect failure and
    :class:`~trimesh.errors.UpstreamResetError` for a reset, a closed connection or a malformed
    response before the head (the errors the attempt policy maps to outcomes; nothing else of the
    I/O layer escapes). A stale pooled connection is retried once when ``req.complete``.

    ``req.down`` (the downstream request's ``Downstream``) gets the connection in use as
    ``down.upstream``, so its deadline timer can close it; if the deadline already passed
    (``down.expired``) the connection is closed at once and UpstreamResetError raised (the caller
    sees ``down.expired`` and answers 504).
    """
    owner = req.down
    for tried_fresh in (False, True):
        conn = None if tried_fresh else pool.take_idle(endpoint)
        if conn is None:
            conn = await pool.connect(endpoint)
        if owner is not None:
            owner.upstream = conn
            if owner.expired:
                pool.discard(conn)
                raise UpstreamResetError("request deadline passed")
        try:
            return conn, await _send_and_read_head(conn, req)
        except (trio.BrokenResourceError, trio.ClosedResourceError, HTTPError) as exc:
            stale = (conn.reused and not conn.parser.mid_message and req.complete
                     and not tried_fresh and not isinstance(exc, trio.ClosedResourceError))
            pool.discard(conn)
            if stale:
                pool.note_stale_retry()
                continue
            raise UpstreamResetError(f"{conn.endpoint[0]}:{conn.endpoint[1]}: {exc}") from exc
        except BaseException:
            pool.discard(conn)
            raise
    raise AssertionError("unreachable")

