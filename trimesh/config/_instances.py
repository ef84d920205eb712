"""Service instances: the registry's unit (an address and port of a service, with labels)."""

from __future__ import annotations

import msgspec

from ._names import DEFAULT_DOMAIN, DEFAULT_NAMESPACE, service_fqdn

# Every protocol a registry entry may carry (trimesh/config/_protocols.py: port names decide).
PROTOCOLS = ("http", "http2", "grpc", "tcp", "https", "mongo", "redis", "mysql")


class ServiceInstance(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One endpoint of a service. ``labels`` always include ``app: <service>`` when built by
    :func:`make_instance`; ``healthy`` is what the health-checker or gossip last said;
    ``annotations`` are the registration's (trimesh/routing/_mtls.py reads ``auth.istio.io/*``)."""

    service: str
    address: str
    port: int
    namespace: str = DEFAULT_NAMESPACE
    protocol: str = "http"
    labels: dict[str, str] = {}
    service_account: str = "default"
    healthy: bool = True
    domain: str = DEFAULT_DOMAIN
    # Registration annotations, e.g. ``auth.istio.io/9080: NONE`` (per-port mTLS opt-out)
    annotations: dict[str, str] = {}

    @property
    def fqdn(self) -> str:
        return service_fqdn(self.service, self.namespace, self.domain)

    @property
    def endpoint(self) -> tuple[str, int]:
        return (self.address, self.port)

    def has_labels(self, wanted: dict[str, str]) -> bool:
        labels = self.labels
        return all(labels.get(k) == v for k, v in wanted.items())


AUTH_ANNOTATION = "auth.istio.io/"  # + a port: NONE | MUTUAL_TLS (docs/identity.md §12)
AUTH_MODES = ("NONE", "MUTUAL_TLS")


def annotation_problem(annotations: object) -> tuple[str, str] | None:
    """What is wrong with a registration's annotations, as ``(key or "", message)``, or None.
    They map strings to strings; ``auth.istio.io/<port>`` needs a port 1..65535 and
    ``NONE`` or ``MUTUAL_TLS``."""
    if not isinstance(annotations, dict):
        return "", "annotations must be a mapping of strings"
    for key, value in annotations.items():
        if not isinstance(key, str) or not isinstance(value, str):
            return str(key), "annotations map strings to strings"
        if key.startswith(AUTH_ANNOTATION):
            port = key[len(AUTH_ANNOTATION):]
            if not port.isdigit() or not 0 < int(port) < 65536:
                return key, f"{AUTH_ANNOTATION}<port> needs a port 1..65535, got {port!r}"
            if value.upper() not in AUTH_MODES:
                return key, f"must be NONE or MUTUAL_TLS, got {value!r}"
    return None


def make_instance(service: str, address: str, port: int, *, labels: dict[str, str] | None = None,
                  **kw) -> ServiceInstance:
    """Build an instance, adding ``app=<service>`` unless given (CLI.md)."""
    merged = {"app": service}
    merged.update(labels or {})
    return ServiceInstance(service=service, address=address, port=port, labels=merged, **kw)
