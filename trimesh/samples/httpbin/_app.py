"""An httpbin-like service: the endpoints the Istio docs' tasks call, with httpbin.org's JSON shapes.

- ``/headers`` → ``{"headers": {...}}``; ``/ip`` → ``{"origin": ...}``; ``/user-agent``;
- ``/get`` → ``{"args", "headers", "origin", "url"}``; ``/post`` and ``/anything[/...]`` add
  ``data``, ``files``, ``form``, ``json`` (and ``method`` for ``/anything``);
- ``/status/<code>`` answers that status with an empty body (``/status/200,503`` or
  ``/status/200:0.9,503:0.1`` pick one at random, weighted, as httpbin does);
- ``/delay/<n>`` waits ``n`` seconds, at most :data:`MAX_DELAY` (httpbin's cap), then echoes like
  ``/get``.

Header names are shown title-cased (``X-B3-Traceid``), responses are pretty-printed sorted JSON and
carry httpbin's CORS headers, so the docs' sample outputs (circuit-breaking task L1577-L1600,
mirroring task E:1179-1190) look the same. Unlike httpbin.org, no "environment" header (``X-Request-Id``,
``X-Forwarded-*``) is hidden: in a mesh those are exactly what one wants to see. Each request is logged
as one access-log line by default, like the docs' gunicorn ``--access-logfile -``.
"""

from __future__ import annotations

import argparse
import json
import random
from typing import Any

import trio

from .._server import (Request, Response, add_server_arguments, compile_routes, dispatch, form_fields,
                       run_server)

MAX_DELAY = 10.0  # httpbin: delay = min(float(delay), 10)
DEFAULT_PORT = 8000  # the httpbin Service port in the ingress and circuit-breaking tasks
CORS_HEADERS = (("access-control-allow-origin", "*"), ("access-control-allow-credentials", "true"))
REDIRECT_CODES = {301, 302, 303, 305, 307}


