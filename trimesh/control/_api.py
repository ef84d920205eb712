"""The control's config API: HTTP/1.1 + JSON on h11 over Trio (contract: docs/control.md).

::

    GET    /v1/version                               {"version": "0.1.0", "revision": N}
    GET    /v1/objects[?kind=K&namespace=NS]         {"revision": N, "objects": [...]}
    GET    /v1/objects?after=N[&timeout=30]          the same, once the revision is > N (long poll)
    POST   /v1/objects                               201 stored object | 409 exists
    GET    /v1/objects/{kind}/{namespace}/{name}     200 object | 404
    PUT    /v1/objects/{kind}/{namespace}/{name}     200 stored object | 404 missing
    DELETE /v1/objects/{kind}/{namespace}/{name}     200 {"revision": N} | 404
    GET    /v1/instances                             {"revision": N, "instances": [...]}
    POST   /v1/instances                             201 new | 200 replaced registration
    DELETE /v1/instances/{namespace}/{service}/{address}   200 {"revision": N} | 404
    GET    /v1/members                               {"members": [...]} (gossip view + static)

Objects travel in the docs' shape (``ConfigObject.to_dict()``), ``metadata.resourceVersion`` being
the revision. A body is parsed and validated by :func:`trimesh.config.load_text` (JSON is YAML, so a
YAML body works too) and must hold exactly one object; invalid input gets
``400 {"error": "<where>: <what>"}`` and stores nothing.

The HTTP mechanics are :class:`trimesh.service.HttpService` (h11, RFC 9112): keep-alive between
requests, an idle timeout between them, bounds on the time to receive a head and a body, and a bound
on the body (``MAX_REQUEST_BYTES`` → 413; an oversized body is read and discarded up to
``DISCARD_LIMIT`` so the client can read the 413 instead of a connection reset). Every answer the
helper makes itself is JSON here too (``{"error": ...}``).
"""

from __future__ import annotations

import logging
import math
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import msgspec
import trio

from .. import __version__
from .. import mixer as _mixer  # noqa: F401  (installs the expression type checker into config)
from ..config import (MAX_INPUT_BYTES, ConfigObject, all_kinds, check_references, load_text,
                      lookup_kind)
from ..errors import ConfigError, ConflictError, NotFoundError
from ..service import HTTPError, HttpService, Request, Response, json_error, json_response
from ._gossip import member_rows
from ._instances import InstanceStore, parse_registration
from ._state import key_ref
from ._store import ConfigStore, StoreIOError

log = logging.getLogger("trimesh.control.api")

DEFAULT_CONFIG_PORT = 15010  # DESIGN.md §1 (Pilot's 15010 in later Istio)
MAX_REQUEST_BYTES = MAX_INPUT_BYTES  # one object; the loader's limit for one text (2 MiB)
DISCARD_LIMIT = 4 * MAX_REQUEST_BYTES  # read and drop this much of an oversized body, then close
KEEPALIVE_TIMEOUT = 75.0  # idle time between requests on a kept-alive connection (nginx default)
REQUEST_TIMEOUT = 30.0  # time to receive a head once it has started, and then its body
DEFAULT_WATCH_TIMEOUT = 30.0  # long poll without ?timeout=
MAX_WATCH_TIMEOUT = 300.0
SERVER_HEADER = f"trimesh-control/{__version__}"


class Mesh:
    """What the membership endpoints need: the static instance store and the control's gossip
    agent (``None`` while gossip is off; ``/v1/members`` then lists the static entries only)."""

    def __init__(self, instances: InstanceStore | None = None, agent: Any = None) -> None:
        self.instances = instances if instances is not None else InstanceStore()
        self.agent = agent

    def __repr__(self) -> str:
        return f"<Mesh {self.instances!r} agent={self.agent!r}>"


