"""The one tiny HTTP/1.1 server every example service is built on (Trio + h11).

Theory of operation: :func:`serve_http` binds a TCP listener, logs one "ready" line naming the URL it
listens on, reports readiness through ``task_status`` and then serves each connection in its own task.
A connection task runs h11's server state machine (RFC 9112): read one complete request (head and
body; example requests are small, so bodies are buffered), hand a :class:`Request` to the application
handler, write its :class:`Response` with a ``Content-Length``, then start the next cycle for
keep-alive or close when either side asked to. A malformed request gets a 400 and the connection is
closed; an exception in the handler becomes a 500 (logged), so one bad request never takes the
service down.

The applications are plain async callables ``handler(request) -> Response``; :func:`dispatch` maps a
request to one of a table of ``(method, path regex, function)`` routes. :func:`run_server` is the
shared ``main`` body: logging, SIGTERM/SIGINT handling (exit status 0, as a well-behaved app under a
sidecar should) and ``trio.run``.
"""

from __future__ import annotations

import email.utils
import http
import json
import logging
import re
import signal
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import h11
import trio

log = logging.getLogger("trimesh.samples")

DEFAULT_PORT = 9080  # every BookInfo service listens on 9080 (BookInfo guide, E:140-144)
RECEIVE_SIZE = 65536
MAX_BODY = 1 << 20  # example requests are tiny; refuse anything larger with 413
SERVER_HEADER = "trimesh-example"
LINGER_TIMEOUT = 2.0  # seconds to drain a client's input after an error answer before closing
LINGER_MAX_BYTES = 4 << 20


@dataclass(frozen=True)
class Request:
    """One complete HTTP request as the application sees it."""

    method: str
    target: str  # as received: origin-form ("/a?b") or absolute-form ("http://h:80/a?b")
    headers: tuple[tuple[str, str], ...]  # lower-case names, in arrival order
    body: bytes = b""
    client: tuple[str, int] | None = None
    http_version: str = "1.1"
    path: str = field(init=False)
    query: dict[str, list[str]] = field(init=False)

    def __post_init__(self) -> None:
        parts = urllib.parse.urlsplit(self.target)
        object.__setattr__(self, "path", urllib.parse.unquote(parts.path) or "/")
        object.__setattr__(self, "query", urllib.parse.parse_qs(parts.query, keep_blank_values=True))

    def header(self, name: str, default: str | None = None) -> str | None:
        """The value of a header (repeats joined as RFC 9110 allows; cookies with "; ")."""
        name = name.lower()
        values = [v for k, v in self.headers if k == name]
        if not values:
            return default
        return ("; " if name == "cookie" else ", ").join(values)

    @property
    def cookies(self) -> dict[str, str]:
        jar: dict[str, str] = {}
        for part in (self.header("cookie") or "").split(";"):
            key, sep, value = part.strip().partition("=")
            if sep and key:
                jar.setdefault(key, value)
        return jar

    def form(self) -> dict[str, str]:
        """Form fields of a urlencoded body, falling back to the query string (first value each)."""
        fields = {k: v[0] for k, v in self.query.items()}
        ctype = (self.header("content-type") or "").split(";")[0].strip().lower()
        if self.body and ctype in ("application/x-www-form-urlencoded", ""):
            parsed = urllib.parse.parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)
            fields.update({k: v[0] for k, v in parsed.items()})
        return fields


@dataclass
class Response:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


def json_response(obj: Any, status: int = 200, headers: Iterable[tuple[str, str]] = ()) -> Response:
    body = json.dumps(obj).encode()
    return Response(status, [("content-type", "application/json"), *headers], body)


def text_response(text: str, status: int = 200, content_type: str = "text/plain; charset=utf-8",
                  headers: Iterable[tuple[str, str]] = ()) -> Response:
    return Response(status, [("content-type", content_type), *headers], text.encode())


def html_response(text: str, status: int = 200, headers: Iterable[tuple[str, str]] = ()) -> Response:
    return text_response(text, status, "text/html; charset=utf-8", headers)


def redirect(location: str, status: int = 302, headers: Iterable[tuple[str, str]] = ()) -> Response:
    return Response(status, [("location", location), ("content-type", "text/html; charset=utf-8"),
                             *headers], b"")


Handler = Callable[[Request], Awaitable[Response]]
Route = tuple[str, str, Callable[..., Awaitable[Response]]]


def compile_routes(routes: Sequence[Route]) -> list[tuple[str, re.Pattern[str], Callable[..., Awaitable[Response]]]]:
    """Compile a route table once: ``(method or "*", regex matched against the whole path, function)``."""
    return [(method, re.compile(pattern), fn) for method, pattern, fn in routes]


async def dispatch(table: Sequence[tuple[str, re.Pattern[str], Callable[..., Awaitable[Response]]]],
                   request: Request) -> Response:
    """Call the first route whose regex matches the path and whose method fits; named groups become
    keyword arguments. 404 when no path matches, 405 when only the method is wrong."""
    allowed: list[str] = []
    for method, pattern, fn in table:
        m = pattern.fullmatch(request.path)
        if m is None:
            continue
        if method in ("*", request.method) or (method == "GET" and request.method == "HEAD"):
            return await fn(request, **m.groupdict())
        allowed.append(method)
    if allowed:
        return json_response({"error": f"method {request.method} not allowed"}, 405,
                             [("allow", ", ".join(sorted(set(allowed))))])
    return json_response({"error": "Not found"}, 404)


@dataclass(frozen=True)
class Listening:
    """What :func:`serve_http` reports through ``task_status`` once it accepts connections."""

    address: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}"


