"""``trimesh run ingress``: a sidecar with no app that serves ``Ingress`` objects at the mesh edge.

:func:`install_ingress` wires an :class:`~trimesh.proxy.IngressProxy` into a sidecar before its
tree starts (``serve_sidecar(setup=...)``): the sidecar's own snapshot and route table (compiled
for its identity, ``istio-ingress`` with ``istio: ingress``), its upstream pool and access log, and
one ``ingress`` child that runs the HTTP listener (``--port``, 80) and, with a certificate, the
HTTPS one (``--tls-port``, 443, one certificate for every client: the docs' secure ingress). The
child drains like the sidecar's own listeners. docs/ingress.md is the user's page.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import trio

from ..errors import ConfigError
from ..nursery import ChildSpec
from ..proxy import HttpServer, IngressProxy

DEFAULT_INGRESS_PORT = 80  # CLI.md
DEFAULT_INGRESS_TLS_PORT = 443


@dataclass(frozen=True)
class IngressOptions:
    port: int = DEFAULT_INGRESS_PORT
    tls_port: int = DEFAULT_INGRESS_TLS_PORT
    tls_cert: str | None = None
    tls_key: str | None = None

    def tls_context(self):
        """The HTTPS listener's context, or None without a certificate. A certificate that does
        not match its key (or a file that is not PEM) is a ConfigError naming the files."""
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("--tls-cert and --tls-key go together")
        if self.tls_cert is None:
            return None
        import ssl

        from ..proxy import edge_context
        try:
            return edge_context(self.tls_cert, self.tls_key)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(f"{self.tls_cert} / {self.tls_key}: not a certificate and its "
                              f"key: {getattr(exc, 'reason', None) or exc}") from None


def install_ingress(sidecar: Any, options: IngressOptions) -> IngressProxy:
    tls = options.tls_context()  # a bad certificate is a user error before anything listens
    proxy = IngressProxy(None, table_of=lambda: sidecar.table, snapshot=lambda: sidecar.snapshot,
                         rng=sidecar.rng, pool=sidecar.pool, access_log=sidecar.telemetry)
    proxy.tracer = sidecar.tracer  # the edge starts the traces of requests from outside
    servers = [(HttpServer("ingress", proxy), options.port)]
    if tls is not None:
        servers.append((HttpServer("ingress-tls", proxy, tls_context=tls), options.tls_port))

    async def serve(*, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            bound = [await nursery.start(partial(sidecar._serve_listener, server, port))
                     for server, port in servers]
            proxy.ingress_table()  # compiled now: a backend that reaches nothing is logged at start
            task_status.started(bound)

    sidecar.add_child(ChildSpec("ingress", serve, description="ingress listeners (Ingress "
                                "objects)", shutdown_timeout=sidecar.config.drain_timeout + 1.0))
    sidecar.ingress = proxy
    sidecar.ingress_servers = [s for s, _ in servers]
    return proxy
