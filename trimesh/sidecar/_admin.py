"""The sidecar's admin server (h11; Envoy's admin port 15000).

- ``GET /ready``: 200 ``ready`` when every child of the sidecar's tree is up and a snapshot is
  loaded; 503 ``draining`` after SIGTERM (so a load balancer stops sending), 503 ``starting``
  before, 503 ``not ready: health restarting`` while a crashed child comes back.
- ``GET /stats``: JSON: ``tree`` (the supervisor's statistics: phase, every child's state,
  restarts and last error) and counters (listeners, outbound/inbound handlers, pools, sources).
- ``GET /config_dump``: the active snapshot: version, control revision, every object in the docs'
  shape, every instance.
- ``GET /clusters``: the route table's clusters with their instances and balancer state.
- ``GET /metrics``: Prometheus text format (prometheus-client's exposition of the sidecar's
  ``metrics_registry``): Istio's request metrics for this sidecar's traffic and its runtime
  statistics as typed, labelled metrics (trimesh/telemetry/_metrics.py, docs/telemetry.md).
- ``GET /certs``: JSON: the workload certificate (identity, serial, not_before, not_after),
  renewals and the last error of the cert agent; 404 when the sidecar runs without one. With a
  cert agent, ``/ready`` is 503 ``not ready: no certificate (...)`` until it holds one, and
  again once the one it holds has expired (the CA unreachable meanwhile).

Control-plane traffic: a few requests a second at most, so it is served by
:class:`trimesh.service.HttpService` (h11: correct, slow, right here): keep-alive, ``HEAD``, an idle
timeout of :data:`ADMIN_IDLE_TIMEOUT`, and no request bodies (``MAX_ADMIN_REQUEST``).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import trio

from ..service import HttpService, Request, Response
from ..telemetry import CONTENT_TYPE, RuntimeCollector, metrics_registry, render_metrics

MAX_ADMIN_REQUEST = 16 * 1024  # bytes of a request head or body; the admin API takes no bodies
ADMIN_IDLE_TIMEOUT = 30.0  # seconds a kept-alive admin connection may stay idle

log = logging.getLogger("trimesh.sidecar")


def _json(data: Any) -> bytes:
    return (json.dumps(data, indent=1, sort_keys=True, default=str) + "\n").encode()


def _metrics(sidecar) -> bytes:
    """The sidecar's registry; a sidecar without one (a test double) gets its statistics."""
    registry = getattr(sidecar, "metrics_registry", None)
    if registry is None:
        registry = metrics_registry(RuntimeCollector(sidecar.statistics))
    # Rendered on the event loop: collectors read live state (a thread would race it); a few
    # hundred series take well under a millisecond.
    return render_metrics(registry)


def _not_ready(sidecar) -> str:
    """``starting``, or which children are not up (``restarting: health``) once it has started."""
    sup = getattr(sidecar, "supervisor", None)
    if sup is None or not getattr(sidecar, "started", False):
        return "starting"
    down = [f"{name} {child.state}" for name, child in sup.statistics().children.items()
            if child.state != "running"]
    if down:
        return "not ready: " + ", ".join(down)
    problem = getattr(sidecar, "mtls_problem", None)  # mutual TLS on, no certificate to use
    if problem:
        return _no_certificate(sidecar) or f"not ready: {problem}"
    return "starting"


def _no_certificate(sidecar) -> str | None:
    """With a cert agent (``sidecar.certs``): why the sidecar is not ready without a certificate."""
    store = getattr(sidecar, "certs", None)
    if store is None:
        return None
    why = f" ({store.last_error})" if store.last_error else ""
    held = store.current()
    if held is None:
        return "not ready: no certificate" + (why or " yet")
    agent = getattr(sidecar, "cert_agent", None)
    if agent is not None and held.not_after <= agent.wall_clock():
        return f"not ready: the certificate {held.serial:x} has expired{why}"
    return None


class AdminApp:
    """Maps admin paths to responses for one sidecar (``sidecar`` has ``ready``, ``draining``,
    ``statistics()``, ``config_dump()``, ``clusters()``)."""

    def __init__(self, sidecar) -> None:
        self.sidecar = sidecar
        self.requests = 0
        name = getattr(getattr(sidecar, "config", None), "name", None)
        self.service = HttpService(self.handle, name=f"sidecar {name} admin" if name else "admin",
                                   max_head=MAX_ADMIN_REQUEST,
                                   max_body=MAX_ADMIN_REQUEST, idle_timeout=ADMIN_IDLE_TIMEOUT,
                                   ready_level=logging.DEBUG)  # the sidecar's ready line names it

    def respond(self, method: str, path: str) -> tuple[int, str, bytes]:
        self.requests += 1
        path = path.split("?", 1)[0]
        sc = self.sidecar
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"method not allowed\n"
        if path == "/ready":
            if sc.draining:
                return 503, "text/plain", b"draining\n"
            if not sc.ready:
                return 503, "text/plain", (_not_ready(sc) + "\n").encode()
            missing = _no_certificate(sc)
            if missing:
                return 503, "text/plain", (missing + "\n").encode()
            return 200, "text/plain", b"ready\n"
        if path == "/stats":
            return 200, "application/json", _json(sc.statistics())
        if path == "/config_dump":
            return 200, "application/json", _json(sc.config_dump())
        if path == "/clusters":
            return 200, "application/json", _json(sc.clusters())
        if path == "/metrics":
            return 200, CONTENT_TYPE, _metrics(sc)
        if path == "/certs":
            agent = getattr(sc, "cert_agent", None)
            if agent is None:
                return 404, "text/plain", b"no cert agent (run the sidecar with --cert-dir)\n"
            return 200, "application/json", _json(agent.statistics())
        if path == "/":
            return 200, "text/plain", b"/ready /stats /config_dump /clusters /metrics /certs\n"
        return 404, "text/plain", b"not found\n"

    def statistics(self) -> dict[str, Any]:
        return {"requests": self.requests, "http": self.service.statistics()}

    def __repr__(self) -> str:
        return f"<AdminApp requests={self.requests} {self.service!r}>"

    async def handle(self, request: Request) -> Response:
        status, ctype, body = self.respond(request.method, request.target)
        return Response(status, [("content-type", ctype)], body)

    async def handle_connection(self, stream: trio.abc.Stream) -> None:
        """Serve one connection (a memory stream in tests)."""
        await self.service.serve_connection(stream)


async def serve_admin(app: AdminApp, host: str, port: int, *,
                      task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Serve ``app`` on ``host:port`` until cancelled; ``task_status.started((host, port))``."""
    listeners = await app.service.listen(host, port)
    task_status.started((app.service.host, app.service.port))
    await app.service.serve_listeners(listeners)
