"""Embedding the mesh in a Python app: ``open_mesh`` (Trio, in-process) and ``start_in_thread``.

``async with trimesh.open_mesh(service="productpage", registry=..., config=[...]) as mesh:`` runs
a sidecar's supervision tree (trimesh/sidecar/_sidecar.py) WITHOUT its listeners: the config
sources, the snapshot builder, the telemetry flusher (and an admin server with ``admin_port``).
``await mesh.request("GET", "http://reviews:9080/x")`` then goes through the very same
``OutboundProxy`` handler an outbound listener runs — RouteRule matching and weighted picks
(``trimesh.routing``), DestinationPolicy balancers, circuit breakers, retries, timeouts, faults,
mirroring, the access log — but with no socket between the app and the proxy.

How, without a second copy of the proxy: ``OutboundProxy`` is an ``async (down, head) -> bool``
handler over a *Downstream* (trimesh/proxy/_server.py's documented handler contract: the handler
reads the body with ``down.next_event()``, writes the response to ``down.stream.send_all`` and
asks ``down.server`` to ``arm``/``disarm`` the route deadline). :class:`_MemoryDownstream` is that
contract in memory: the request is rendered once and fed to the proxy's own ``RequestParser``;
what the handler writes is fed to a ``ResponseParser``. Route timeouts use a cancel scope per
request whose deadline ``arm`` sets, so the handler's own "deadline expired → 504 UT" path runs
unchanged. Everything upstream of the handler (pool, codec, retry loop) is the proxy's code.

``start_in_thread(service=..., ...)`` is for apps that are not Trio (plain scripts, threads,
asyncio): it runs the same tree WITH an outbound listener on ``127.0.0.1:0`` in a background
thread (its own ``trio.run``) and returns a :class:`MeshThread` whose ``proxy_url`` goes into
``HTTP_PROXY`` (``set_env=True`` does that for the process, and ``NO_PROXY`` for loopback);
``stop()`` drains and joins the thread.

Membership (``join=[...]``) is the sidecar's own gossip member (trimesh/sidecar/_gossip.py,
``install_gossip``): the embedded member learns instances and config from gossip and announces no
instance of its own (it serves nothing). ``registry=`` / ``control=`` / ``instances=`` work with or
without it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import trio

from .config import DEFAULT_DOMAIN, DEFAULT_NAMESPACE, ConfigObject, ServiceInstance
from .errors import ConfigError, TrimeshError, UpstreamError
from .nursery import local_no_proxy
from .proxy import FLAGS_HEADER, Http1Answers, RequestParser, ResponseHead, ResponseParser
from .sidecar import Sidecar, SidecarConfig

CERT_TIMEOUT = 10.0  # seconds open_mesh(certs=...) waits for the first certificate

DEFAULT_CLIENT_ADDRESS = "127.0.0.1"  # x-forwarded-for of in-process requests
STREAM_BUFFER = 1  # response writes in flight between the proxy task and a streaming reader
THREAD_START_TIMEOUT = 30.0  # seconds start_in_thread waits for the tree to be ready
_CRLF = b"\r\n"


# -- the in-memory Downstream -------------------------------------------------------------------

class _MemoryServer:
    """What the handler asks of ``down.server``: drain state and the route deadline."""

    draining = False

    @staticmethod
    def arm(down: _MemoryDownstream, key: object, deadline: float, *_: object) -> None:
        # A cancel scope per request (not the listener's shared timer): when it fires, the
        # handler's "deadline expired" branch answers 504 UT through ``stream.sock.send``.
        down.armed = deadline
        down.scope.deadline = deadline

    @staticmethod
    def disarm(down: _MemoryDownstream) -> None:
        if down.armed is not None:
            down.armed = None
            down.scope.deadline = float("inf")


_SERVER = _MemoryServer()


class _Socket:
    """``down.stream.sock``: the handler's synchronous last-gasp write (a 504 after the deadline
    cancelled it)."""

    __slots__ = ("_feed",)

    def __init__(self, feed: Callable[[bytes], None]) -> None:
        self._feed = feed

    def send(self, data: bytes) -> int:
        self._feed(data)
        return len(data)


class _MemoryStream:
    """``down.stream``: request body chunks in, response bytes out."""

    __slots__ = ("_body", "_send", "sock")

    def __init__(self, body: AsyncIterator[bytes] | None, send, feed) -> None:
        self._body = body
        self._send = send
        self.sock = _Socket(feed)

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._body is None:
            return b""
        try:
            chunk = await self._body.__anext__()
        except StopAsyncIteration:
            self._body = None
            return b"0\r\n\r\n"
        return b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunk else await self.receive_some()

    async def send_all(self, data: bytes) -> None:
        await self._send(data)

    def close(self) -> None:
        pass


class _MemoryDownstream(Http1Answers):
    """One in-memory request/response exchange shaped like trimesh.proxy's Downstream."""

    __slots__ = ("armed", "client", "peer", "client_gone", "parser", "response", "response_started",
                 "scope", "server", "soft", "stream", "upstream")

    def __init__(self, client: str, body: AsyncIterator[bytes] | None, send=None) -> None:
        self.response = ResponseParser()
        self.parser = RequestParser()
        self.client = client
        self.peer = None  # an in-process caller presents no certificate
        self.response_started = False
        self.server = _SERVER
        self.scope = trio.CancelScope()
        self.armed: float | None = None
        self.upstream = None  # the upstream connection in use (set by the pool's exchange)
        self.soft = False
        self.client_gone = False  # an in-process caller cannot vanish mid-request
        self.stream = _MemoryStream(body, send or self._feed_async, self.response.feed)

    @property
    def expired(self) -> bool:
        return self.armed is not None and trio.current_time() >= self.armed

    async def _feed_async(self, data: bytes) -> None:
        self.response.feed(data)

    async def next_event(self):
        events = self.parser.events
        while not events:
            data = await self.stream.receive_some()
            if not data:
                raise UpstreamError("the request body ended early")
            self.parser.feed(data)
        return events.popleft()

    async def discard_body(self) -> bool:
        while True:
            _, ev = await self.next_event()
            if ev is None:
                return True


