"""The outbound side: the app's calls out through its sidecar (``HTTP_PROXY``, ``Host: x:9080``).

Its stages (the shared ones are in ``_pipeline.py``):

1. attributes: the target taken apart (absolute-form ``http://reviews:9080/x`` → authority +
   origin-form path), the headers as a dict for matching, the request's ``x-request-id``;
2. route: ``table.decide`` (``trimesh.routing``, pure) — the table is read once per request, so a
   snapshot swap never changes a request in flight;
3. local replies: ``Reject`` (NR), ``Redirect``, a CORS preflight (Envoy's cors filter: preflights
   answered here, simple requests annotated), a fault delay (flag DI, then the request goes on) or
   abort (FI);
4. the upstream head: Host rewritten, hop-by-hop and ``x-envoy-*`` control fields dropped,
   ``x-forwarded-for`` appended, ``x-request-id`` added when absent, the route's extra headers;
   ``websocketUpgrade`` routes relay the Upgrade (``_upgrade.py``), other Upgrades are stripped;
   ``CONNECT host:port`` opens a TCP tunnel instead (``_tcp.py``: routed, then a byte relay);
5. body, admission, attempts, relay, record: the shared stages, plus a mirror copy
   (fire-and-forget in a separate nursery, a bounded number in flight; its outcome never touches
   the primary; Envoy's shadow host is the authority with ``-shadow`` appended).
"""

from __future__ import annotations

import trio

from ..errors import UpstreamError
from ..routing import Forward, MeshReply, Redirect, RequestInfo, fault_abort
from ..telemetry import B3_HEADERS
from ._http1 import END, HOP_BY_HOP, render_request_head
from ._pipeline import Pipeline
from ._pool import UpstreamRequest, exchange
from ._exchange import connection_tokens, split_target
from ._h2up import H2_PROTOCOLS, h2_exchange, h2_request_fields
from ._tcp import TCP_IDLE_TIMEOUT, connect_tunnel
from ._upgrade import relay_upgrade

MIRROR_MAX_IN_FLIGHT = 64  # concurrent mirror copies; more are dropped (counted)
DEFAULT_ROUTE_TIMEOUT = 15.0  # seconds; Istio 0.x httpReqTimeout default
_CORS_OK = MeshReply(200, "", "")


def shadow_authority(authority: str) -> str:
    """Envoy's mirror host: ``-shadow`` appended to the host, before any port."""
    if authority.startswith("["):
        return authority + "-shadow"
    host, sep, port = authority.rpartition(":")
    if sep and port.isdigit():
        return f"{host}-shadow:{port}"
    return authority + "-shadow"


def cors_preflight(cors, method: str, hdict: dict) -> list[tuple[str, str]] | None:
    """The preflight answer's headers when the request is an allowed CORS preflight."""
    origin = hdict.get("origin")
    if not origin or not ("*" in cors.allow_origin or origin in cors.allow_origin):
        return None
    if method != "OPTIONS" or "access-control-request-method" not in hdict:
        return None
    pre = [("access-control-allow-origin", origin)]
    if cors.allow_methods:
        pre.append(("access-control-allow-methods", ",".join(cors.allow_methods)))
    if cors.allow_headers:
        pre.append(("access-control-allow-headers", ",".join(cors.allow_headers)))
    if cors.max_age is not None:
        pre.append(("access-control-max-age", str(int(cors.max_age))))
    if cors.allow_credentials:
        pre.append(("access-control-allow-credentials", "true"))
    return pre


def cors_response_headers(cors, hdict: dict) -> list[tuple[str, str]]:
    """What a simple (non-preflight) CORS request's response gets."""
    origin = hdict.get("origin")
    if not origin or not ("*" in cors.allow_origin or origin in cors.allow_origin):
        return []
    extra = [("access-control-allow-origin", origin)]
    if cors.expose_headers:
        extra.append(("access-control-expose-headers", ",".join(cors.expose_headers)))
    if cors.allow_credentials:
        extra.append(("access-control-allow-credentials", "true"))
    return extra


