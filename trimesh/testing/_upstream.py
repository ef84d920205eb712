"""A fake upstream HTTP/1.1 server for end-to-end tests and benchmarks.

It stands in for an application behind a sidecar (BookInfo's ``reviews-v2``, httpbin, ...): a real
Trio TCP listener on a loopback address, HTTP/1.1 with keep-alive, served by
:class:`trimesh.service.HttpService` on h11 (the reference codec: the point is to be an
*independent* peer of the proxy's httptools codec, not a fast one). Closing without an answer and
hanging use the service's :class:`~trimesh.service.Takeover` hook (the raw connection).

Every answer is a small JSON document naming the instance and echoing the request, so a test can see
which version served it and what the proxy sent (Host, ``x-request-id``, appended headers)::

    {"name": "reviews-v2", "service": "reviews", "version": "v2", "method": "GET",
     "path": "/reviews/0", "host": "reviews:9080", "headers": {"x-request-id": "...", ...},
     "count": 17}

Behaviour is chosen per process (constructor arguments / command-line flags) and can be overridden
per request by headers, so one long-lived process serves many test cases:

=========================  =====================================================================
``x-upstream-delay: S``    sleep S seconds (float) before answering
``x-upstream-status: N``   answer with status N instead of 200
``x-upstream-fail: N``     the first N requests carrying the same ``x-upstream-key`` (or, without
                           that header, the first N requests the process sees) fail; after that
                           requests succeed. How they fail is ``x-upstream-fail-with``.
``x-upstream-fail-with``   ``500``/``503``/any status (default 503), ``close`` (drop the
                           connection without answering), ``hang`` (never answer; the request
                           stays open until the client gives up), ``delay:S`` (answer 200 after S s)
``x-upstream-close: 1``    close the connection without answering
``x-upstream-hang: 1``     never answer
=========================  =====================================================================

Requests are recorded (method, path, headers, arrival time) on arrival, before any delay or hang,
so a test can count what reached an instance — including mirrored requests that never get an answer.
Paths under ``/_upstream/`` are the fake's own control endpoints, never recorded, never failed:
``GET /_upstream/requests`` (the recorded requests), ``GET /_upstream/stats`` (``statistics()``),
``POST /_upstream/reset`` (forget requests and failure counters).

Run it in-process with ``nursery.start(serve_upstream, upstream, host, port)`` or as a process::

    python -m trimesh.testing.upstream --address 127.0.0.2 --port 9080 --name reviews-v2 \\
        --service reviews --version v2 [--delay S] [--fail-first N --fail-with 503] [--hang]

The process prints one line when it listens (``fake upstream reviews-v2 listening on
http://127.0.0.2:9080``) and exits on SIGTERM/SIGINT (no graceful drain: it is a test fake).
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import sys
import time
from dataclasses import dataclass, field

import trio

from ..errors import TrimeshError
from ..service import HttpService, Request, Response, Takeover, json_error

RECEIVE_SIZE = 65536
MAX_RECORDED = 20000  # bounded memory for long benchmark runs
MAX_BODY = 64 * 1024 * 1024  # bytes of a request body (counted, then dropped); beyond: 413
NO_TIMEOUT = math.inf  # a fake never times a client out (tests decide; virtual time is safe)
CONTROL_PREFIX = "/_upstream/"
DEFAULT_FAIL_STATUS = 503  # what Envoy's "retriable 5xx" tests usually see


@dataclass
class _Plan:
    """What to do with one request."""

    action: str = "answer"  # answer | close | hang
    status: int = 200
    delay: float = 0.0


@dataclass
class FakeUpstream:
    """State and default behaviour of one fake upstream instance (see the module docstring)."""

    name: str = "upstream"
    service: str = ""
    version: str = ""
    delay: float = 0.0
    status: int = 200
    fail_first: int = 0
    fail_with: str = str(DEFAULT_FAIL_STATUS)
    hang: bool = False
    close: bool = False
    record: bool = True
    requests: collections.deque = field(
        init=False, default_factory=lambda: collections.deque(maxlen=MAX_RECORDED))
    _fail_counts: dict = field(init=False, default_factory=dict)
    _served: int = field(init=False, default=0)
    _hanging: int = field(init=False, default=0)
    _http: HttpService = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _parse_fail_with(self.fail_with)  # validate early: a typo in a flag is a usage error
        self._http = HttpService(self._handle, name=f"fake upstream {self.name}",
                                 max_body=MAX_BODY, discard_limit=MAX_BODY,
                                 idle_timeout=NO_TIMEOUT, header_timeout=NO_TIMEOUT,
                                 body_timeout=NO_TIMEOUT, error_response=json_error)

    # -- decisions (pure given the request headers) ------------------------------------------

    def plan(self, headers: dict[str, str]) -> _Plan:
        """Decide what to do with a request carrying these (lower-case) headers."""
        fail_n = int(headers.get("x-upstream-fail", self.fail_first))
        if fail_n > 0:
            key = headers.get("x-upstream-key", "")
            seen = self._fail_counts.get(key, 0) + 1
            self._fail_counts[key] = seen
            if seen <= fail_n:
                return _parse_fail_with(headers.get("x-upstream-fail-with", self.fail_with))
        if headers.get("x-upstream-hang", "1" if self.hang else "") == "1":
            return _Plan(action="hang")
        if headers.get("x-upstream-close", "1" if self.close else "") == "1":
            return _Plan(action="close")
        return _Plan(status=int(headers.get("x-upstream-status", self.status)),
                     delay=float(headers.get("x-upstream-delay", self.delay)))

    def answer_body(self, method: str, path: str, headers: dict[str, str]) -> bytes:
        return json.dumps({
            "name": self.name, "service": self.service, "version": self.version,
            "method": method, "path": path, "host": headers.get("host", ""),
            "headers": headers, "count": self._served,
        }).encode()

    def reset(self) -> None:
        self.requests.clear()
        self._fail_counts.clear()
        self._served = 0

    def statistics(self) -> dict:
        http = self._http.statistics()
        return {"name": self.name, "recorded": len(self.requests), "served": self._served,
                "connections": http["connections"], "open_connections": http["open_connections"],
                "hanging": self._hanging}

    def __repr__(self) -> str:
        return (f"<FakeUpstream {self.name} served={self._served} "
                f"open_connections={self._http.statistics()['open_connections']} "
                f"hanging={self._hanging}>")

    # -- the handler (trimesh.service) -------------------------------------------------------

    async def _handle(self, request: Request) -> Response | Takeover:
        method, path = request.method, request.target
        headers: dict[str, str] = {}
        for key, text in request.headers:
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        if path.startswith(CONTROL_PREFIX):
            status, text = _control(self, method, path)
            return self._response(status, text.encode())
        if self.record:
            self.requests.append({"method": method, "path": path, "headers": headers,
                                  "body_size": len(request.body), "time": time.time()})
        try:
            plan = self.plan(headers)
        except ValueError as exc:  # a malformed x-upstream-* header from the test
            plan = _Plan(status=400)
            headers["x-upstream-error"] = str(exc)
        if plan.action == "hang":
            return Takeover(self._hang)
        if plan.action == "close":
            return Takeover(None)
        if plan.delay > 0:
            await trio.sleep(plan.delay)
        self._served += 1
        return self._response(plan.status, self.answer_body(method, path, headers))

    def _response(self, status: int, body: bytes) -> Response:
        return Response(status, [("content-type", "application/json"),
                                 ("x-upstream-name", self.name)], body)

    async def _hang(self, stream: trio.abc.Stream) -> None:
        """Never answer: read and discard until the client closes the connection."""
        self._hanging += 1
        try:
            while await stream.receive_some(RECEIVE_SIZE):
                pass
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            self._hanging -= 1


def _parse_fail_with(text: str) -> _Plan:
    text = text.strip()
    if text in ("close", "hang"):
        return _Plan(action=text)
    if text.startswith("delay:"):
        return _Plan(delay=float(text[len("delay:"):]))
    try:
        status = int(text)
    except ValueError:
        raise ValueError(f"fail-with must be a status, 'close', 'hang' or 'delay:SECONDS', "
                         f"not {text!r}") from None
    return _Plan(status=status)


# -- the Trio shell --------------------------------------------------------------------------


def _control(upstream: FakeUpstream, method: str, path: str):
    if path.startswith(CONTROL_PREFIX + "requests"):
        return 200, json.dumps({"name": upstream.name, "requests": list(upstream.requests)})
    if path.startswith(CONTROL_PREFIX + "stats"):
        return 200, json.dumps(upstream.statistics())
    if path.startswith(CONTROL_PREFIX + "reset") and method == "POST":
        upstream.reset()
        return 200, json.dumps({"reset": upstream.name})
    return 404, json.dumps({"error": f"unknown control endpoint {method} {path}"})


async def _serve_connection(stream: trio.abc.Stream, upstream: FakeUpstream) -> None:
    """Serve one already-open connection (a TLS stream in the pool tests)."""
    await upstream._http.serve_connection(stream)


async def serve_upstream(upstream: FakeUpstream, host: str = "127.0.0.1", port: int = 0, *,
                         task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Serve ``upstream`` on ``host:port`` until cancelled; ``task_status.started(port)`` reports
    the bound port (useful with ``port=0``)."""
    service = upstream._http
    listeners = await service.listen(host, port)
    print(f"fake upstream {upstream.name} listening on http://{host}:{service.port}", flush=True)
    task_status.started(service.port)
    await service.serve_listeners(listeners)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m trimesh.testing.upstream",
                                description="Fake upstream HTTP server for trimesh tests.")
    p.add_argument("--address", default="127.0.0.1", help="IP to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, required=True, help="port to bind (0 = any)")
    p.add_argument("--name", default="upstream", help="instance name reported in every answer")
    p.add_argument("--service", default="", help="service name reported in every answer")
    p.add_argument("--version", default="", help="version label reported in every answer")
    p.add_argument("--delay", type=float, default=0.0, help="seconds to wait before answering")
    p.add_argument("--status", type=int, default=200, help="status of normal answers")
    p.add_argument("--fail-first", type=int, default=0, help="fail the first N requests")
    p.add_argument("--fail-with", default=str(DEFAULT_FAIL_STATUS),
                   help="how to fail: a status, 'close', 'hang' or 'delay:SECONDS'")
    p.add_argument("--hang", action="store_true", help="never answer")
    p.add_argument("--close", action="store_true", help="close connections without answering")
    p.add_argument("--no-record", action="store_true", help="do not record requests (benchmarks)")
    args = p.parse_args(argv)
    try:
        _parse_fail_with(args.fail_with)
    except ValueError as exc:
        p.error(str(exc))
    return args


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    upstream = FakeUpstream(name=args.name, service=args.service, version=args.version,
                            delay=args.delay, status=args.status, fail_first=args.fail_first,
                            fail_with=args.fail_with, hang=args.hang, close=args.close,
                            record=not args.no_record)
    try:
        trio.run(serve_upstream, upstream, args.address, args.port)
    except KeyboardInterrupt:
        pass
    except TrimeshError as exc:  # "fake upstream NAME: cannot listen on ADDRESS:PORT: ..."
        print(exc, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