async def serve_config_api(store: ConfigStore, host: str, port: int, *, mesh: Mesh | None = None,
                           task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve the config API on ``host:port`` until cancelled. ``task_status.started`` gets the
    URL actually bound (``port=0`` picks a free port). ``mesh`` serves the instance and member
    endpoints (an in-memory instance store without it)."""
    service = api_service(store, cache=ListingCache(), mesh=mesh)
    listeners = await service.listen(host, port)  # TrimeshError "cannot listen on ..." if busy
    task_status.started(service.url)
    await service.serve_listeners(listeners)


def api_service(store: ConfigStore, *, cache: ListingCache | None = None,
                mesh: Mesh | None = None) -> HttpService:
    """The config API as an :class:`~trimesh.service.HttpService` (``cache`` and ``mesh`` are
    shared by its connections)."""
    cache = cache if cache is not None else ListingCache()
    mesh = mesh if mesh is not None else Mesh()

    async def handle(request: Request) -> Response:
        try:
            status, payload = await dispatch(store, request.method, request.target, request.body,
                                             cache, mesh)
        except StoreIOError as exc:
            raise HTTPError(500, str(exc)) from None
        log.debug("%s %s -> %d", request.method, request.target, status)
        return json_response(payload, status)

    return HttpService(handle, name="config API", max_body=MAX_REQUEST_BYTES,
                       discard_limit=DISCARD_LIMIT, idle_timeout=KEEPALIVE_TIMEOUT,
                       header_timeout=REQUEST_TIMEOUT, body_timeout=REQUEST_TIMEOUT,
                       error_response=json_error, server_header=SERVER_HEADER,
                       ready_level=logging.DEBUG)  # the control's ready line names it


class ListingCache:
    """The encoded answer of ``GET /v1/objects`` per (kind, namespace) filter, for the current
    revision only: every long-polling sidecar wakes on a change and asks for the same listing, so it
    is encoded once per revision instead of once per watcher."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str | None, str | None], tuple[int, bytes]] = {}
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return f"<ListingCache entries={len(self._entries)} hits={self.hits} misses={self.misses}>"

    def listing(self, store: ConfigStore, kind: str | None, namespace: str | None) -> bytes:
        revision = store.revision
        cached = self._entries.get((kind, namespace))
        if cached is not None and cached[0] == revision:
            self.hits += 1
            return cached[1]
        self.misses += 1
        body = msgspec.json.encode({
            "revision": revision,
            "objects": [o.to_dict() for o in store.list(kind=kind, namespace=namespace)],
        }) + b"\n"
        if any(rev != revision for rev, _ in self._entries.values()):
            self._entries.clear()  # keep only the current revision's listings
        self._entries[(kind, namespace)] = (revision, body)
        return body

    def statistics(self) -> dict[str, int]:
        return {"entries": len(self._entries), "hits": self.hits, "misses": self.misses}


# -- one connection ----------------------------------------------------------------------------


async def handle_api_connection(stream: trio.abc.Stream, store: ConfigStore, *,
                                cache: ListingCache | None = None,
                                mesh: Mesh | None = None) -> None:
    """Serve requests on one connection (a memory stream in tests) until the peer closes, a
    timeout, or an error."""
    await api_service(store, cache=cache, mesh=mesh).serve_connection(stream)


# -- routing -----------------------------------------------------------------------------------


async def dispatch(store: ConfigStore, method: str, target: str, body: bytes,
                   cache: ListingCache | None = None, mesh: Mesh | None = None) -> tuple[int, Any]:
    """Answer one request: (status, JSON-able payload or encoded JSON bytes). Raises HTTPError for
    error answers."""
    url = urlsplit(target)
    parts = [unquote(p) for p in url.path.split("/")[1:]]
    query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
    if parts[:2] in (["v1", "instances"], ["v1", "members"]):
        return await _dispatch_mesh(mesh if mesh is not None else Mesh(), method, parts, body)
    if parts == ["v1", "version"]:
        _allow(method, "GET")
        return 200, {"version": __version__, "revision": store.revision}
    if parts[:2] == ["v1", "objects"] and len(parts) == 2:
        _allow(method, "GET", "POST")
        if method == "POST":
            obj = _parse_object(body)
            _check_rule_references(store, obj)
            try:
                stored = await store.create(obj)
            except ConflictError as exc:
                raise HTTPError(409, str(exc)) from None
            return 201, stored.to_dict()
        return 200, await _list(store, query, cache if cache is not None else ListingCache())
    if parts[:2] == ["v1", "objects"] and len(parts) == 5:
        _allow(method, "GET", "PUT", "DELETE")
        key = (_kind(parts[2]), parts[3], parts[4])
        ref = key_ref(key)
        if method == "GET":
            found = store.get(key)
            if found is None:
                raise HTTPError(404, f"{ref} not found")
            return 200, found.to_dict()
        if method == "DELETE":
            try:
                return 200, {"revision": await store.delete(key)}
            except NotFoundError:
                raise HTTPError(404, f"{ref} not found") from None
        obj = _parse_object(body, default_namespace=key[1])
        if obj.key != key:
            raise HTTPError(400, f"the body names {obj.ref} but the URL names {ref}")
        _check_rule_references(store, obj)
        try:
            return 200, (await store.replace(obj)).to_dict()
        except NotFoundError:
            raise HTTPError(404, f"{ref} not found") from None
        except ConflictError as exc:  # the etcd store: resourceVersion given and stale
            raise HTTPError(409, str(exc)) from None
    raise HTTPError(404, f"no such endpoint: {url.path}")


async def _dispatch_mesh(mesh: Mesh, method: str, parts: list[str], body: bytes) -> tuple[int, Any]:
    if parts == ["v1", "members"]:
        _allow(method, "GET")
        return 200, {"gossip": mesh.agent is not None,
                     "members": member_rows(mesh.agent, mesh.instances)}
    if parts == ["v1", "instances"]:
        _allow(method, "GET", "POST")
        if method == "GET":
            return 200, {"revision": mesh.instances.revision,
                         "instances": [r.to_dict() for r in mesh.instances.list()]}
        try:
            payload = msgspec.json.decode(body) if body.strip() else None
            registration = parse_registration(payload)
        except msgspec.DecodeError as exc:
            raise HTTPError(400, f"request body: invalid JSON: {exc}") from None
        except ConfigError as exc:
            raise HTTPError(400, str(exc)) from None
        reg, created = await mesh.instances.register(*registration)
        return (201 if created else 200), reg.to_dict()
    if parts[:2] == ["v1", "instances"] and len(parts) == 5:
        _allow(method, "DELETE")
        try:
            return 200, {"revision": await mesh.instances.deregister(tuple(parts[2:5]))}
        except NotFoundError as exc:
            raise HTTPError(404, str(exc)) from None
    raise HTTPError(404, f"no such endpoint: /{'/'.join(parts)}")


def _allow(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise HTTPError(405, f"method {method} not allowed here (allowed: {', '.join(allowed)})",
                        [("allow", ", ".join(allowed))])


def _kind(name: str) -> str:
    info = lookup_kind(name)
    if info is None:
        known = ", ".join(sorted(k.type_name for k in all_kinds()))
        raise HTTPError(400, f"unknown kind {name!r} (known kinds: {known})")
    return info.kind


def _check_rule_references(store: ConfigStore, obj: ConfigObject) -> None:
    """A Mixer ``rule`` whose handler or instances do not resolve against the store is refused
    (400, with the field path); this needs every stored object, hence here and not in
    ``load_text``. Create handlers and instances before the rules that use them (the docs' files
    are in that order); deleting a handler a rule uses is not refused."""
    if obj.kind != "rule":
        return
    others = [o for o in store.list() if o.key != obj.key]
    problems = [e for e in check_references(others + [obj]) if e.source == obj.ref]
    if problems:
        raise HTTPError(400, "; ".join(str(e) for e in problems))


def _parse_object(body: bytes, *, default_namespace: str | None = None) -> ConfigObject:
    if not body.strip():
        raise HTTPError(400, "request body: expected one config object, got nothing")
    try:
        objects = load_text(body, source="request body", default_namespace=default_namespace)
    except ConfigError as exc:
        raise HTTPError(400, str(exc)) from None
    if len(objects) != 1:
        raise HTTPError(400, f"request body: expected one config object, got {len(objects)}")
    return objects[0]


async def _list(store: ConfigStore, query: dict[str, str], cache: ListingCache) -> bytes:
    kind = _kind(query["kind"]) if query.get("kind") else None
    namespace = query.get("namespace") or None
    if "after" in query:
        after = _number(query, "after", int, 0, math.inf)
        timeout = _number(query, "timeout", float, 0.0, MAX_WATCH_TIMEOUT,
                          default=DEFAULT_WATCH_TIMEOUT)
        await store.wait_revision(int(after), timeout=timeout)
    return cache.listing(store, kind, namespace)


def _number(query: dict[str, str], name: str, typ: type, low: float, high: float,
            default: float | None = None) -> float:
    raw = query.get(name)
    if raw is None:
        assert default is not None
        return default
    try:
        value = typ(raw)
    except ValueError:
        raise HTTPError(400, f"query parameter {name}={raw!r} is not a number") from None
    if not (low <= value) or not math.isfinite(value):
        raise HTTPError(400, f"query parameter {name}={raw!r} is out of range")
    return min(value, high)
