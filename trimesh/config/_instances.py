"""Service instances: the registry's unit (an address and port of a service, with labels)."""

from __future__ import annotations

import msgspec

from ._names import DEFAULT_DOMAIN, DEFAULT_NAMESPACE, service_fqdn

# Every protocol a registry entry may carry (trimesh/config/_protocols.py: port names decide).
PROTOCOLS = ("http", "http2", "grpc", "tcp", "https", "mongo", "redis", "mysql")


class ServiceInstance(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One endpoint of a service. ``labels`` always include ``app: <service>`` when built by
    :func:`make_instance`; ``healthy`` is what the health-checker or gossip last said."""

    service: str
    address: str
    port: int
    namespace: str = DEFAULT_NAMESPACE
    protocol: str = "http"
    labels: dict[str, str] = {}
    service_account: str = "default"
    healthy: bool = True
    domain: str = DEFAULT_DOMAIN

    @property
    def fqdn(self) -> str:
        return service_fqdn(self.service, self.namespace, self.domain)

    @property
    def endpoint(self) -> tuple[str, int]:
        return (self.address, self.port)

    def has_labels(self, wanted: dict[str, str]) -> bool:
        labels = self.labels
        return all(labels.get(k) == v for k, v in wanted.items())


def make_instance(service: str, address: str, port: int, *, labels: dict[str, str] | None = None,
                  **kw) -> ServiceInstance:
    """Build an instance, adding ``app=<service>`` unless given (CLI.md)."""
    merged = {"app": service}
    merged.update(labels or {})
    return ServiceInstance(service=service, address=address, port=port, labels=merged, **kw)
