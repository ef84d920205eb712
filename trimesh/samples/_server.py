"""The sample services' side of HTTP: their handlers run on the project's one HTTP/1.1 helper,
:mod:`trimesh.service` (h11), and this module adds only what the samples share on top of it.

Theory of operation: :func:`serve_sample` runs a handler on a :class:`trimesh.service.HttpService`
— which reads each request (RFC 9112, keep-alive and pipelining, ``Expect: 100-continue``), answers
a malformed request with 400, a body over :data:`MAX_BODY` with 413 (lingering close), a handler's
exception with 500 (logged, the service keeps serving) and sends each response with a
``Content-Length`` — with the samples' ``server`` header, then logs the sample's own ready line
naming its URL (``details v1 ready on http://127.0.0.3:9080``, what launchers and tests wait for)
and, with ``access_log``, one Common Log Format line per request. The applications are plain async
callables ``handler(request) -> Response`` on the service's :class:`~trimesh.service.Request` and
:class:`~trimesh.service.Response`; :func:`dispatch` maps a request to one of a table of
``(method, path regex, function)`` routes; :func:`request_cookies` and :func:`form_fields` read
what the BookInfo and httpbin handlers need. :func:`run_server` is the shared ``main`` body:
logging, SIGTERM/SIGINT handling (exit status 0, as a well-behaved app under a sidecar should) and
``trio.run``.
"""

from __future__ import annotations

import json
import logging
import re
import signal
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import trio

from ..errors import TrimeshError
from ..service import HttpService, Request, Response

log = logging.getLogger("trimesh.samples")

DEFAULT_PORT = 9080  # every BookInfo service listens on 9080 (BookInfo guide, E:140-144)
MAX_BODY = 1 << 20  # sample requests are tiny; refuse anything larger with 413 at once (no discard)
SERVER_HEADER = "trimesh-example"


def request_cookies(request: Request) -> dict[str, str]:
    """The request's cookies (every ``Cookie`` header; the first value of a repeated name)."""
    jar: dict[str, str] = {}
    for name, value in request.headers:
        if name != "cookie":
            continue
        for part in value.split(";"):
            key, sep, val = part.strip().partition("=")
            if sep and key:
                jar.setdefault(key, val)
    return jar


def cookie_header(request: Request) -> str | None:
    """Every ``Cookie`` header of the request as one value, joined with "; " (RFC 6265 §5.4)."""
    values = [v for k, v in request.headers if k == "cookie"]
    return "; ".join(values) if values else None


def form_fields(request: Request) -> dict[str, str]:
    """Form fields of a urlencoded body, falling back to the query string (first value each)."""
    fields = {k: v[0] for k, v in request.query.items()}
    ctype = (request.header("content-type") or "").split(";")[0].strip().lower()
    if request.body and ctype in ("application/x-www-form-urlencoded", ""):
        parsed = urllib.parse.parse_qs(request.body.decode("utf-8", "replace"), keep_blank_values=True)
        fields.update({k: v[0] for k, v in parsed.items()})
    return fields


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


async def serve_sample(handler: Handler, *, address: str = "127.0.0.1", port: int = DEFAULT_PORT,
                       name: str = "http", access_log: bool = False,
                       task_status: trio.TaskStatus[HttpService] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve ``handler`` on ``address:port`` until cancelled (port 0 picks a free port);
    ``task_status.started`` gets the :class:`~trimesh.service.HttpService` (its ``url``)."""
    app = _logged(handler) if access_log else handler
    service = HttpService(app, name=name, max_body=MAX_BODY, discard_limit=MAX_BODY,
                          server_header=SERVER_HEADER,
                          ready_level=logging.DEBUG)  # the sample's own line below names the URL
    listeners = await service.listen(address, port)
    log.info("%s ready on %s", name, service.url)
    await service.serve_listeners(listeners, task_status=task_status)


def _logged(handler: Handler) -> Handler:
    async def logged(request: Request) -> Response:
        try:
            response = await handler(request)
        except Exception:
            _log_access(request, 500, 0)
            raise
        _log_access(request, response.status, len(response.body))
        return response
    return logged


def _log_access(request: Request, status: int, size: int) -> None:
    """One line per request in the Common Log Format extended with referer and user agent, as
    gunicorn's ``--access-logfile -`` prints for httpbin in the mirroring task (E:1193-1197)."""
    client = request.client[0] if request.client else "-"
    when = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime())
    log.info('%s - - [%s] "%s %s HTTP/%s" %d %d "%s" "%s"', client, when, request.method, request.target,
             request.http_version, status, size,
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
                await nursery.start(lambda task_status: serve_sample(
                    handler, address=address, port=port, name=name, access_log=access_log,
                    task_status=task_status))
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    break

    failed = False
    try:
        trio.run(main)
    except* TrimeshError as group:  # the service cannot bind: the address is in use or not ours
        log.error("%s", group.exceptions[0])
        failed = True
    return 1 if failed else 0