# -- requests ---------------------------------------------------------------------------------

def _find_header(headers: list[tuple[str, str]], name: str, default: str | None) -> str | None:
    """The first value of field ``name`` (any case) in lower-cased ``headers``, else ``default``."""
    name = name.lower()
    for n, v in headers:
        if n == name:
            return v
    return default


@dataclass(slots=True)
class MeshResponse:
    """A buffered response. ``headers`` are ``(lower-case name, value)`` pairs in order."""

    status: int
    headers: list[tuple[str, str]]
    content: bytes

    def header(self, name: str, default: str | None = None) -> str | None:
        return _find_header(self.headers, name, default)

    @property
    def flags(self) -> str:
        """The mesh's response flags (``UH``, ``UT``, ``FI``, ...) or "" for upstream answers."""
        return self.header(FLAGS_HEADER, "") or ""

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def __repr__(self) -> str:
        flags = f" {self.flags}" if self.flags else ""
        return f"<MeshResponse {self.status}{flags} {len(self.content)} bytes>"


class StreamedResponse:
    """A response whose body is read as it arrives: ``async for chunk in resp.aiter_bytes()``."""

    def __init__(self, head: ResponseHead, down: _MemoryDownstream, receive) -> None:
        self.status = head.status
        self.headers = list(head.headers)
        self._down = down
        self._receive = receive
        self._done = False

    def header(self, name: str, default: str | None = None) -> str | None:
        return _find_header(self.headers, name, default)

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        events = self._down.response.events
        while not self._done:
            while events:
                _, ev = events.popleft()
                if ev is None:
                    self._done = True
                    return
                if isinstance(ev, bytes):
                    yield ev
            try:
                data = await self._receive.receive()
            except trio.EndOfChannel:
                raise UpstreamError("the response ended before its body was complete") from None
            self._down.response.feed(data)

    async def aread(self) -> bytes:
        return b"".join([chunk async for chunk in self.aiter_bytes()])

    def __repr__(self) -> str:
        return f"<StreamedResponse {self.status}>"


