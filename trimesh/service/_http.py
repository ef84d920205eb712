"""Control-plane HTTP/1.1: one small server (and client) on h11 for every service that is not the
data plane — the control's config API, the sidecar's admin port, the fake upstreams of the test kit,
and later the CA, Mixer and service graph.

Theory of operation
-------------------

:class:`HttpService` pairs an application ``handler(request) -> response`` (async) with the HTTP
mechanics every control-plane server needs, so each server is only its handler:

- **One task per connection** (``trio.serve_listeners``), each driving an ``h11.Connection`` in
  server mode (RFC 9112): read one request head, read its body, call the handler, write the
  response, then either start the next cycle (keep-alive, pipelined requests included) or close
  when either side asked to (``connection: close``, HTTP/1.0 without keep-alive).
- **Time bounds**, each answered the way a client can understand:
  ``idle_timeout`` — no byte of a next request within it: close quietly (RFC 9112 §9.8 allows
  closing an idle connection at any time); ``header_timeout`` — the head not complete within it of
  its first byte: ``408`` and close (the slow-loris guard); ``body_timeout`` — the body not complete
  within it of the head: ``408`` and close.
- **Size bounds**: a head larger than ``max_head`` gets h11's ``431``; a body larger than
  ``max_body`` gets ``413``. An oversized body is still read and dropped up to ``discard_limit`` so
  the client reads the 413 on a connection that stays usable; beyond that (or a ``content-length``
  announcing more) the 413 goes out at once with ``connection: close``, followed by a lingering
  close (half-close, drain the client's input for a bounded time) so the kernel does not reset the
  connection before the client has read the answer (RFC 9112 §9.6).
- **Errors map to answers in one place**: a malformed request → ``400`` (h11's status hint) and
  close; :class:`HTTPError` raised by a handler → its status, message and headers; any other
  exception → ``500`` (logged with its traceback; the service keeps serving). The body of every
  answer the helper makes itself comes from ``error_response(status, message)``: plain text by
  default, ``{"error": message}`` JSON with :func:`json_error` (what the JSON APIs use).
- **Responses** are a :class:`Response` with ``status``, ``headers`` and a ``body`` that is either
  ``bytes`` (sent with ``content-length``, head and body in one write) or an async iterable of
  ``bytes`` (streamed; chunked for HTTP/1.1 clients unless the handler set ``content-length``,
  close-delimited for HTTP/1.0 — h11 picks the framing). A ``HEAD`` request gets the head only
  (with the ``content-length`` a GET would carry); ``204``/``304`` carry no body. ``Expect:
  100-continue`` is answered with ``100 Continue`` before the body is read.
- **Takeover**, the low-level hook: a handler may return :class:`Takeover` instead of a response;
  the helper then hands the raw stream to ``takeover.run(stream)`` and closes the connection after
  it. The fake upstreams use it to misbehave on purpose (close without answering, hang until the
  client gives up); a WebSocket or CONNECT endpoint could use it after its own ``101``/``200``.
- **Readiness and stop**: :meth:`HttpService.serve` binds, logs one line ``"<name> ready on
  host:port"`` (at INFO; ``ready_level=logging.DEBUG`` where the hosting process's own ready line
  already names the address, as the control's and the sidecar's do), reports
  ``task_status.started(service)`` and serves until cancelled.
  :meth:`HttpService.stop` stops gracefully instead: no new connections, idle keep-alive connections
  close at once, requests in progress finish (their answers carry ``connection: close``) within
  ``drain_timeout``, then ``serve`` returns.

The client half, :func:`http_request`, is the matching one-request exchange over an open stream
(the sidecar's control poll and health probes use it): bounded answer size, errors translated once
into :class:`~trimesh.errors.ProtocolError`.

Why h11 and not httptools: the data plane (``trimesh.proxy``) parses with httptools because every
microsecond there is per request of every app; control-plane traffic is a few requests a second, so
the reference codec (correct, complete, slower) is the right trade (shared/LIBRARIES.md).

Defaults and their sources are named below.
"""

from __future__ import annotations

import email.utils
import http
import logging
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Union
from urllib.parse import parse_qs, unquote, urlsplit

import h11
import msgspec
import trio

from ..errors import ProtocolError, TrimeshError

