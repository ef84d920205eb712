"""The inbound side: calls into the app, through the destination's sidecar.

A peer of the outbound side on the same pipeline (``_pipeline.py``); its own stages are few:

1. attributes: target, authority, path; the request's ``x-request-id`` — generated here when the
   request has none (Envoy's connection manager does so on every side), so an app that forwards
   the id lets one request be followed across every hop;
2. policy: ``self.policy`` when set — an object whose ``async check(exchange)`` returns a mesh
   reply (a denial, 403/404/429 …) or None to go on; Istio checks on the server side, so only the
   inbound calls it (authentication and the Mixer check and quota plug in here);
3. route: always the app (:attr:`InboundProxy.route`, a ``Forward`` to ``--app-address:--app-port``
   with no cluster, no retries and no route timeout — the caller's side owns those);
4. the app's head: hop-by-hop fields, ``Expect`` and ``x-envoy-*`` control fields dropped;
   ``x-forwarded-client-cert`` is always dropped and, under mutual TLS, set from the verified
   client certificate (``By=<this sidecar>;Hash=…;URI=<caller>``, trimesh/proxy/_tls.py ``Peer``),
   so no caller can claim an identity in a header.

The shared stages then read the body, try once on a pooled connection to the app (503 UF when it
cannot be reached) and relay the response. Relayed responses get no ``x-trimesh-attempts``: the
caller's side reports the tries it made, so a response carries the header once; replies the
inbound makes itself carry ``x-trimesh-attempts: 1`` and their flag, which the caller's side
replaces and keeps.
"""

from __future__ import annotations

from ..config import service_fqdn
from ..routing import Forward
from ..telemetry import B3_HEADERS
from ._exchange import connection_tokens, split_target
from ._http1 import HOP_BY_HOP
from ._pipeline import Pipeline
from ._upgrade import relay_upgrade

APP_CLUSTER = "inbound|app"  # the access log's cluster name for the app
XFCC = "x-forwarded-client-cert"


class InboundProxy(Pipeline):
    """The inbound handler: forward to the app at ``app_endpoint``."""

    direction = "inbound"
    report_attempts = False
    tracer = None  # a trimesh.telemetry.Tracer: B3 context and a SERVER span per request
    # Fields the mesh adds for its own stages (the caller's source attributes, which the policy
    # stage reads from the head): not passed on to the app. trimesh.sidecar.install_mixer sets it.
    private_headers: frozenset[str] = frozenset()

    def __init__(self, app_endpoint: tuple[str, int], *, rng, pool, access_log,
                 service: str = "", **kw) -> None:
        super().__init__(rng=rng, pool=pool, access_log=access_log, **kw)
        self.app_endpoint = app_endpoint
        self.upstream = f"{app_endpoint[0]}:{app_endpoint[1]}"
        self.route = Forward(service_fqdn(service) if service else "", None, None, 0.0,
                             external_host=app_endpoint[0], external_port=app_endpoint[1])

    async def handle(self, ex) -> bool:
        head = ex.head
        ex.scheme, ex.authority, ex.path = split_target(head)
        ex.fwd = self.route
        ex.cluster_name = APP_CLUSTER
        websocket = head.upgrade == "websocket"
        hdrs = self.app_headers(ex, websocket)
        policy = self.policy
        if policy is not None:  # Mixer check and quota, on the server side as Istio does
            reply = await policy.check(ex)
            if reply is not None:
                return await self.reply(ex, reply)
        if websocket:
            return await relay_upgrade(self, ex, hdrs, ex.path)
        return await self.forward(ex, hdrs, ex.path)

    def app_headers(self, ex, websocket: bool) -> list[tuple[str, str]]:
        head = ex.head
        hdrs = []
        named = connection_tokens(head.connection) if head.connection is not None else None
        request_id = None
        tracer = self.tracer
        b3 = {} if tracer is not None else None
        private = self.private_headers
        for n, v in head.headers:
            if n in HOP_BY_HOP:
                if websocket and n == "upgrade":
                    hdrs.append((n, v))
                continue
            if ((named is not None and n in named) or n == "expect" or n.startswith("x-envoy-")
                    or n == XFCC or (private and n in private)):
                continue
            if n == "x-request-id":
                request_id = v
            elif b3 is not None and n in B3_HEADERS:
                b3[n] = v  # replaced by this hop's span context below
                continue
            hdrs.append((n, v))
        if request_id is None:
            request_id = self._ids.next()
            hdrs.append(("x-request-id", request_id))
        ex.request_id = request_id
        peer = ex.down.peer
        if peer is not None:
            hdrs.append((XFCC, peer.xfcc))
        if tracer is not None:
            trace = ex.trace = tracer.span(b3)
            hdrs.extend(trace.headers())
        if websocket:
            hdrs.append(("connection", "upgrade"))
        return hdrs
