"""The one small async HTTP/1.1 client the example services use for upstream calls (Trio + h11).

Theory of operation: an example app calls other services by their mesh names
(``http://reviews:9080/reviews/0``). Inside the mesh those names only exist for the sidecar, so when
``HTTP_PROXY``/``http_proxy`` is set (the sidecar sets it for the app it starts, CLI.md) the request is
sent to the proxy in absolute form, RFC 9112 §3.2.2 (``GET http://reviews:9080/reviews/0 HTTP/1.1``
with ``Host: reviews:9080``) and the sidecar routes it. Without a proxy the client connects to the
URL's host directly, which is how the services run and are tested without a mesh.

:func:`fetch` makes one request on a fresh connection under one deadline (connect, send, and read the
whole response), like ``requests.get(url, timeout=...)`` in the Istio sample's productpage. Failures
of any kind (refused, reset, malformed response, deadline) are translated once, here, into
:class:`FetchError`. :class:`HttpConnection` keeps one connection alive across requests for the load
client.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import h11
import trio

RECEIVE_SIZE = 65536
USER_AGENT = "trimesh-example/0.1"


class FetchError(Exception):
    """An upstream call failed: no connection, a broken or malformed response, or the deadline."""


@dataclass(frozen=True)
class FetchResponse:
    status: int
    headers: tuple[tuple[str, str], ...]  # lower-case names
    body: bytes
    reason: str = ""
    http_version: str = "1.1"

    def header(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        values = [v for k, v in self.headers if k == name]
        return ", ".join(values) if values else default

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Proxy:
    host: str
    port: int


def proxy_from_environ(environ: Mapping[str, str] | None = None, *, for_host: str | None = None) -> Proxy | None:
    """The HTTP proxy named by ``HTTP_PROXY``/``http_proxy`` (lower case wins, as curl does), unless
    ``NO_PROXY``/``no_proxy`` exempts ``for_host`` (``*``, exact names, or domain suffixes)."""
    env = os.environ if environ is None else environ
    value = env.get("http_proxy") or env.get("HTTP_PROXY")
    if not value:
        return None
    if for_host is not None and no_proxy_matches(env.get("no_proxy") or env.get("NO_PROXY") or "", for_host):
        return None
    if "://" not in value:
        value = "http://" + value
    parts = urllib.parse.urlsplit(value)
    if not parts.hostname:
        raise ValueError(f"HTTP_PROXY={value!r} names no host")
    return Proxy(parts.hostname, parts.port or 80)


def no_proxy_matches(no_proxy: str, host: str) -> bool:
    """True when a ``NO_PROXY`` value (comma-separated names, domain suffixes, or ``*``) exempts host."""
    host = host.lower()
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        entry = entry.lstrip(".")
        if host == entry or host.endswith("." + entry):
            return True
    return False


def split_url(url: str) -> tuple[str, int, str, str]:
    """``http://h:p/x?y`` → (host, port, authority, origin-form target)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise FetchError(f"only http:// URLs with a host are supported, got {url!r}")
    port = parts.port or 80
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return parts.hostname, port, parts.netloc, target


class HttpConnection:
    """One HTTP/1.1 client connection that can carry several requests in turn (keep-alive)."""

    def __init__(self, stream: trio.abc.Stream, peer: str) -> None:
        self._stream = stream
        self._conn = h11.Connection(h11.CLIENT)
        self._peer = peer
        self._requests = 0

    @classmethod
    async def connect(cls, host: str, port: int) -> HttpConnection:
        try:
            stream = await trio.open_tcp_stream(host, port)
        except OSError as exc:
            raise FetchError(f"cannot connect to {host}:{port}: {exc}") from exc
        return cls(stream, f"{host}:{port}")

    @property
    def reusable(self) -> bool:
        """True when another request may be sent on this connection."""
        states = (self._conn.our_state, self._conn.their_state)
        return states in ((h11.IDLE, h11.IDLE), (h11.DONE, h11.DONE))

    def statistics(self) -> dict[str, Any]:
        return {"peer": self._peer, "requests": self._requests, "reusable": self.reusable}

    def __repr__(self) -> str:
        return f"<HttpConnection {self._peer} requests={self._requests} reusable={self.reusable}>"

    async def request(self, method: str, target: str, headers: Iterable[tuple[str, str]],
                      body: bytes = b"") -> FetchResponse:
        """Send one request and read the whole response. Raises :class:`FetchError`."""
        if self._conn.our_state is h11.DONE and self._conn.their_state is h11.DONE:
            self._conn.start_next_cycle()
        hdrs = list(headers)
        if body or method in ("POST", "PUT", "PATCH"):
            hdrs.append(("content-length", str(len(body))))
        self._requests += 1
        try:
            await self._stream.send_all(self._conn.send(h11.Request(method=method, target=target,
                                                                    headers=hdrs)))
            if body:
                await self._stream.send_all(self._conn.send(h11.Data(data=body)))
            await self._stream.send_all(self._conn.send(h11.EndOfMessage()))
            return await self._read_response(method)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise FetchError(f"connection to {self._peer} broke: {exc}") from exc
        except h11.ProtocolError as exc:
            raise FetchError(f"bad HTTP from {self._peer}: {exc}") from exc

    async def _read_response(self, method: str) -> FetchResponse:
        head: h11.Response | None = None
        body = bytearray()
        while True:
            event = self._conn.next_event()
            if event is h11.NEED_DATA:
                self._conn.receive_data(await self._stream.receive_some(RECEIVE_SIZE))
            elif isinstance(event, h11.Response):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                if self._conn.our_state is h11.MUST_CLOSE or self._conn.their_state is h11.MUST_CLOSE:
                    await self.aclose()
                return FetchResponse(
                    status=head.status_code,
                    headers=tuple((k.decode("ascii").lower(), v.decode("latin-1")) for k, v in head.headers),
                    body=bytes(body),
                    reason=head.reason.decode("latin-1"),
                    http_version=head.http_version.decode("ascii"),
                )
            elif isinstance(event, h11.ConnectionClosed):
                raise FetchError(f"{self._peer} closed the connection before a complete response")
            # informational responses (1xx) are skipped: the final response follows

    async def aclose(self) -> None:
        await self._stream.aclose()


async def fetch(url: str, *, method: str = "GET", headers: Iterable[tuple[str, str]] = (),
                body: bytes = b"", timeout: float, proxy: Proxy | None = None) -> FetchResponse:
    """One request on a fresh connection, all of it within ``timeout`` seconds.

    With ``proxy`` the request goes to the proxy in absolute form; otherwise straight to the URL's
    host. ``Host`` always names the URL's authority (``reviews:9080``). Raises :class:`FetchError`.
    """
    host, port, authority, target = split_url(url)
    if proxy is not None:
        host, port, target = proxy.host, proxy.port, url
    hdrs = [("host", authority)]
    names = set()
    for k, v in headers:
        names.add(k.lower())
        if k.lower() != "host":
            hdrs.append((k, v))
    if "user-agent" not in names:
        hdrs.append(("user-agent", USER_AGENT))
    hdrs.append(("connection", "close"))
    with trio.move_on_after(timeout) as scope:
        conn = await HttpConnection.connect(host, port)
        try:
            return await conn.request(method, target, hdrs, body)
        finally:
            with trio.CancelScope(shield=True):
                await conn.aclose()
    assert scope.cancelled_caught
    raise FetchError(f"{method} {url} timed out after {timeout:g}s")