async def serve_http(handler: Handler, *, address: str = "127.0.0.1", port: int = DEFAULT_PORT,
                     name: str = "http", access_log: bool = False,
                     task_status: trio.TaskStatus[Listening] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve ``handler`` on ``address:port`` until cancelled (port 0 picks a free port)."""
    listeners = await trio.open_tcp_listeners(port, host=address)
    bound = Listening(address, listeners[0].socket.getsockname()[1])
    log.info("%s ready on %s", name, bound.url)

    async def on_connection(stream: trio.SocketStream) -> None:
        try:
            peer = stream.socket.getpeername()[:2]
        except OSError:
            peer = None
        await _serve_connection(stream, handler, peer, access_log)

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, on_connection, listeners)
        task_status.started(bound)


async def _serve_connection(stream: trio.abc.Stream, handler: Handler,
                            peer: tuple[str, int] | None, access_log: bool) -> None:
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            try:
                request = await _read_request(stream, conn, peer)
            except h11.RemoteProtocolError as exc:
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    await _send(stream, conn, text_response(f"bad request: {exc}\n", exc.error_status_hint),
                                head=False)
                    await _linger(stream)
                return
            except _TooLarge:
                await _send(stream, conn, text_response("request body too large\n", 413), head=False)
                await _linger(stream)
                return
            if request is None:
                return
            try:
                response = await handler(request)
            except Exception:
                log.exception("%s %s failed", request.method, request.target)
                response = text_response("internal server error\n", 500)
            await _send(stream, conn, response, head=request.method == "HEAD")
            if access_log:
                _log_access(request, response)
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return  # the client went away; nothing to answer
    finally:
        await stream.aclose()


class _TooLarge(Exception):
    pass


async def _linger(stream: trio.abc.Stream) -> None:
    """Close gracefully after an error answer while the client may still be sending: half-close and
    drain its input for a bounded time, so the kernel does not reset the connection (RST) before the
    client has read our answer (RFC 9112 §9.6, "lingering close")."""
    with trio.move_on_after(LINGER_TIMEOUT):
        if isinstance(stream, trio.abc.HalfCloseableStream):
            await stream.send_eof()
        drained = 0
        while drained < LINGER_MAX_BYTES:
            chunk = await stream.receive_some(RECEIVE_SIZE)
            if not chunk:
                break
            drained += len(chunk)


async def _read_request(stream: trio.abc.Stream, conn: h11.Connection,
                        peer: tuple[str, int] | None) -> Request | None:
    head: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            if conn.they_are_waiting_for_100_continue:  # curl sends Expect: 100-continue for big bodies
                await stream.send_all(conn.send(h11.InformationalResponse(status_code=100, headers=[])))
            data = await stream.receive_some(RECEIVE_SIZE)
            if not data and conn.their_state is h11.IDLE and head is None:
                return None  # clean close between requests
            conn.receive_data(data)
        elif isinstance(event, h11.Request):
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_BODY:
                raise _TooLarge
        elif isinstance(event, h11.EndOfMessage):
            assert head is not None
            return Request(
                method=head.method.decode("ascii"),
                target=head.target.decode("ascii", "replace"),
                headers=tuple((k.decode("ascii").lower(), v.decode("latin-1")) for k, v in head.headers),
                body=bytes(body),
                client=peer,
                http_version=head.http_version.decode("ascii"),
            )
        elif isinstance(event, h11.ConnectionClosed):
            return None
        # h11.PAUSED cannot happen: we never read past EndOfMessage before start_next_cycle


async def _send(stream: trio.abc.Stream, conn: h11.Connection, response: Response, *, head: bool) -> None:
    names = {k.lower() for k, _ in response.headers}
    headers = list(response.headers)
    if "date" not in names:
        headers.append(("date", email.utils.formatdate(usegmt=True)))
    if "server" not in names:
        headers.append(("server", SERVER_HEADER))
    headers.append(("content-length", str(len(response.body))))
    try:
        reason = http.HTTPStatus(response.status).phrase.encode()
    except ValueError:
        reason = b""
    out = conn.send(h11.Response(status_code=response.status, headers=headers, reason=reason))
    if response.body and not head:
        out += conn.send(h11.Data(data=response.body))
    out += conn.send(h11.EndOfMessage())
    await stream.send_all(out)  # one write: head and body leave together


def _log_access(request: Request, response: Response) -> None:
    """One line per request in the Common Log Format extended with referer and user agent, as
    gunicorn's ``--access-logfile -`` prints for httpbin in the mirroring task (E:1193-1197)."""
    client = request.client[0] if request.client else "-"
    when = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime())
    log.info('%s - - [%s] "%s %s HTTP/%s" %d %d "%s" "%s"', client, when, request.method, request.target,
             request.http_version, response.status, len(response.body),
             request.header("referer", "-"), request.header("user-agent", "-"))


# --- the shared ``main`` body -------------------------------------------------------------------


def add_server_arguments(parser: Any, *, default_port: int = DEFAULT_PORT) -> None:
    """``--address`` and ``--port`` for an argparse parser (every example server has them)."""
    parser.add_argument("--address", default="127.0.0.1",
                        help="IP address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=default_port,
                        help=f"TCP port to listen on (default {default_port})")
    parser.add_argument("--access-log", action="store_true", help="log one line per request")


def run_server(handler: Handler, *, name: str, address: str, port: int, access_log: bool = False) -> int:
    """Run one example server in the foreground until SIGTERM/SIGINT; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    async def main() -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:
                await nursery.start(lambda task_status: serve_http(
                    handler, address=address, port=port, name=name, access_log=access_log,
                    task_status=task_status))
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    break

    failed = False
    try:
        trio.run(main)
    except* OSError as group:  # most often: the address is in use or not assignable
        log.error("%s: cannot listen on %s:%d: %s", name, address, port, group.exceptions[0])
        failed = True
    return 1 if failed else 0
