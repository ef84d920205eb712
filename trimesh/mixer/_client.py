"""The sidecar's side of Mixer: the client and the inbound policy stage, on Trio.

:class:`MixerClient` talks the frame wire (``_wire.py``) to one or more Mixer addresses: a small
pool of kept-alive connections per address, one request in flight per connection, every call
bounded by :data:`CALL_TIMEOUT`. An address that fails is skipped for :data:`RETRY_AFTER` seconds
and the next one is tried, so several Mixers (the control's and standalone ones) back each other
up. All down: :class:`MixerUnavailable`.

:class:`PolicyCheck` is what ``sidecar.inbound.policy`` holds (the inbound pipeline calls
``await policy.check(exchange)`` before forwarding, and forwards on ``None``):

1. **The bag.** ``request.*`` from the head (method, path, host, scheme, headers, id, useragent,
   size), ``destination.*`` from this sidecar (service FQDN, namespace, labels, its address),
   ``source.ip`` from the connection, and ``source.service`` / ``source.namespace`` /
   ``source.labels`` from the calling sidecar's :data:`SOURCE_HEADER`. Trust caveat (until mTLS
   lands): the header is believed only when the connection comes from an address of a known mesh
   instance (or, for a sidecar on loopback — a one-host mesh, whose sidecars connect from
   127.0.0.1 — from loopback), but any process on such a host could forge it. The caller's
   identity, ``source.user`` (= ``source.principal``), comes only from the client certificate
   the inbound verified under mutual TLS (``ex.down.peer``); without mTLS it is absent.
2. **The cache.** A check's answer is cached under the values of the attributes the config's checks
   read (``keys`` in each answer: map attributes such as ``source.labels`` are keyed whole), for
   its ``valid_duration`` and ``valid_use_count``. The cache is dropped whenever the config
   revision changes: the sidecar's snapshot version (a config push reaches the sidecar and Mixer
   at the same time) or the revision Mixer reports.
3. **Quotas.** When the config has quota rules, every request goes to Mixer (the check answer
   cached or not) so the quota is charged once per request (``dedup`` = the request id).
4. **Mixer unreachable.** Cached checks keep answering. An uncached check follows ``fail_open``
   (default **open**, as Istio's mixer client's ``FAIL_OPEN`` zero value: allow; closed: 503
   ``UNAVAILABLE:mixer unreachable``). Quotas fall back to local buckets: the sidecar compiles
   the snapshot's Mixer config itself (``local``) with every limit scaled to its share of the
   destination's instances (:func:`trimesh.quota.fallback_share`), and charges there.
5. **Off switches.** ``disablePolicyChecks: true`` in MeshConfig, or an empty ``mixerAddress``,
   turn the stage into a no-op (read at every snapshot change).

Denials become a :class:`trimesh.routing.MeshReply` with the status and body of
:meth:`CheckResult.reply` (``PERMISSION_DENIED:denyreviewsv3handler.denier.default:Not allowed``,
403, flag ``UAEX``; 429 ``RL`` for an exhausted quota).
"""

from __future__ import annotations

import logging
import urllib.parse
from functools import partial
from typing import Any, Callable, Iterable

import trio

from trimesh.config import DEFAULT_DOMAIN, MeshConfig
from trimesh.errors import ProtocolError, TrimeshError
from trimesh.routing import MeshReply

from ._adapters import QuotaArgs
from ._runtime import MixerConfig
from ._status import CheckResult, quota_exhausted, unavailable
from ._wire import FrameReader, encode_frame, status_from_wire

__all__ = ["MixerClient", "MixerUnavailable", "PolicyCheck", "SOURCE_HEADER", "CALL_TIMEOUT",
           "RETRY_AFTER", "source_header_value", "parse_source_header"]

log = logging.getLogger("trimesh.mixer.client")

DEFAULT_MIXER_ADDRESS = MeshConfig().mixer_address  # MeshConfig's default (127.0.0.1:9091)
CALL_TIMEOUT = 1.0  # seconds for one Mixer call (connect included) before the fail policy applies
RETRY_AFTER = 1.0  # a failed Mixer address is skipped this long
POOL_SIZE = 8  # idle connections kept per Mixer address
SOURCES_MAX = 1024  # parsed source headers kept (one per calling workload)
CACHE_MAX = 10000  # check-cache entries; the cache is dropped whole when full
SOURCE_HEADER = "x-trimesh-source"  # the caller's sidecar names its workload (Istio 0.x: x-istio-attributes)