def _request_bytes(method: str, url: str, headers, content) -> tuple[bytes, AsyncIterator | None]:
    """The request head (absolute-form target, RFC 9112 §3.2.2, as a client of a proxy sends it)
    plus a buffered body, or the head and an iterator of body chunks (sent chunked)."""
    if "://" not in url:
        raise ValueError(f"expected an absolute URL like http://reviews:9080/path, got {url!r}")
    authority = url.split("://", 1)[1].split("/", 1)[0]
    items = headers.items() if isinstance(headers, Mapping) else (headers or ())
    lines = [f"{method} {url} HTTP/1.1"]
    have_host = False
    for n, v in items:
        lower = n.lower()
        if lower in ("content-length", "transfer-encoding"):
            continue  # framing is ours
        have_host = have_host or lower == "host"
        lines.append(f"{n}: {v}")
    if not have_host:
        lines.append(f"host: {authority}")
    body_iter = None
    if content is None:
        body = b""
    elif isinstance(content, (bytes, bytearray, memoryview)):
        body = bytes(content)
    elif isinstance(content, str):
        body = content.encode()
    elif isinstance(content, AsyncIterable):
        body = b""
        body_iter = aiter(content)
    else:
        raise TypeError(f"content must be bytes, str or an async iterable of bytes, got "
                        f"{type(content).__name__}")
    if body_iter is not None:
        lines.append("transfer-encoding: chunked")
    elif body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"content-length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + body, body_iter


class Mesh:
    """The handle ``open_mesh`` yields. ``sidecar`` is the underlying tree (``statistics()``,
    ``snapshot``, ``add_source`` ...)."""

    def __init__(self, sidecar: Sidecar, client: str = DEFAULT_CLIENT_ADDRESS) -> None:
        self.sidecar = sidecar
        self.client = client
        self._handler = sidecar.outbound
        self.requests = 0

    def _start(self, method: str, url: str, headers, content, send=None):
        data, body_iter = _request_bytes(method.upper(), url, headers, content)
        down = _MemoryDownstream(self.client, body_iter, send)
        down.parser.feed(data)
        _, head = down.parser.events.popleft()
        down.response.expect(head_request=head.method == "HEAD")
        self.requests += 1
        return down, head

    async def request(self, method: str, url: str, *,
                      headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
                      content: bytes | str | AsyncIterable[bytes] | None = None) -> MeshResponse:
        """Send one request through the mesh and read the whole response."""
        down, head = self._start(method, url, headers, content)
        with down.scope:
            await self._handler(down, head)
        status, rheaders, chunks = 0, [], []
        for _, ev in down.response.events:
            if isinstance(ev, ResponseHead):
                if ev.status >= 200 or ev.status == 101:
                    status, rheaders = ev.status, ev.headers
            elif isinstance(ev, bytes):
                chunks.append(ev)
        if not status:
            raise UpstreamError(f"{method} {url}: no response from the mesh")
        return MeshResponse(status, rheaders, b"".join(chunks))

    @asynccontextmanager
    async def stream(self, method: str, url: str, *,
                     headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
                     content: bytes | str | AsyncIterable[bytes] | None = None,
                     ) -> AsyncIterator[StreamedResponse]:
        """``async with mesh.stream("GET", url) as resp:`` — the status and headers once they
        arrive, the body as it streams (the proxy waits while the reader is slow)."""
        send_channel, receive_channel = trio.open_memory_channel[bytes](STREAM_BUFFER)
        down, head = self._start(method, url, headers, content, send=send_channel.send)

        async def run() -> None:
            async with send_channel:
                with down.scope:
                    await self._handler(down, head)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run)
            events = down.response.events
            try:
                resp = None
                async with receive_channel:
                    while resp is None:
                        while events and resp is None:
                            _, ev = events.popleft()
                            if isinstance(ev, ResponseHead) and (ev.status >= 200
                                                                 or ev.status == 101):
                                resp = StreamedResponse(ev, down, receive_channel)
                        if resp is None:
                            try:
                                down.response.feed(await receive_channel.receive())
                            except trio.EndOfChannel:
                                if events:  # written synchronously (a 504 after the deadline)
                                    continue
                                raise UpstreamError(f"{method} {url}: no response from the mesh"
                                                    ) from None
                    yield resp
            finally:
                nursery.cancel_scope.cancel()  # a reader that stops early abandons the rest

    def statistics(self) -> dict[str, Any]:
        return {"requests": self.requests, **self.sidecar.statistics()}

    def __repr__(self) -> str:
        return f"<Mesh {self.sidecar.config.name} requests={self.requests}>"


