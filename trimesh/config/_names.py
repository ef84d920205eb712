"""Service names: how ``reviews``, ``reviews.default`` and the FQDN name the same service.

A service's fully qualified name is ``<name>.<namespace>.svc.<domain>`` (DESIGN.md §4); the docs'
``destination.domain`` is the part after the namespace (``svc.cluster.local``), so
``FQDN = name + "." + namespace + "." + domain`` (concepts.md §8.3).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._traffic import IstioService

DEFAULT_NAMESPACE = "default"
DEFAULT_DOMAIN = "cluster.local"  # the mesh domain; the service domain is "svc." + this


def service_domain(domain: str = DEFAULT_DOMAIN) -> str:
    return f"svc.{domain}"


def service_fqdn(name: str, namespace: str = DEFAULT_NAMESPACE, domain: str = DEFAULT_DOMAIN) -> str:
    """``reviews`` → ``reviews.default.svc.cluster.local``."""
    return f"{name}.{namespace}.{service_domain(domain)}"


def resolve_service(svc: IstioService, default_namespace: str, domain: str = DEFAULT_DOMAIN) -> str | None:
    """The FQDN an ``IstioService`` names; ``None`` when it names nothing."""
    if svc.service:
        return svc.service.lower()
    if not svc.name:
        return None
    if "." in svc.name and not svc.namespace and not svc.domain:
        # ``name: reviews.default`` or a full name: the same service the host would name (§4).
        return host_to_fqdn(svc.name, default_namespace, domain)
    namespace = svc.namespace or default_namespace
    sdomain = svc.domain or service_domain(domain)
    return f"{svc.name}.{namespace}.{sdomain}".lower()


def host_to_fqdn(host: str, default_namespace: str = DEFAULT_NAMESPACE,
                 domain: str = DEFAULT_DOMAIN) -> str:
    """Expand the host a client called (``reviews``, ``reviews.default``, ``reviews.default.svc``,
    or the FQDN; any ``:port`` removed) to the FQDN it means inside the mesh. Names with more dots
    than a mesh name are returned unchanged (external hosts)."""
    host = host.strip().lower()
    if host.startswith("["):  # IPv6 literal
        end = host.find("]")
        return host[: end + 1] if end > 0 else host
    if ":" in host:
        host = host.rsplit(":", 1)[0]
    host = host.rstrip(".")
    sdomain = service_domain(domain)
    parts = host.split(".")
    if len(parts) == 1:
        return f"{host}.{default_namespace}.{sdomain}"
    if len(parts) == 2:
        return f"{host}.{sdomain}"
    if len(parts) == 3 and parts[2] == "svc":
        return f"{host}.{domain}"
    return host