class MixerUnavailable(TrimeshError):
    """No Mixer address answered."""


class _Conn:
    __slots__ = ("stream", "reader")

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.reader = FrameReader()

    async def call(self, request: Any) -> Any:
        await self.stream.send_all(encode_frame(request))
        while True:
            answer = self.reader.next()
            if answer is not None:
                return answer
            data = await self.stream.receive_some(65536)
            if not data:
                raise ProtocolError("mixer closed the connection")
            self.reader.feed(data)


class MixerClient:
    """Calls to Mixer at ``addresses`` (``host:port`` strings or pairs), first healthy one first."""

    def __init__(self, addresses: Iterable[str | tuple[str, int]], *,
                 timeout: float = CALL_TIMEOUT) -> None:
        self.addresses = [_address(a) for a in addresses]
        self.timeout = timeout
        self._idle: dict[tuple[str, int], list[_Conn]] = {a: [] for a in self.addresses}
        self._down_until: dict[tuple[str, int], float] = {}
        self._stats = {"calls": 0, "failures": 0, "connects": 0, "unavailable": 0}

    async def call(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send one request; the first address that answers wins. :class:`MixerUnavailable` when
        none does; an ``{"error"}`` answer is a :class:`ProtocolError`."""
        self._stats["calls"] += 1
        now = trio.current_time()
        order = [a for a in self.addresses if self._down_until.get(a, 0.0) <= now]
        if not order:  # every address failed less than RETRY_AFTER ago: do not wait on them
            self._stats["unavailable"] += 1
            raise MixerUnavailable("no mixer answered (retrying soon)")
        last = None
        for addr in order:
            try:
                with trio.fail_after(self.timeout):
                    answer = await self._call(addr, request)
            except (OSError, trio.TooSlowError, trio.BrokenResourceError, ProtocolError) as exc:
                self._stats["failures"] += 1
                self._down_until[addr] = trio.current_time() + RETRY_AFTER
                last = exc
                continue
            self._down_until.pop(addr, None)
            if isinstance(answer, dict) and "error" in answer:
                raise ProtocolError(f"mixer {addr[0]}:{addr[1]}: {answer['error']}")
            return answer
        self._stats["unavailable"] += 1
        raise MixerUnavailable(f"no mixer answered ({type(last).__name__}: {last})")

    async def _call(self, addr: tuple[str, int], request: Any) -> Any:
        idle = self._idle[addr]
        while idle:
            conn = idle.pop()
            try:
                answer = await conn.call(request)
            except (OSError, trio.BrokenResourceError, ProtocolError):
                await conn.stream.aclose()
                continue  # a kept connection the server closed: try the next, then a new one
            self._release(addr, conn)
            return answer
        stream = await trio.open_tcp_stream(*addr)
        self._stats["connects"] += 1
        conn = _Conn(stream)
        try:
            answer = await conn.call(request)
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        self._release(addr, conn)
        return answer

    def _release(self, addr: tuple[str, int], conn: _Conn) -> None:
        idle = self._idle[addr]
        if len(idle) < POOL_SIZE:
            idle.append(conn)
        else:
            conn.stream.socket.close()

    async def check(self, attrs: dict[str, Any], dedup: str | None = None) -> dict[str, Any]:
        return await self.call({"op": "check", "attrs": attrs, "dedup": dedup})

    async def quota(self, attrs: dict[str, Any], name: str, amount: int = 1,
                    dedup: str | None = None, best_effort: bool = False) -> dict[str, Any]:
        return await self.call({"op": "quota", "attrs": attrs, "name": name, "amount": amount,
                                "dedup": dedup, "best_effort": best_effort})

    async def report(self, records: list[dict[str, Any]]) -> int:
        return int((await self.call({"op": "report", "records": records}))["accepted"])

    async def aclose(self) -> None:
        for idle in self._idle.values():
            while idle:
                await trio.aclose_forcefully(idle.pop().stream)

    def statistics(self) -> dict[str, Any]:
        now = trio.current_time()
        return {**self._stats, "addresses": [f"{h}:{p}" for h, p in self.addresses],
                "down": [f"{h}:{p}" for (h, p), t in self._down_until.items() if t > now],
                "idle": sum(len(v) for v in self._idle.values())}

    def __repr__(self) -> str:
        return f"<MixerClient {', '.join(f'{h}:{p}' for h, p in self.addresses)}>"


def _address(a: str | tuple[str, int]) -> tuple[str, int]:
    if isinstance(a, tuple):
        return a
    host, sep, port = a.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"a mixer address is HOST:PORT, got {a!r}")
    return host.strip("[]"), int(port)


# --- the caller's attributes ----------------------------------------------------------------------


def source_header_value(service: str, namespace: str, labels: dict[str, str]) -> str:
    """What a sidecar's outbound sends in :data:`SOURCE_HEADER`: its workload, URL-encoded
    (``service=reviews&namespace=default&label.app=reviews&label.version=v3``)."""
    pairs = [("service", service), ("namespace", namespace)]
    pairs += [(f"label.{k}", v) for k, v in sorted(labels.items())]
    return urllib.parse.urlencode(pairs)


def parse_source_header(value: str) -> dict[str, Any]:
    """The ``source.*`` attributes a :data:`SOURCE_HEADER` value carries."""
    attrs: dict[str, Any] = {}
    labels: dict[str, str] = {}
    for k, v in urllib.parse.parse_qsl(value, keep_blank_values=True):
        if k.startswith("label."):
            labels[k[6:]] = v
        elif k in ("service", "namespace"):
            attrs[f"source.{k}"] = v
    if labels:
        attrs["source.labels"] = labels
    return attrs


# --- the policy stage -----------------------------------------------------------------------------


class PolicyCheck:
    """The inbound pipeline's policy stage (module docstring). ``destination`` holds this
    sidecar's ``destination.*`` attributes; ``snapshot`` returns the sidecar's current Snapshot
    (or None) — its version invalidates the cache, its MeshConfig switches checks off, its
    instances say which peers' :data:`SOURCE_HEADER` is believed, its Mixer objects feed the
    local quota fallback."""

    def __init__(self, client: MixerClient | None, destination: dict[str, Any], *,
                 snapshot: Callable[[], Any] = lambda: None, fail_open: bool = True,
                 instances_of_destination: Callable[[], int] = lambda: 1,
                 follow_mesh_address: bool = False) -> None:
        self.client = client
        self.destination = dict(destination)
        dest = str(self.destination.get("destination.service", ""))
        self._domain = dest.split(".svc.", 1)[1] if ".svc." in dest else DEFAULT_DOMAIN
        self.snapshot = snapshot
        self.fail_open = fail_open
        self.instances_of_destination = instances_of_destination
        # MeshConfig's mixerAddress replaces the client's addresses when it is set to something
        # other than its default, or when there is no client yet
        self.follow_mesh_address = follow_mesh_address
        self.enabled = client is not None
        self._version: Any = object()
        self._rev: int | None = None
        self._keys: tuple[str, ...] = ()
        self._getters: tuple[Callable[[Any], Any], ...] = ()
        self._quotas = False
        self._cache: dict[tuple, list] = {}  # key -> [CheckResult, expires_at, uses_left]
        self._peers: frozenset[str] = frozenset()
        self._loopback = str(self.destination.get("destination.ip", "")).startswith("127.")
        self._sources: dict[str, dict[str, Any]] = {}  # header value -> parsed (few callers)
        self.local: MixerConfig | None = None
        self.reporter: Any = None  # the sidecar's Reporter, when install_mixer made one
        self._stats = {"checks": 0, "cache_hits": 0, "calls": 0, "denied": 0,
                       "rate_limited": 0, "unavailable": 0, "fail_open": 0, "fallback_quotas": 0,
                       "invalidations": 0}

    # --- config changes --------------------------------------------------------------------------

    def _refresh(self, snap: Any) -> None:
        self._version = None if snap is None else snap.version
        self._invalidate()
        if snap is None:
            return
        mesh = snap.mesh_config
        if self.follow_mesh_address and mesh.mixer_address and (
                self.client is None or mesh.mixer_address != DEFAULT_MIXER_ADDRESS):
            wanted = [_address(mesh.mixer_address)]
            if self.client is None or self.client.addresses != wanted:
                self.client = MixerClient(wanted)
        self.enabled = (self.client is not None and not mesh.disable_policy_checks
                        and bool(mesh.mixer_address))
        self._peers = frozenset(i.address for i in snap.instances)
        self.local = None  # compiled on first need (Mixer unreachable with quotas)

    def _invalidate(self) -> None:
        if self._cache:
            self._stats["invalidations"] += 1
        self._cache.clear()

    # --- the stage -------------------------------------------------------------------------------

    def bag(self, ex: Any) -> dict[str, Any]:
        head = ex.head
        attrs: dict[str, Any] = dict(self.destination)
        hdrs = dict(head.headers)
        attrs.update({"request.method": head.method, "request.path": ex.path,
                      "request.host": ex.authority, "request.scheme": ex.scheme,
                      "request.headers": hdrs, "context.protocol": "http"})
        for name, attr in (("x-request-id", "request.id"), ("user-agent", "request.useragent")):
            v = hdrs.get(name)
            if v is not None:
                attrs[attr] = v
        if head.content_length is not None:
            attrs["request.size"] = head.content_length
        down = ex.down
        client = down.client
        if client:
            attrs["source.ip"] = client
        user = _peer_user(ex)  # only from a certificate the sidecar verified (mutual TLS)
        if user is not None:
            attrs["source.user"] = attrs["source.principal"] = user
        src = hdrs.get(SOURCE_HEADER)
        if src is not None and self._trusted(client):
            attrs.update(self._parsed_source(src))
        return attrs

    def _parsed_source(self, src: str) -> dict[str, Any]:
        parsed = self._sources.get(src)
        if parsed is None:
            if len(self._sources) >= SOURCES_MAX:
                self._sources.clear()
            parsed = self._sources[src] = parse_source_header(src)
        return parsed

    def _note_source(self, ex: Any) -> None:
        """The believed caller on the exchange (``ex.source``: service FQDN, version), so its
        record — and the Report made of it — names the source (Mixer's metrics need it)."""
        src = self._source_value(ex)
        if src is None:
            return
        parsed = self._parsed_source(src)
        service = parsed.get("source.service")
        if service:
            ns = parsed.get("source.namespace") or "default"
            labels = parsed.get("source.labels") or {}
            ex.source = (f"{service}.{ns}.svc.{self._domain}", labels.get("version", ""))

    def _key_of(self, ex: Any) -> tuple:
        """The cache key: for each attribute the checks read, the *input* it comes from
        (strings and tuples, no bag built): ``destination.*`` is this sidecar's and left out,
        every ``source.*`` but the IP comes from the (trusted) source header's raw value."""
        return tuple([g(ex) for g in self._getters])

    def _set_keys(self, keys: tuple[str, ...]) -> None:
        self._keys = keys
        getters: list[Callable[[Any], Any]] = []
        for name in keys:
            if name.startswith("destination.") or name == "context.protocol":
                continue  # the same for every request to this sidecar
            g = _GETTERS.get(name)
            if g is None:
                if name.startswith("source."):
                    g = self._source_value
                elif name.startswith("request."):
                    g = _all_headers
                else:
                    g = partial(_from_bag, self, name)
            if g not in getters:
                getters.append(g)
        self._getters = tuple(getters)

    def _trusted(self, client: str) -> bool:
        """Is the source header of a connection from ``client`` believed? From a known mesh
        instance's address; on a one-host mesh (this sidecar on loopback) from any loopback
        address, since sidecars' outbound connections leave from 127.0.0.1."""
        return client in self._peers or (self._loopback and client.startswith("127."))

    def _source_value(self, ex: Any) -> str | None:
        if not self._trusted(ex.down.client):
            return None
        for n, v in ex.head.headers:
            if n == SOURCE_HEADER:
                return v
        return None

    async def check(self, ex: Any) -> MeshReply | None:
        snap = self.snapshot()
        if (None if snap is None else snap.version) != self._version:
            self._refresh(snap)
        if not self.enabled:
            return None
        self._stats["checks"] += 1
        self._note_source(ex)
        now = trio.current_time()
        key = self._key_of(ex) if self._rev is not None else None
        entry = self._cache.get(key) if key is not None else None
        if entry is not None and (entry[1] <= now or entry[2] <= 0):
            del self._cache[key]
            entry = None
        if entry is not None and not self._quotas:
            self._stats["cache_hits"] += 1
            entry[2] -= 1
            return self._reply(entry[0])
        attrs = self.bag(ex)
        try:
            answer = await self.client.check(attrs, attrs.get("request.id"))
        except (MixerUnavailable, ProtocolError) as exc:
            return self._unreachable(entry, attrs, now, exc)
        self._stats["calls"] += 1
        rev = answer.get("rev")
        if rev != self._rev:
            self._invalidate()
            self._rev = rev
            self._set_keys(tuple(answer.get("keys") or ()))
            self._quotas = bool(answer.get("quotas"))
            key = self._key_of(ex)
        check = status_from_wire(answer["check"])
        if check.valid_duration > 0 and check.valid_use_count > 0:
            if len(self._cache) >= CACHE_MAX:
                self._cache.clear()
            self._cache[key] = [check, now + check.valid_duration, check.valid_use_count - 1]
        return self._reply(status_from_wire(answer["result"]))

    def _unreachable(self, entry: list | None, attrs: dict[str, Any], now: float,
                     exc: Exception) -> MeshReply | None:
        if entry is not None:  # a cached check keeps answering
            self._stats["cache_hits"] += 1
            entry[2] -= 1
            if not entry[0].ok:
                return self._reply(entry[0])
        elif not self.fail_open:
            self._stats["unavailable"] += 1
            return self._reply(unavailable(f"mixer unreachable ({exc})"))
        else:
            self._stats["fail_open"] += 1
        if self._quotas:
            return self._local_quota(attrs, now)
        return None

    def _local_quota(self, attrs: dict[str, Any], now: float) -> MeshReply | None:
        """Mixer down: charge the quotas on this sidecar's own share of the limits."""
        snap = self.snapshot()
        if snap is None:
            return None
        if self.local is None:
            from trimesh.quota import fallback_share

            self.local = MixerConfig.compile(
                snap.objects.values(), revision=snap.version,
                quota_share=fallback_share(self.instances_of_destination()))
        self._stats["fallback_quotas"] += 1
        dest = attrs.get("destination.service", "")
        exhausted = []
        for req in self.local.charges.for_request(dest, attrs):
            r = self.local.quota(attrs, now, req.quota, QuotaArgs(req.charge))
            if r.granted < req.charge:
                exhausted.append(req.quota)
        return self._reply(quota_exhausted(exhausted)) if exhausted else None

    def _reply(self, result: CheckResult) -> MeshReply | None:
        if result.ok:
            return None
        r = result.reply()
        if r.flag == "RL":
            self._stats["rate_limited"] += 1
        else:
            self._stats["denied"] += 1
        return MeshReply(r.status, r.flag, r.body.decode(), exact=True)  # Mixer's own words

    def statistics(self) -> dict[str, Any]:
        return {**self._stats, "enabled": self.enabled, "fail_open": self.fail_open,
                "revision": self._rev, "cache": len(self._cache), "keys": list(self._keys),
                "quotas": self._quotas,
                "client": self.client.statistics() if self.client is not None else None,
                "reports": self.reporter.statistics() if self.reporter is not None else None}

    def __repr__(self) -> str:
        state = "on" if self.enabled else "off"
        return (f"<PolicyCheck {state} {self.destination.get('destination.service')} "
                f"cache={len(self._cache)} fail_{'open' if self.fail_open else 'closed'}>")


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted(value.items()))
    return value


def _all_headers(ex: Any) -> tuple:
    return tuple(ex.head.headers)


def _from_bag(policy: PolicyCheck, name: str, ex: Any) -> Any:
    return _freeze(policy.bag(ex).get(name))  # an attribute with no cheaper input


def _peer_user(ex: Any) -> str | None:
    """``source.user``: the verified client certificate's identity without ``spiffe://``."""
    peer = getattr(ex.down, "peer", None)
    return peer.principal if peer is not None else None


_GETTERS: dict[str, Callable[[Any], Any]] = {
    "source.user": _peer_user,
    "source.principal": _peer_user,
    "request.method": lambda ex: ex.head.method,
    "request.path": lambda ex: ex.path,
    "request.host": lambda ex: ex.authority,
    "request.scheme": lambda ex: ex.scheme,
    "source.ip": lambda ex: ex.down.client,
}
