"""The values that cross the boundary between routing (pure) and the proxy (Trio).

Binding contract: /work/briefs/routing-interface.md. They are msgspec structs: immutable (except
:class:`RequestInfo`, which the proxy builds per request), slotted, and cheap to construct — a
decision is made for every request, so construction cost matters.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..config import DEFAULT_DOMAIN, DEFAULT_NAMESPACE, host_to_fqdn, service_fqdn


class RequestInfo(msgspec.Struct, kw_only=True):
    """What routing needs to know about a request. ``headers`` keys are lower-case. A TCP
    connection has ``scheme="tcp"``, its client's ``source_ip`` and, when the connection names
    one (``CONNECT 10.1.2.3:3306``), its ``destination_ip`` (``match.tcp`` reads them)."""

    method: str
    authority: str
    path: str = "/"
    scheme: str = "http"
    headers: dict[str, str] = {}
    source_ip: str = ""
    destination_ip: str = ""


class SourceIdentity(msgspec.Struct, frozen=True, kw_only=True):
    """The calling sidecar's own service, namespace and instance labels (for ``match.source`` and
    DestinationPolicy ``source``). ``service`` may be a short name or an FQDN."""

    service: str
    namespace: str = DEFAULT_NAMESPACE
    labels: dict[str, str] = {}

    def fqdn(self, domain: str = DEFAULT_DOMAIN) -> str:
        if "." in self.service:
            return host_to_fqdn(self.service, self.namespace, domain)
        return service_fqdn(self.service.lower(), self.namespace, domain)


class Forward(msgspec.Struct, frozen=True):
    """Forward the request to ``cluster`` (or, for egress, to ``external_host:external_port``).

    ``timeout`` is the overall budget in seconds including retries; ``retry`` ``None`` means no
    retries; ``delay`` / ``abort_status`` are faults already rolled for this request (access-log
    flags ``DI`` / ``FI``); ``mirror`` a cluster to copy the request to (best effort);
    ``rewrite_path`` / ``rewrite_authority`` the final values to send upstream (``None``: keep).
    """

    fqdn: str
    rule: str | None
    cluster: Any
    timeout: float
    retry: Any = None  # RetryPolicy | None
    delay: float | None = None
    abort_status: int | None = None
    mirror: Any = None  # Cluster | None
    rewrite_path: str | None = None
    rewrite_authority: str | None = None
    append_headers: tuple[tuple[str, str], ...] = ()
    cors: Any = None  # trimesh.config.CorsPolicy | None
    websocket_upgrade: bool = False
    egress_tls: bool = False
    external_host: str | None = None
    external_port: int | None = None

    @property
    def is_egress(self) -> bool:
        return self.external_host is not None


class Redirect(msgspec.Struct, frozen=True):
    """Answer with a redirect (RouteRule ``redirect``: HTTP 302) to ``location``."""

    status: int
    location: str
    rule: str | None = None


class Reject(msgspec.Struct, frozen=True):
    """Answer without forwarding: ``status``, the Envoy response ``flag`` (``NR``, ...) and a
    short body."""

    status: int
    flag: str
    body: str


Decision = Forward | Redirect | Reject
