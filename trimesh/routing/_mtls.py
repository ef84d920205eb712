"""Which sidecar-to-sidecar hops use mutual TLS, and whom secure naming expects — pure.

Decided once per snapshot (``RouteTable`` builds each :class:`~trimesh.routing.Cluster` with it),
from the MeshConfig in effect and the instance's registration (docs/identity.md §12):

1. ``auth.istio.io/<port>`` on the instance (``-a KEY=VALUE`` on ``run sidecar`` / ``register``,
   ``annotations`` in a registry file), ``<port>`` the instance's port: ``NONE`` or
   ``MUTUAL_TLS`` overrides the mesh for that port (Istio 0.x's per-service annotation);
2. otherwise a service listed in ``mtlsExcludedServices`` (FQDNs) is called in plaintext;
3. otherwise the mesh's ``authPolicy``.

TCP ports stay plaintext for now (the byte relay has no TLS yet): a documented limit.

The same rule, read for the sidecar's own instance, says whether its inbound listener requires
mutual TLS (:func:`inbound_mtls`), so the two ends of a hop always agree.

A hop with mutual TLS connects to the **secure endpoint** ``(address, port, "mtls", identity)``:
the pool keys its connections by it (a plaintext and an mTLS connection to one address never
mix) and, after the handshake, compares the identity the server's certificate carries with the
fourth element — the SPIFFE URI of the service account the registry names for the instance
(**secure naming**). A mismatch is the outcome :data:`~trimesh.routing.SECURE_NAMING` (503 UF,
its own body, counted).
"""

from __future__ import annotations

from typing import Any

from ..config import AUTH_ANNOTATION, AUTH_MODES, is_tcp_protocol

MTLS = "mtls"  # the third element of a secure endpoint


def annotation_policy(annotations: dict[str, str], port: int) -> str | None:
    """The per-port override an instance's annotations carry, or None."""
    if not annotations:
        return None
    value = annotations.get(f"{AUTH_ANNOTATION}{port}")
    return value.upper() if value is not None and value.upper() in AUTH_MODES else None


def instance_uses_mtls(mesh: Any, inst: Any) -> bool:
    """Does a call to ``inst`` (a ServiceInstance) use mutual TLS under ``mesh`` (MeshConfig)?
    TCP ports (``tcp``, ``mysql``, …) are relayed in plaintext (not yet under mutual TLS)."""
    if is_tcp_protocol(inst.protocol):
        return False
    override = annotation_policy(inst.annotations, inst.port)
    if override is not None:
        return override == "MUTUAL_TLS"
    if inst.fqdn in mesh.mtls_excluded_services:
        return False
    return mesh.auth_policy == "MUTUAL_TLS"


def inbound_mtls(mesh: Any, fqdn: str, port: int, annotations: dict[str, str]) -> bool:
    """Does this sidecar's inbound listener (service ``fqdn``, port, its annotations) require
    mutual TLS? The same rule as :func:`instance_uses_mtls`, for the callee's side."""
    override = annotation_policy(annotations, port)
    if override is not None:
        return override == "MUTUAL_TLS"
    if fqdn in mesh.mtls_excluded_services:
        return False
    return mesh.auth_policy == "MUTUAL_TLS"


def spiffe_uri(inst: Any) -> str:
    """The SPIFFE ID of the service account the registry names for ``inst``."""
    return f"spiffe://{inst.domain}/ns/{inst.namespace}/sa/{inst.service_account}"


def secure_endpoints(mesh: Any, instances: Any) -> dict[tuple[str, int], tuple] | None:
    """``{(address, port): (address, port, "mtls", identity)}`` for the instances called with
    mutual TLS; None when none is (the plaintext fast path needs no lookup)."""
    out = {inst.endpoint: (inst.address, inst.port, MTLS, spiffe_uri(inst))
           for inst in instances if instance_uses_mtls(mesh, inst)}
    return out or None