# -- configuration shared by open_mesh and start_in_thread -------------------------------------

class StaticSource:
    """Config objects and instances given in code (``config=[ConfigObject]``, ``instances=``)."""

    def __init__(self, objects: Sequence[ConfigObject], instances: Sequence[ServiceInstance]):
        self.objects = list(objects)
        self.instances = list(instances)

    def __repr__(self) -> str:
        return f"<StaticSource {len(self.objects)} objects, {len(self.instances)} instances>"


def _build(service: str, *, namespace: str, version: str | None, labels: Mapping[str, str] | None,
           registry: str | os.PathLike | None, control: str | None, join: Sequence[str],
           config: Sequence[Any], instances: Sequence[ServiceInstance], address: str,
           proxy_port: int | None, admin_port: int | None, seed: int | None, domain: str,
           gossip_port: int, gossip_key_file: str | None, gossip_profile: str,
           setup: Callable[[Sidecar], None] | None, zipkin_address: str | None = None,
           service_account: str = "default", certs: Any = None,
           ) -> tuple[SidecarConfig, Callable[[Sidecar], None]]:
    files: list[str] = []
    objects: list[ConfigObject] = []
    for i, item in enumerate(config):
        if isinstance(item, ConfigObject):
            objects.append(item)
        elif isinstance(item, (str, os.PathLike)):
            files.append(os.fspath(item))
        else:
            raise ConfigError(f"expected a file path or a ConfigObject, got {type(item).__name__}",
                              path=f"config[{i}]")
    for i, inst in enumerate(instances):
        if not isinstance(inst, ServiceInstance):
            raise ConfigError("expected a ServiceInstance (trimesh.config.make_instance)",
                              path=f"instances[{i}]")
    all_labels = dict(labels or {})
    if version:
        all_labels["version"] = version
    cfg = SidecarConfig(service=service, namespace=namespace, labels=all_labels, port=0,
                        app_port=None, address=address, proxy_port=proxy_port,
                        admin_port=admin_port, control=control,
                        registry=os.fspath(registry) if registry is not None else None,
                        config_files=files, seed=seed, domain=domain,
                        zipkin_address=zipkin_address, service_account=service_account)
    gossip = None
    if join:
        from .sidecar import GossipOptions, install_gossip

        try:
            options = GossipOptions(port=gossip_port, join=tuple(join), key_file=gossip_key_file,
                                    profile=gossip_profile)
        except ValueError as exc:
            raise ConfigError(str(exc), path="join") from None
        gossip = partial(install_gossip, options=options)

    def install(sidecar: Sidecar) -> None:
        if certs is not None:  # the app's own identity: mutual TLS to the services it calls
            from .sidecar import install_cert_agent

            install_cert_agent(sidecar, certs)
        if objects or instances:
            sidecar.add_source(StaticSource(objects, instances))
        if gossip is not None:
            gossip(sidecar)
        if setup is not None:
            setup(sidecar)

    return cfg, install