log = logging.getLogger("trimesh.service")

READ_SIZE = 64 * 1024  # bytes per receive_some
MAX_HEAD = 16 * 1024  # bytes of a request head (h11's default max_incomplete_event_size)
MAX_BODY = 1024 * 1024  # bytes of a request body (nginx's client_max_body_size default: 1m)
IDLE_TIMEOUT = 75.0  # seconds between requests on a kept-alive connection (nginx keepalive_timeout)
HEADER_TIMEOUT = 30.0  # seconds to receive a whole head once it began (nginx client_header_timeout
#                        is 60 s; control-plane clients are local and quick)
BODY_TIMEOUT = 30.0  # seconds to receive a whole body after its head (the config API's old bound)
DRAIN_TIMEOUT = 5.0  # seconds requests in progress get to finish after stop()
LINGER_TIMEOUT = 2.0  # seconds to drain a client's input after an error answer before closing
LINGER_LIMIT = 4 * 1024 * 1024  # bytes drained at most while lingering
CLOSE_TIMEOUT = 1.0  # seconds a connection's close may take (TLS close_notify), shielded
CLIENT_MAX_BODY = 64 * 1024 * 1024  # bytes of an answer http_request reads at most by default

Headers = list[tuple[str, str]]


class HTTPError(Exception):
    """Raised by a handler to answer ``status`` with ``message`` (through the service's
    ``error_response``) and extra ``headers`` (``allow`` on a 405, ...)."""

    def __init__(self, status: int, message: str, headers: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers: Headers = [(_text(k), _text(v)) for k, v in headers]

    def __repr__(self) -> str:
        return f"HTTPError({self.status}, {self.message!r})"


@dataclass(frozen=True)
class Request:
    """One complete request as a handler sees it: ``headers`` have lower-case names, in arrival
    order; ``path`` is the target's path, percent-decoded; ``query`` its parsed query string;
    ``target`` exactly as received (origin- or absolute-form)."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    client: tuple[str, int] | None = None
    http_version: str = "1.1"
    path: str = field(init=False)
    query: dict[str, list[str]] = field(init=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.target)
        object.__setattr__(self, "path", unquote(parts.path) or "/")
        object.__setattr__(self, "query", parse_qs(parts.query, keep_blank_values=True))

    def header(self, name: str, default: str | None = None) -> str | None:
        """A header's value; repeats joined with ``", "`` as RFC 9110 §5.3 allows."""
        name = name.lower()
        values = [v for k, v in self.headers if k == name]
        return ", ".join(values) if values else default


Body = Union[bytes, AsyncIterable[bytes]]


@dataclass
class Response:
    """What a handler answers. ``body``: bytes, or an async iterable of bytes to stream."""

    status: int = 200
    headers: Headers = field(default_factory=list)
    body: Body = b""


@dataclass(frozen=True)
class Takeover:
    """Returned by a handler instead of a response: ``run(stream)`` gets the raw connection (bytes
    h11 already read past the request are dropped); the connection closes after it. ``run=None``
    closes the connection without answering."""

    run: Callable[[trio.abc.Stream], Awaitable[None]] | None = None


Handler = Callable[[Request], Awaitable[Union[Response, Takeover]]]
ErrorResponse = Callable[[int, str], Response]


def text_response(text: str, status: int = 200, *, content_type: str = "text/plain; charset=utf-8",
                  headers: Iterable[tuple[str, str]] = ()) -> Response:
    return Response(status, [("content-type", content_type), *headers], text.encode())


def json_response(payload: Any, status: int = 200, *,
                  headers: Iterable[tuple[str, str]] = ()) -> Response:
    """``payload`` encoded as JSON (bytes are taken as already encoded JSON)."""
    body = payload if isinstance(payload, bytes) else msgspec.json.encode(payload) + b"\n"
    return Response(status, [("content-type", "application/json"), *headers], body)


def text_error(status: int, message: str) -> Response:
    """The default ``error_response``: the message as plain text."""
    return text_response(message + "\n", status)


def json_error(status: int, message: str) -> Response:
    """``error_response`` for JSON APIs: ``{"error": message}``."""
    return json_response({"error": message}, status)


class _Refuse(Exception):
    """The request cannot be served: answer ``status`` and close (internal to this module)."""

    def __init__(self, status: int, message: str, *, linger: bool) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.linger = linger


class HttpService:
    """One control-plane HTTP service: a handler plus the limits it is served with.

    ``serve(host, port)`` runs it on a TCP listener; ``serve_connection(stream)`` serves one
    already-open stream (memory streams in tests, a TLS stream). ``statistics()`` counts what
    happened; every connection of the service shares them.
    """

    def __init__(self, handler: Handler, *, name: str, max_head: int = MAX_HEAD,
                 max_body: int = MAX_BODY, discard_limit: int | None = None,
                 idle_timeout: float = IDLE_TIMEOUT, header_timeout: float = HEADER_TIMEOUT,
                 body_timeout: float = BODY_TIMEOUT, drain_timeout: float = DRAIN_TIMEOUT,
                 error_response: ErrorResponse = text_error,
                 server_header: str | None = None, ready_level: int = logging.INFO) -> None:
        self.handler = handler
        self.name = name
        self.max_head = max_head
        self.max_body = max_body
        self.discard_limit = 4 * max_body if discard_limit is None else discard_limit
        self.idle_timeout = idle_timeout
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.drain_timeout = drain_timeout
        self.error_response = error_response
        self.server_header = server_header
        self.ready_level = ready_level
        self.host: str | None = None
        self.port: int | None = None
        self.stopping = False
        self._accepting: trio.CancelScope | None = None
        self._idle: set[trio.CancelScope] = set()
        self._counts = dict.fromkeys(
            ("connections", "requests", "bad_requests", "too_large", "timeouts", "errors",
             "takeovers"), 0)
        self._open = 0
        self._statuses: dict[str, int] = {}

    # -- introspection -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """``http://host:port`` once bound (IPv6 hosts bracketed)."""
        if self.host is None:
            raise RuntimeError(f"{self.name} is not listening")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def statistics(self) -> dict[str, Any]:
        """Connections (``connections`` accepted, ``open_connections`` now), ``requests``
        answered, answers by status class (``responses``), and what the helper refused:
        ``bad_requests`` (400/431), ``too_large`` (413), ``timeouts`` (408), ``errors`` (a handler
        raised: 500), ``takeovers``."""
        address = None if self.host is None else f"{self.host}:{self.port}"
        return {"name": self.name, "address": address,
                "open_connections": self._open, "stopping": self.stopping, **self._counts,
                "responses": dict(self._statuses)}

    def __repr__(self) -> str:
        where = f"{self.host}:{self.port}" if self.host is not None else "unbound"
        return (f"<HttpService {self.name} on {where} open={self._open} "
                f"requests={self._counts['requests']}{' stopping' if self.stopping else ''}>")

    # -- serving -------------------------------------------------------------------------------
    async def listen(self, host: str, port: int) -> list[trio.SocketListener]:
        """Bind ``host:port`` (``port=0`` picks a free port) and log the ready line. A bind
        failure is a TrimeshError naming the address: a user error (port in use, no such
        address), not a crash."""
        try:
            listeners = await trio.open_tcp_listeners(port, host=host)
        except OSError as exc:
            raise TrimeshError(f"{self.name}: cannot listen on {host}:{port}: "
                               f"{exc.strerror or exc}") from exc
        self.host, self.port = listeners[0].socket.getsockname()[:2]
        log.log(self.ready_level, "%s ready on %s:%d", self.name, self.host, self.port)
        return listeners

    async def serve(self, host: str, port: int, *,
                    task_status: trio.TaskStatus[HttpService] = trio.TASK_STATUS_IGNORED) -> None:
        """Bind, report ``task_status.started(self)``, serve until cancelled or stopped."""
        listeners = await self.listen(host, port)
        await self.serve_listeners(listeners, task_status=task_status)

    async def serve_listeners(self, listeners: list[trio.SocketListener], *,
                              task_status: trio.TaskStatus[HttpService] = trio.TASK_STATUS_IGNORED
                              ) -> None:
        """Serve already-bound ``listeners`` (from :meth:`listen`); returns after :meth:`stop`
        once the connections are done or ``drain_timeout`` has passed."""
        async with trio.open_nursery() as connections:
            with trio.CancelScope() as accepting:
                self._accepting = accepting
                if self.stopping:
                    accepting.cancel()
                await trio.serve_listeners(self._on_connection, listeners,
                                           handler_nursery=connections, task_status=_Relay(
                                               task_status, self))
            # stop(): the listeners are closed; give requests in progress their deadline
            connections.cancel_scope.deadline = trio.current_time() + self.drain_timeout
        for listener in listeners:
            await trio.aclose_forcefully(listener)

    def stop(self) -> None:
        """Stop gracefully (module docstring); ``serve`` returns when the connections are done."""
        self.stopping = True
        if self._accepting is not None:
            self._accepting.cancel()
        for scope in self._idle:
            scope.cancel()

    async def _on_connection(self, stream: trio.SocketStream) -> None:
        try:
            client = stream.socket.getpeername()[:2]
        except (OSError, AttributeError):
            client = None
        await self.serve_connection(stream, client=client)

    # -- one connection ------------------------------------------------------------------------
    async def serve_connection(self, stream: trio.abc.Stream, *,
                               client: tuple[str, int] | None = None) -> None:
        """Serve requests on ``stream`` until either side closes, a timeout, or an error; the
        stream is closed on the way out."""
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.max_head)
        self._counts["connections"] += 1
        self._open += 1
        try:
            while not self.stopping:
                try:
                    head = await self._read_head(stream, conn)
                    if head is None:
                        return
                    request = await self._read_request(stream, conn, head, client)
                except h11.RemoteProtocolError as exc:
                    self._counts["bad_requests"] += 1
                    refusal = _Refuse(exc.error_status_hint, f"bad HTTP request: {exc}",
                                      linger=True)
                    await self._refuse(stream, conn, refusal)
                    return
                except _Refuse as refusal:
                    await self._refuse(stream, conn, refusal)
                    return
                if request is None:
                    await self._send(stream, conn, self._error(413, self._too_big(self.max_body)),
                                     head_only=head.method == b"HEAD")
                else:
                    answer = await self._call(request)
                    if isinstance(answer, Takeover):
                        self._counts["takeovers"] += 1
                        if answer.run is not None:
                            await answer.run(stream)
                        return
                    await self._send(stream, conn, answer, head_only=request.method == "HEAD")
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return  # MUST_CLOSE on either side
                conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return  # the client went away; nothing to answer
        except h11.LocalProtocolError:  # the handler's answer broke HTTP (a bug): drop this one
            self._counts["errors"] += 1
            log.exception("%s: an answer could not be sent", self.name)
            return
        finally:
            self._open -= 1
            with trio.move_on_after(CLOSE_TIMEOUT) as scope:
                scope.shield = True
                await stream.aclose()

    async def _read_head(self, stream: trio.abc.Stream, conn: h11.Connection) -> h11.Request | None:
        """The next request's head; ``None`` when the peer closed or stayed idle too long."""
        begun = False
        with trio.CancelScope(deadline=trio.current_time() + self.idle_timeout) as scope:
            self._idle.add(scope)
            try:
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        data = await stream.receive_some(READ_SIZE)
                        if data and not begun:
                            begun = True  # a request began: from now on the header timeout
                            self._idle.discard(scope)
                            scope.deadline = trio.current_time() + self.header_timeout
                        conn.receive_data(data)
                        continue
                    if isinstance(event, h11.Request):
                        if _head_size(event) > self.max_head:  # complete in one read: h11 let it be
                            self._counts["bad_requests"] += 1
                            raise _Refuse(431, f"request head larger than {self.max_head} bytes",
                                          linger=True)
                        return event
                    return None  # ConnectionClosed
            finally:
                self._idle.discard(scope)
        if begun:
            self._counts["timeouts"] += 1
            raise _Refuse(408, f"request head not received within {self.header_timeout:g} s",
                          linger=False)
        return None

    async def _read_request(self, stream: trio.abc.Stream, conn: h11.Connection,
                            head: h11.Request, client: tuple[str, int] | None) -> Request | None:
        """The whole request; ``None`` when its body was too large but read to its end (answer
        413 and keep the connection)."""
        declared = _content_length(head)
        if declared is not None and declared > self.discard_limit:
            self._counts["too_large"] += 1
            raise _Refuse(413, self._too_big(declared), linger=True)
        if conn.they_are_waiting_for_100_continue:
            if declared is not None and declared > self.max_body:
                self._counts["too_large"] += 1
                raise _Refuse(413, self._too_big(declared), linger=False)
            await stream.send_all(conn.send(h11.InformationalResponse(status_code=100, headers=[])))
        chunks: list[bytes] = []
        size = 0
        with trio.move_on_after(self.body_timeout) as scope:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await stream.receive_some(READ_SIZE))
                elif isinstance(event, h11.Data):
                    size += len(event.data)
                    if size > self.discard_limit:
                        self._counts["too_large"] += 1
                        raise _Refuse(413, self._too_big(size), linger=True)
                    if size <= self.max_body:
                        chunks.append(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    raise trio.BrokenResourceError("the client closed mid-request")
        if scope.cancelled_caught:
            self._counts["timeouts"] += 1
            raise _Refuse(408, f"request not received within {self.body_timeout:g} s",
                          linger=False)
        if size > self.max_body:
            self._counts["too_large"] += 1
            return None
        return Request(
            method=head.method.decode("ascii"),
            target=head.target.decode("ascii", "replace"),
            headers=tuple((k.decode("ascii"), v.decode("latin-1")) for k, v in head.headers),
            body=b"".join(chunks), client=client,
            http_version=head.http_version.decode("ascii"))

    async def _call(self, request: Request) -> Response | Takeover:
        try:
            answer = await self.handler(request)
        except HTTPError as exc:
            answer = self._error(exc.status, exc.message)
            answer.headers.extend(exc.headers)
        except Exception:  # a bug in the handler: answer 500, keep serving
            self._counts["errors"] += 1
            log.exception("%s: %s %s failed", self.name, request.method, request.target)
            answer = self._error(500, f"internal error (see the {self.name} log)")
        return answer

    def _error(self, status: int, message: str) -> Response:
        return self.error_response(status, message)

    def _too_big(self, size: int) -> str:
        return (f"request body of {size} bytes or more is larger than the limit of "
                f"{self.max_body} bytes")

    async def _refuse(self, stream: trio.abc.Stream, conn: h11.Connection,
                      refusal: _Refuse) -> None:
        """Answer a request that cannot be served, then close (lingering if the client may still
        be sending)."""
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        response = self._error(refusal.status, refusal.message)
        response.headers.append(("connection", "close"))
        await self._send(stream, conn, response, head_only=False)
        if refusal.linger:
            await _linger(stream)

    async def _send(self, stream: trio.abc.Stream, conn: h11.Connection, response: Response, *,
                    head_only: bool) -> None:
        status = response.status
        headers = [(_text(k), _text(v)) for k, v in response.headers]
        names = {k.lower() for k, _ in headers}
        if "date" not in names:
            headers.append(("date", email.utils.formatdate(usegmt=True)))
        if self.server_header and "server" not in names:
            headers.append(("server", self.server_header))
        if self.stopping and "connection" not in names:
            headers.append(("connection", "close"))
        body = response.body
        streamed = not isinstance(body, (bytes, bytearray))
        if not streamed and "content-length" not in names and status not in (204, 304):
            headers.append(("content-length", str(len(body))))
        no_body = head_only or status in (204, 304)
        self._requests_answered(status)
        out = conn.send(h11.Response(status_code=status, headers=headers, reason=_reason(status)))
        if not streamed:
            if body and not no_body:
                out += conn.send(h11.Data(data=bytes(body)))
            await stream.send_all(out + conn.send(h11.EndOfMessage()))  # one write
            return
        try:
            await stream.send_all(out)
            if not no_body:
                async for chunk in body:  # type: ignore[union-attr]
                    if chunk:
                        await stream.send_all(conn.send(h11.Data(data=chunk)))
            await stream.send_all(conn.send(h11.EndOfMessage()))
        finally:
            aclose = getattr(body, "aclose", None)
            if aclose is not None:
                with trio.CancelScope(shield=True):
                    await aclose()

    def _requests_answered(self, status: int) -> None:
        self._counts["requests"] += 1
        key = f"{status // 100}xx"
        self._statuses[key] = self._statuses.get(key, 0) + 1


class _Relay:
    """Passes ``serve_listeners``' readiness on as the service itself."""

    def __init__(self, task_status: trio.TaskStatus[Any], service: HttpService) -> None:
        self._task_status = task_status
        self._service = service

    def started(self, value: Any = None) -> None:
        self._task_status.started(self._service)


def _content_length(head: h11.Request) -> int | None:
    for name, value in head.headers:
        if name == b"content-length":
            return int(value)  # h11 has validated it
    return None


def _head_size(head: h11.Request) -> int:
    """The bytes of a request head as sent (request line, ``name: value`` lines, CRLFs)."""
    return (len(head.method) + len(head.target) + 13
            + sum(len(k) + len(v) + 4 for k, v in head.headers) + 2)


def _reason(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, (bytes, bytearray)) else value


async def _linger(stream: trio.abc.Stream) -> None:
    """Half-close and drain the client's input for a bounded time before closing, so it reads our
    answer instead of a reset (RFC 9112 §9.6)."""
    with trio.move_on_after(LINGER_TIMEOUT):
        try:
            if isinstance(stream, trio.abc.HalfCloseableStream):
                await stream.send_eof()
            drained = 0
            while drained < LINGER_LIMIT:
                chunk = await stream.receive_some(READ_SIZE)
                if not chunk:
                    break
                drained += len(chunk)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


async def serve_http(handler: Handler, host: str, port: int, *, name: str,
                     task_status: trio.TaskStatus[HttpService] = trio.TASK_STATUS_IGNORED,
                     **options: Any) -> None:
    """Serve ``handler`` on ``host:port`` until cancelled; ``task_status.started`` gets the
    :class:`HttpService` (its ``url``, ``port`` and ``statistics()``). ``options`` are
    :class:`HttpService`'s limits and hooks."""
    await HttpService(handler, name=name, **options).serve(host, port, task_status=task_status)


# -- the client half -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientResponse:
    """An answer read by :func:`http_request` (``body`` is empty with ``read_body=False``)."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""

    def header(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        values = [v for k, v in self.headers if k == name]
        return ", ".join(values) if values else default


async def http_request(stream: trio.abc.Stream, method: str, target: str, *, host: str,
                       headers: Iterable[tuple[str, str]] = (), body: bytes = b"",
                       max_body: int = CLIENT_MAX_BODY, read_body: bool = True) -> ClientResponse:
    """One request over an open ``stream`` and its answer (1xx answers skipped). With
    ``read_body=False`` it returns at the answer's head. Raises ProtocolError when the peer
    breaks HTTP, closes before answering, or sends more than ``max_body`` bytes; OSError and
    trio's stream errors pass through. Bound it with a cancel scope."""
    conn = h11.Connection(h11.CLIENT)
    all_headers = [("host", host), *headers]
    if body or method in ("POST", "PUT", "PATCH"):
        all_headers.append(("content-length", str(len(body))))
    try:
        out = conn.send(h11.Request(method=method, target=target, headers=all_headers))
        if body:
            out += conn.send(h11.Data(data=body))
        await stream.send_all(out + conn.send(h11.EndOfMessage()))
        answer: h11.Response | None = None
        chunks: list[bytes] = []
        received = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(READ_SIZE)
                if not data and answer is None:
                    raise ProtocolError("the connection closed before an answer")
                received += len(data)
                if received > max_body + MAX_HEAD:
                    raise ProtocolError(f"answer larger than {max_body} bytes")
                conn.receive_data(data)
            elif isinstance(event, h11.Response):
                answer = event
                if not read_body:
                    break
            elif isinstance(event, h11.Data):
                chunks.append(event.data)
                if sum(map(len, chunks)) > max_body:
                    raise ProtocolError(f"answer larger than {max_body} bytes")
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                break
            # h11.InformationalResponse (1xx): keep reading for the final answer
    except h11.ProtocolError as exc:
        raise ProtocolError(f"bad HTTP answer: {exc}") from None
    if answer is None:
        raise ProtocolError("the connection closed before an answer")
    return ClientResponse(
        answer.status_code,
        tuple((k.decode("ascii"), v.decode("latin-1")) for k, v in answer.headers),
        b"".join(chunks))
