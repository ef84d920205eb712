"""The mesh config: the settings Istio kept in the ``istio`` ConfigMap (key ``mesh``).

Field names are Istio's MeshConfig/ProxyConfig JSON names (setup.md §3, telemetry-security.md
§13), so a copied ``mesh`` section loads as is; defaults are the 0.5–0.7 ``istio.yaml`` ones
(setup.md §7 item 17) except where trimesh has no Kubernetes service to point at: the Mixer address
is the control process's (DESIGN.md §1, port 9091) and there is no Zipkin collector unless one is
configured (DESIGN.md §1). Kubernetes/Envoy-only fields (``configPath``, ``binaryPath``,
``ingressService`` …) are accepted so copied configs load, and ignored.

``authPolicy`` is ``NONE`` (plaintext between sidecars) or ``MUTUAL_TLS``; per-service overrides use
the ``auth.istio.io/<port>`` annotation on the service registration; ``mtlsExcludedServices`` lists
FQDNs that sidecars always call without Istio mTLS (default: the Kubernetes API server, docs L2403).

A mesh config travels as the kind ``MeshConfig`` (category ``mesh``) so the control can store and
gossip it; :func:`trimesh.config.load_mesh_config` also reads the bare ConfigMap-style document.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from ._duration import Duration
from ._traffic import _Model

__all__ = ["ProxyConfig", "MeshConfig", "AuthPolicy", "DEFAULT_MTLS_EXCLUDED_SERVICES"]

AuthPolicy = Literal["NONE", "MUTUAL_TLS"]

DEFAULT_MTLS_EXCLUDED_SERVICES = ("kubernetes.default.svc.cluster.local",)  # docs L2403–L2407
DEFAULT_MIXER_ADDRESS = "127.0.0.1:9091"  # DESIGN.md §1: Mixer in the control process, Istio's 9091
DEFAULT_RDS_REFRESH_DELAY = Duration(30.0)  # istio.yaml 0.2–0.7
DEFAULT_DISCOVERY_REFRESH_DELAY = Duration(30.0)  # istio.yaml
DEFAULT_CONNECT_TIMEOUT = Duration(10.0)  # istio.yaml: connectTimeout 10s
DEFAULT_DRAIN_DURATION = Duration(45.0)  # istio.yaml: drainDuration 45s
DEFAULT_PARENT_SHUTDOWN_DURATION = Duration(60.0)  # istio.yaml: parentShutdownDuration 1m0s
DEFAULT_PROXY_ADMIN_PORT = 15000  # Envoy's admin port (DESIGN.md §1)
DEFAULT_SERVICE_CLUSTER = "trimesh-proxy"  # istio-proxy in Istio (setup.md §7 item 17)


class ProxyConfig(_Model):
    """``defaultConfig``: per-sidecar settings."""

    connect_timeout: Duration = DEFAULT_CONNECT_TIMEOUT
    drain_duration: Duration = DEFAULT_DRAIN_DURATION
    parent_shutdown_duration: Duration = DEFAULT_PARENT_SHUTDOWN_DURATION
    discovery_refresh_delay: Duration = DEFAULT_DISCOVERY_REFRESH_DELAY
    discovery_address: str | None = None
    zipkin_address: str | None = None
    statsd_udp_address: str | None = None
    proxy_admin_port: int = DEFAULT_PROXY_ADMIN_PORT
    service_cluster: str = DEFAULT_SERVICE_CLUSTER
    control_plane_auth_policy: AuthPolicy = "NONE"
    config_path: str | None = None  # Envoy-only, accepted and ignored
    binary_path: str | None = None  # Envoy-only, accepted and ignored
    custom_config_file: str | None = None  # Envoy-only, accepted and ignored
    availability_zone: str | None = None


class MeshConfig(_Model):
    auth_policy: AuthPolicy = "NONE"
    mtls_excluded_services: list[str] = msgspec.field(
        default_factory=lambda: list(DEFAULT_MTLS_EXCLUDED_SERVICES))
    disable_policy_checks: bool = False
    enable_tracing: bool = True
    mixer_address: str | None = DEFAULT_MIXER_ADDRESS
    mixer_check_server: str | None = None
    mixer_report_server: str | None = None
    ingress_service: str | None = None  # Kubernetes-only, accepted and ignored
    egress_proxy_address: str | None = None
    ingress_class: str = "istio"
    ingress_controller_mode: Literal["OFF", "DEFAULT", "STRICT"] = "DEFAULT"
    rds_refresh_delay: Duration = DEFAULT_RDS_REFRESH_DELAY
    access_log_file: str | None = None
    default_config: ProxyConfig = msgspec.field(default_factory=ProxyConfig)