class _MirrorDown:
    """The downstream of a mirrored copy: nobody waits for its answer, no deadline but its own."""

    __slots__ = ("upstream", "expired")

    def __init__(self) -> None:
        self.upstream = None
        self.expired = False


class OutboundProxy(Pipeline):
    """The outbound handler. ``table`` is the current ``RouteTable`` (swap it to change config);
    ``rng`` a ``random.Random``; ``mirror_nursery`` where mirror copies run."""

    direction = "outbound"
    tracer = None  # a trimesh.telemetry.Tracer: B3 context and a CLIENT span per request

    source_attributes = None  # trimesh.sidecar.install_mixer sets (header, value); docs/mixer.md

    def __init__(self, table, *, rng, pool, access_log, mirror_nursery=None,
                 mirror_max_in_flight: int = MIRROR_MAX_IN_FLIGHT, **kw) -> None:
        super().__init__(rng=rng, pool=pool, access_log=access_log, **kw)
        self.table = table
        self.mirror_nursery = mirror_nursery
        self.mirror_max_in_flight = mirror_max_in_flight
        self.mirrors_in_flight = 0
        self.tcp_idle_timeout = TCP_IDLE_TIMEOUT  # CONNECT tunnels (trimesh/proxy/_tcp.py)

    async def handle(self, ex) -> bool:
        head = ex.head
        if head.method == "CONNECT":  # a TCP tunnel (trimesh/proxy/_tcp.py)
            return await connect_tunnel(self, ex)
        ex.scheme, ex.authority, ex.path = split_target(head)
        return await self.route(ex)

    async def route(self, ex) -> bool:
        """The route stage onwards, for a request whose authority and path are set."""
        head = ex.head
        hdict = ex.headers = dict(head.headers)
        ex.request_id = hdict.get("x-request-id")
        decision = self.table.decide(RequestInfo(method=head.method, authority=ex.authority,
                                                 path=ex.path, scheme=ex.scheme,
                                                 headers=hdict), self.rng)
        if type(decision) is not Forward:
            if type(decision) is Redirect:
                ex.rule = decision.rule
                return await self.reply(ex, MeshReply(decision.status, "", ""),
                                        [("location", decision.location)])
            return await self.reply(ex, decision)  # Reject: status, flag, body
        fwd = ex.fwd = decision
        ex.rule = fwd.rule
        ex.cluster_name = fwd.cluster.name if fwd.cluster is not None else (
            fwd.external_host or "")
        if fwd.cors is not None:
            pre = cors_preflight(fwd.cors, head.method, hdict)
            if pre is not None:
                return await self.reply(ex, _CORS_OK, pre)
            ex.extra = cors_response_headers(fwd.cors, hdict)
        if fwd.delay:
            ex.add_flag("DI")
            await trio.sleep(fwd.delay)
        if fwd.abort_status is not None:
            return await self.reply(ex, fault_abort(fwd.abort_status))
        websocket = head.upgrade == "websocket" and fwd.websocket_upgrade
        hdrs = self.upstream_headers(ex, websocket)
        out_path = fwd.rewrite_path or ex.path
        if websocket:
            return await relay_upgrade(self, ex, hdrs, out_path)
        return await self.forward(ex, hdrs, out_path)

    def upstream_headers(self, ex, websocket: bool) -> list[tuple[str, str]]:
        """The request head's fields for the upstream (module docstring, step 4)."""
        head = ex.head
        fwd = ex.fwd
        hdrs = [("host", fwd.rewrite_authority or ex.authority)]
        named = connection_tokens(head.connection) if head.connection is not None else None
        xff = None
        tracer = self.tracer
        trace = ex.trace = tracer.span(ex.headers) if tracer is not None else None
        for n, v in head.headers:
            if n in HOP_BY_HOP:
                if websocket and n == "upgrade":
                    hdrs.append((n, v))
                continue
            if named is not None and n in named:
                continue
            if n == "host" or n == "expect" or n.startswith("x-envoy-"):
                continue
            if n == "x-forwarded-for":
                xff = v
                continue
            if trace is not None and n in B3_HEADERS:
                continue  # replaced by this hop's span context below
            hdrs.append((n, v))
        client = ex.down.client
        hdrs.append(("x-forwarded-for", f"{xff}, {client}" if xff else client))
        if ex.request_id is None:
            ex.request_id = self._ids.next()
            hdrs.append(("x-request-id", ex.request_id))
        if trace is not None:
            hdrs.extend(trace.headers())
        if fwd.append_headers:
            hdrs.extend(fwd.append_headers)
        src = self.source_attributes  # (name, value): this workload, for the callee's Mixer check
        if src is not None:
            hdrs = [h for h in hdrs if h[0] != src[0]]  # the app's own copy is not believed
            hdrs.append(src)
        if websocket:
            hdrs.append(("connection", "upgrade"))
        return hdrs

    # -- mirroring -------------------------------------------------------------------------------
    def start_mirror(self, ex, hdrs: list, path: str, body: bytes) -> None:
        if self.mirror_nursery is None:
            return
        if self.mirrors_in_flight >= self.mirror_max_in_flight:
            self.counters.inc("mirror_dropped")
            return
        fwd = ex.fwd
        inst = fwd.mirror.pick(self.rng, trio.current_time())
        if inst is None:
            self.counters.inc("mirror_no_upstream")
            return
        mh = [("host", shadow_authority(fwd.rewrite_authority or ex.authority))]
        mh.extend(hdrs[1:])
        endpoint = inst.endpoint
        secure = fwd.mirror.secure  # the copy goes as the primary would: mutual TLS when on
        if secure is not None:
            endpoint = secure.get(endpoint, endpoint)
        fields = None
        if inst.protocol in H2_PROTOCOLS:  # an HTTP/2 (gRPC) instance gets the copy in HTTP/2
            fields = h2_request_fields(ex.head.method, path, mh)
            payload = body
        else:
            payload = render_request_head(ex.head.method, path, mh) + body
        self.mirrors_in_flight += 1
        self.counters.inc("mirror_started")
        self.mirror_nursery.start_soon(self._mirror, endpoint, payload,
                                       ex.head_request,
                                       fwd.timeout or DEFAULT_ROUTE_TIMEOUT, fields)

    async def _mirror(self, endpoint, payload: bytes, head_request: bool, timeout: float,
                      fields=None) -> None:
        try:
            with trio.move_on_after(timeout) as scope:
                if fields is not None:
                    conn, rh = await h2_exchange(
                        self.h2_pool, endpoint,
                        UpstreamRequest(b"", head_request=head_request, down=_MirrorDown()),
                        fields, payload)
                else:
                    conn, rh = await exchange(self.pool, endpoint,
                                              UpstreamRequest(payload, head_request=head_request))
                try:
                    while (await conn.next_event())[0] != END:
                        pass
                except BaseException:
                    self.pool.discard(conn)
                    raise
                if rh.keep_alive and not rh.close_delimited:
                    self.pool.release(conn)
                else:
                    self.pool.discard(conn)
                self.counters.inc("mirror_ok")
            if scope.cancelled_caught:
                self.counters.inc("mirror_timeout")
        except UpstreamError:
            self.counters.inc("mirror_failed")
        finally:
            self.mirrors_in_flight -= 1

    def statistics(self) -> dict[str, object]:
        s = super().statistics()
        s["mirrors_in_flight"] = self.mirrors_in_flight
        clusters = getattr(self.table, "clusters", None)
        if clusters is not None:
            # Envoy's names, as its admin /stats prints them (traffic-tasks.md §8.5 greps
            # ``cluster.out.<name>.upstream_rq_pending_overflow``), numeric entries only.
            s["clusters"] = {
                f"cluster.out.{name}.{key}": value
                for name, cluster in clusters().items()
                for key, value in cluster.statistics().items()
                if isinstance(value, (int, float)) and not isinstance(value, bool)}
        return s
