"""The ingress side: requests entering the mesh at its edge (``trimesh run ingress``).

An ingress is an outbound proxy whose caller is the outside world: one stage comes first — the
``Ingress`` objects (:class:`~trimesh.routing.IngressTable`, compiled once per snapshot) map the
request's host and path to a backend ``service:port``; a path they do not expose is answered 404
with an empty body (traffic-tasks.md IN2) and flag NR. Then the outbound's stages run unchanged
with that backend as the authority: route rules apply, matched against the ingress's own identity
(``source.name: istio-ingress``, ``source.labels: {istio: ingress}``, IN9), so the docs'
``status-route`` timeout applies at the ingress only (IN8). Relayed responses carry Envoy's
``x-envoy-upstream-service-time`` (IN1).

Decided where the docs leave a choice (IN11): faults in route rules DO apply at the ingress —
Istio 0.x could not, and said so as a limitation; trimesh runs the same stages everywhere.
The upstream sees ``Host: service:port`` (the backend), as a mesh call would.
"""

from __future__ import annotations

import logging

from ..routing import IngressTable, MeshReply, compile_ingress
from ._exchange import split_target
from ._outbound import OutboundProxy

INGRESS_SERVICE = "istio-ingress"  # the ingress's source name (IN9)
INGRESS_LABELS = {"istio": "ingress"}
NOT_EXPOSED = MeshReply(404, "NR", "")  # IN2: 404 with content-length 0

log = logging.getLogger("trimesh.ingress")


class IngressProxy(OutboundProxy):
    """The edge handler. ``snapshot`` is a callable giving the current Snapshot (the Ingress
    objects); ``table`` the route table compiled for the ingress's identity, as for any
    outbound."""

    direction = "ingress"
    report_service_time = True

    def __init__(self, table, *, snapshot, rng, pool, access_log, table_of=None, **kw) -> None:
        self._table_of = table_of  # a getter of the current table (the sidecar's), or None
        super().__init__(table, rng=rng, pool=pool, access_log=access_log, **kw)
        self._snapshot = snapshot
        self._ingress: IngressTable | None = None
        self._ingress_of = None  # the snapshot the ingress table was compiled from

    @property
    def table(self):
        return self._table_of() if self._table_of is not None else self._table

    @table.setter
    def table(self, value) -> None:
        self._table = value

    def ingress_table(self) -> IngressTable:
        snap = self._snapshot()
        if snap is not self._ingress_of:
            told = set(self._ingress.problems) if self._ingress is not None else set()
            self._ingress = compile_ingress(snap)
            self._ingress_of = snap
            now = set(self._ingress.problems)
            for problem in self._ingress.problems:
                if problem not in told:  # once, not on every snapshot
                    log.warning("ingress: %s", problem)
            for problem in sorted(told - now):  # e.g. gossip found the backend's instance
                log.info("ingress: resolved: %s", problem)
        return self._ingress

    async def handle(self, ex) -> bool:
        ex.scheme, authority, ex.path = split_target(ex.head)
        backend = self.ingress_table().match(authority, ex.path)
        if backend is None:
            ex.authority = authority
            return await self.reply(ex, NOT_EXPOSED)
        ex.authority = backend
        return await self.route(ex)

    def statistics(self) -> dict[str, object]:
        s = super().statistics()
        if self._ingress is not None:
            s.update(self._ingress.statistics())
        return s