def title_case(name: str) -> str:
    """``x-b3-traceid`` → ``X-B3-Traceid``, as werkzeug presents header names to httpbin."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def _json(obj: Any, status: int = 200) -> Response:
    body = (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()
    return Response(status, [("content-type", "application/json"), *CORS_HEADERS], body)


def _empty(status: int, extra: tuple[tuple[str, str], ...] = (), body: bytes = b"") -> Response:
    return Response(status, [("content-type", "text/html; charset=utf-8"), *CORS_HEADERS, *extra], body)


class HttpBin:
    """The httpbin-like service as an HTTP handler."""

    def __init__(self, version: str = "v1", *, rng: random.Random | None = None,
                 max_delay: float = MAX_DELAY) -> None:
        self.version = version
        self.max_delay = max_delay
        self._rng = rng or random.Random()
        self._served = 0
        self._by_status: dict[int, int] = {}
        self._routes = compile_routes([
            ("GET", r"/", self._index),
            ("GET", r"/headers", self._headers),
            ("GET", r"/ip", self._ip),
            ("GET", r"/user-agent", self._user_agent),
            ("GET", r"/get", self._get),
            ("POST", r"/post", self._post),
            ("*", r"/anything(?:/.*)?", self._anything),
            ("*", r"/status/(?P<codes>[^/]+)", self._status),
            ("*", r"/delay/(?P<delay>[0-9]+(?:\.[0-9]*)?)", self._delay),
        ])

    def statistics(self) -> dict[str, Any]:
        return {"version": self.version, "requests": self._served, "by_status": dict(self._by_status)}

    def __repr__(self) -> str:
        return f"<HttpBin {self.version} requests={self._served}>"

    async def __call__(self, request: Request) -> Response:
        self._served += 1
        response = await dispatch(self._routes, request)
        self._by_status[response.status] = self._by_status.get(response.status, 0) + 1
        return response

    # --- the echo dictionary (httpbin's get_dict) ----------------------------------------------

    def _echo(self, request: Request, *keys: str) -> dict[str, Any]:
        everything: dict[str, Any] = {
            "args": {k: v[0] if len(v) == 1 else v for k, v in request.query.items()},
            "headers": self._header_dict(request),
            "origin": self._origin(request),
            "url": self._url(request),
            "method": request.method,
        }
        if {"data", "form", "json", "files"} & set(keys):
            ctype = (request.header("content-type") or "").split(";")[0].strip().lower()
            form: dict[str, Any] = {}
            data = ""
            if ctype == "application/x-www-form-urlencoded":
                form = {k: v for k, v in form_fields(request).items() if k not in request.query}
            else:
                data = request.body.decode("utf-8", "replace")
            try:
                parsed = json.loads(request.body) if request.body else None
            except ValueError:
                parsed = None
            everything.update({"data": data, "form": form, "files": {}, "json": parsed})
        return {k: everything[k] for k in keys}

    @staticmethod
    def _header_dict(request: Request) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, value in request.headers:
            key = title_case(name)
            out[key] = f"{out[key]},{value}" if key in out else value
        return out

    @staticmethod
    def _origin(request: Request) -> str:
        forwarded = request.header("x-forwarded-for")
        if forwarded:
            return forwarded
        return request.client[0] if request.client else ""

    @staticmethod
    def _url(request: Request) -> str:
        if "://" in request.target:
            return request.target  # absolute form, e.g. through a proxy
        return f"http://{request.header('host', 'localhost')}{request.target}"

    # --- routes --------------------------------------------------------------------------------

    async def _index(self, request: Request) -> Response:
        return _empty(200, body=b"<!DOCTYPE html><html><body><h1>httpbin (trimesh example)</h1>"
                                b"<p>/headers /ip /user-agent /get /post /anything /status/CODE "
                                b"/delay/SECONDS</p></body></html>\n")

    async def _headers(self, request: Request) -> Response:
        return _json(self._echo(request, "headers"))

    async def _ip(self, request: Request) -> Response:
        return _json(self._echo(request, "origin"))

    async def _user_agent(self, request: Request) -> Response:
        return _json({"user-agent": request.header("user-agent")})

    async def _get(self, request: Request) -> Response:
        return _json(self._echo(request, "args", "headers", "origin", "url"))

    async def _post(self, request: Request) -> Response:
        return _json(self._echo(request, "args", "data", "files", "form", "headers", "json", "origin", "url"))

    async def _anything(self, request: Request) -> Response:
        return _json(self._echo(request, "args", "data", "files", "form", "headers", "json", "method",
                                "origin", "url"))

    async def _delay(self, request: Request, delay: str) -> Response:
        await trio.sleep(min(float(delay), self.max_delay))
        return _json(self._echo(request, "args", "data", "files", "form", "headers", "origin", "url"))

    async def _status(self, request: Request, codes: str) -> Response:
        choices: list[tuple[int, float]] = []
        try:
            for item in codes.split(","):
                code, _, weight = item.partition(":")
                choices.append((int(code), float(weight) if weight else 1.0))
        except ValueError:
            return _empty(400, body=b"Invalid status code")
        if any(not 100 <= c <= 599 for c, _ in choices):
            return _empty(400, body=b"Invalid status code")
        if len(choices) == 1:
            code = choices[0][0]
        else:
            code = self._rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]
        if code in REDIRECT_CODES:
            return _empty(code, (("location", "/redirect/1"),))
        if code == 401:
            return _empty(code, (("www-authenticate", 'Basic realm="Fake Realm"'),))
        if code == 418:
            return _empty(code, (("x-more-info", "http://tools.ietf.org/html/rfc2324"),), b"I'm a teapot\n")
        return _empty(code)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trimesh.samples.httpbin",
                                     description="An httpbin-like HTTP service")
    add_server_arguments(parser, default_port=DEFAULT_PORT)
    parser.add_argument("--version", default="v1", help="the version label it runs as (for its log line)")
    parser.add_argument("--quiet", action="store_true", help="no access log")
    args = parser.parse_args(argv)
    return run_server(HttpBin(args.version), name=f"httpbin {args.version}", address=args.address,
                      port=args.port, access_log=not args.quiet)