@asynccontextmanager
async def open_mesh(*, service: str, namespace: str = DEFAULT_NAMESPACE,
                    version: str | None = None, labels: Mapping[str, str] | None = None,
                    registry: str | os.PathLike | None = None, control: str | None = None,
                    join: Sequence[str] = (), config: Sequence[Any] = (),
                    instances: Sequence[ServiceInstance] = (), address: str = "127.0.0.1",
                    admin_port: int | None = None, gossip_port: int = 0,
                    gossip_key_file: str | None = None, gossip_profile: str = "lan",
                    seed: int | None = None, domain: str = DEFAULT_DOMAIN,
                    setup: Callable[[Sidecar], None] | None = None,
                    zipkin_address: str | None = None, service_account: str = "default",
                    certs: Any = None, cert_timeout: float = CERT_TIMEOUT
                    ) -> AsyncIterator[Mesh]:
    """Join the mesh as ``service`` for the body of ``async with`` (module docstring).

    Where the mesh's view comes from: ``registry`` (a registry YAML file, re-read on change),
    ``control`` (the control's URL, long-polled), ``join`` (gossip seeds), ``config`` (config
    file paths, re-read on change, and/or ConfigObjects) and ``instances`` (ServiceInstances).
    Gossip: ``gossip_port`` (0: any), ``gossip_key_file`` (the mesh key; default: the control's
    state dir), ``gossip_profile`` ("lan" or "local", docs/gossip.md).
    ``admin_port`` (0: any) also serves the admin endpoints. ``setup(sidecar)`` runs before the
    tree starts (add children or sources there). ``zipkin_address`` (``HOST:PORT``) sends the
    requests' spans to a Zipkin collector; records, metrics (``mesh.sidecar.metrics_registry``)
    and B3 headers are the sidecar's own (docs/telemetry.md). ``certs``
    (a :class:`trimesh.sidecar.CertOptions`) runs the cert agent for ``service_account``'s
    identity, as a sidecar's ``--ca``/``--cert-dir`` do: calls to services under mutual TLS
    then go out with it, and the ``async with`` is entered only once the first certificate is
    held (a ``TrimeshError`` with the CA's reason after ``cert_timeout`` seconds). On exit the
    tree drains and stops; errors that took it down are raised from the ``async with``.
    """
    cfg, install = _build(service, namespace=namespace, version=version, labels=labels,
                          registry=registry, control=control, join=join, config=config,
                          instances=instances, address=address, proxy_port=None,
                          admin_port=admin_port, seed=seed, domain=domain,
                          gossip_port=gossip_port, gossip_key_file=gossip_key_file,
                          gossip_profile=gossip_profile, setup=setup,
                          zipkin_address=zipkin_address, service_account=service_account,
                          certs=certs)
    sidecar = Sidecar(cfg)
    install(sidecar)
    try:
        async with trio.open_nursery() as nursery:
            sidecar.outbound.mirror_nursery = nursery
            await nursery.start(sidecar.serve)
            if certs is not None:
                await _first_certificate(sidecar, cert_timeout)
            try:
                yield Mesh(sidecar, client=address)
            finally:
                sidecar.shutdown()
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:  # the body's error (or the tree's), not wrapped
            only = group.exceptions[0]
            raise only from only.__cause__
        raise


async def _first_certificate(sidecar: Sidecar, timeout: float) -> None:
    store = sidecar.certs
    with trio.move_on_after(timeout):
        while store.current() is None:
            await store.wait_changed()
        return
    raise TrimeshError(f"no certificate for {sidecar.cert_agent.identity} after {timeout:g} s"
                       + (f": {store.last_error}" if store.last_error else ""))


# -- a sidecar in a thread ----------------------------------------------------------------------

class MeshThread:
    """A sidecar-like outbound proxy in a background thread (:func:`start_in_thread`)."""

    def __init__(self, config: SidecarConfig, install: Callable[[Sidecar], None],
                 set_env: bool) -> None:
        self.config = config
        self._install = install
        self._set_env = set_env
        self._saved_env: dict[str, str | None] = {}
        self._ready = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self.sidecar: Sidecar | None = None
        self.error: BaseException | None = None
        self.proxy_url = ""
        self._thread = threading.Thread(target=self._main, name=f"trimesh-{config.name}",
                                        daemon=True)

    @property
    def env(self) -> dict[str, str]:
        """What to put in an app's environment: HTTP_PROXY/http_proxy and NO_PROXY/no_proxy."""
        no_proxy = local_no_proxy([self.config.address],
                                  os.environ.get("NO_PROXY") or os.environ.get("no_proxy") or "")
        return {"HTTP_PROXY": self.proxy_url, "http_proxy": self.proxy_url,
                "NO_PROXY": no_proxy, "no_proxy": no_proxy}

    def _main(self) -> None:
        try:
            trio.run(self._serve)
        except BaseException as exc:  # reported to the thread that waits in start()/stop()
            while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
                exc = exc.exceptions[0]
            self.error = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        sidecar = Sidecar(self.config)
        self._install(sidecar)
        self.sidecar = sidecar

        async def started(task_status=trio.TASK_STATUS_IGNORED) -> None:
            await sidecar.serve(task_status=task_status)

        async with trio.open_nursery() as nursery:
            await nursery.start(started)
            host, port = sidecar.addresses["outbound"]
            self.proxy_url = f"http://{host}:{port}"
            self._ready.set()

    def start(self, timeout: float = THREAD_START_TIMEOUT) -> MeshThread:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"mesh thread {self.config.name} not ready after {timeout}s")
        if self.error is not None:
            raise self.error
        if self._set_env:
            for key, value in self.env.items():
                self._saved_env[key] = os.environ.get(key)
                os.environ[key] = value
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Drain and stop the thread (idempotent); restores the environment ``set_env`` changed."""
        if self._thread.is_alive() and self._token is not None and self.sidecar is not None:
            try:
                trio.from_thread.run_sync(self.sidecar.shutdown, trio_token=self._token)
            except trio.RunFinishedError:
                pass
        self._thread.join(timeout)
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()
        if self.error is not None:
            raise self.error

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> MeshThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<MeshThread {self.config.name} {self.proxy_url or 'starting'} running={self.running}>"


def start_in_thread(*, service: str, namespace: str = DEFAULT_NAMESPACE,
                    version: str | None = None, labels: Mapping[str, str] | None = None,
                    registry: str | os.PathLike | None = None, control: str | None = None,
                    join: Sequence[str] = (), config: Sequence[Any] = (),
                    instances: Sequence[ServiceInstance] = (), address: str = "127.0.0.1",
                    proxy_port: int = 0, admin_port: int | None = None, gossip_port: int = 0,
                    gossip_key_file: str | None = None, gossip_profile: str = "lan",
                    seed: int | None = None, domain: str = DEFAULT_DOMAIN, set_env: bool = False,
                    setup: Callable[[Sidecar], None] | None = None,
                    zipkin_address: str | None = None) -> MeshThread:
    """Start an outbound proxy for ``service`` in a background thread and return once it is
    ready. ``handle.proxy_url`` is the ``HTTP_PROXY`` value (``set_env=True`` sets it, and
    ``NO_PROXY``, in ``os.environ`` until ``stop()``). Same sources as :func:`open_mesh`."""
    cfg, install = _build(service, namespace=namespace, version=version, labels=labels,
                          registry=registry, control=control, join=join, config=config,
                          instances=instances, address=address, proxy_port=proxy_port,
                          admin_port=admin_port, seed=seed, domain=domain,
                          gossip_port=gossip_port, gossip_key_file=gossip_key_file,
                          gossip_profile=gossip_profile, setup=setup,
                          zipkin_address=zipkin_address)
    return MeshThread(cfg, install, set_env).start()
