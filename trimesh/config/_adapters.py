"""Typed models of the Mixer adapter kinds (handlers): ``denier``, ``listchecker``, ``memquota``,
``prometheus``, ``stdio``, ``fluentd``, ``kubernetesenv`` and ``noop``.

A handler is "a configured adapter: the adapter's constructor parameters are the handler's
configuration" (concepts.md §12.6). Fields and defaults follow the docs where they show them and the
adapters' ``config.proto`` of Istio 0.5–0.7 otherwise (telemetry-security.md §11.2, §15.2, §15.3;
traffic-tasks.md §9.2). Defaults are named constants with their source.
"""

from __future__ import annotations

from typing import Literal

from ._duration import Duration
from ._traffic import _Model

__all__ = [
    "RpcStatus",
    "DenierParams",
    "ListCheckerParams",
    "MemQuotaOverride",
    "MemQuotaQuota",
    "MemQuotaParams",
    "ExplicitBuckets",
    "LinearBuckets",
    "ExponentialBuckets",
    "BucketsDefinition",
    "PrometheusMetric",
    "PrometheusParams",
    "StdioParams",
    "FluentdParams",
    "KubernetesEnvParams",
    "NoopParams",
    "RPC_CODES",
    "DEFAULT_PROMETHEUS_BUCKETS",
]

# google.rpc.Code names by number (denier statuses are written as numbers: code 7 = PERMISSION_DENIED)
RPC_CODES = {0: "OK", 1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED",
             5: "NOT_FOUND", 6: "ALREADY_EXISTS", 7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED",
             9: "FAILED_PRECONDITION", 10: "ABORTED", 11: "OUT_OF_RANGE", 12: "UNIMPLEMENTED",
             13: "INTERNAL", 14: "UNAVAILABLE", 15: "DATA_LOSS", 16: "UNAUTHENTICATED"}

DENIER_VALID_DURATION = Duration(5.0)  # mixer/adapter/denier: validDuration 5s
DENIER_VALID_USE_COUNT = 1000  # mixer/adapter/denier: validUseCount 1000
LIST_REFRESH_INTERVAL = Duration(60.0)  # mixer/adapter/list: refreshInterval 60s (>= 1s)
LIST_TTL = Duration(300.0)  # mixer/adapter/list: ttl 300s (> refreshInterval)
LIST_CACHING_INTERVAL = Duration(300.0)  # mixer/adapter/list: cachingInterval 300s
LIST_CACHING_USE_COUNT = 10000  # mixer/adapter/list: cachingUseCount 10000
FLUENTD_ADDRESS = "localhost:24224"  # mixer/adapter/fluentd: default address
# Prometheus client default buckets (== the docs' explicit bounds, concepts.md §12.8)
DEFAULT_PROMETHEUS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


# --- denier ---------------------------------------------------------------------------------------


class RpcStatus(_Model):
    """A google.rpc.Status: ``code`` (7 = PERMISSION_DENIED) and ``message``."""

    code: int = 0
    message: str | None = None


class DenierParams(_Model):
    """``kind: denier``: every check it sees fails with ``status``. Without a status upstream used
    FAILED_PRECONDITION (9)."""

    status: RpcStatus | None = None
    valid_duration: Duration = DENIER_VALID_DURATION
    valid_use_count: int = DENIER_VALID_USE_COUNT


# --- listchecker ----------------------------------------------------------------------------------


class ListCheckerParams(_Model):
    """``kind: listchecker``: whitelist (``blacklist: false``, the default) or blacklist of
    ``overrides`` plus, optionally, a list fetched from ``providerUrl``."""

    provider_url: str | None = None
    refresh_interval: Duration = LIST_REFRESH_INTERVAL
    ttl: Duration = LIST_TTL
    caching_interval: Duration = LIST_CACHING_INTERVAL
    caching_use_count: int = LIST_CACHING_USE_COUNT
    overrides: list[str] = []
    entry_type: Literal["STRINGS", "CASE_INSENSITIVE_STRINGS", "IP_ADDRESSES", "REGEX"] = "STRINGS"
    blacklist: bool = False


# --- memquota -------------------------------------------------------------------------------------


class MemQuotaOverride(_Model, kw_only=True):
    """Applies when every listed dimension equals the instance's (dimensions not listed are
    ignored); the first matching override wins (traffic-tasks.md §9.6)."""

    dimensions: dict[str, str] = {}
    max_amount: int
    valid_duration: Duration | None = None


class MemQuotaQuota(_Model):
    """``name`` is the quota instance's fully-qualified name (``requestcount.quota.istio-system``);
    ``validDuration`` is the rolling window (none: an allocation quota that never expires)."""

    name: str
    max_amount: int
    valid_duration: Duration | None = None
    overrides: list[MemQuotaOverride] = []


class MemQuotaParams(_Model):
    """``kind: memquota``."""

    quotas: list[MemQuotaQuota] = []
    min_deduplication_duration: Duration | None = None


# --- prometheus -----------------------------------------------------------------------------------


class ExplicitBuckets(_Model):
    bounds: list[float] = []


class LinearBuckets(_Model):
    num_finite_buckets: int
    width: float
    offset: float = 0.0


class ExponentialBuckets(_Model):
    num_finite_buckets: int
    growth_factor: float
    scale: float


class BucketsDefinition(_Model):
    """Exactly one of the three forms (mixer/adapter/prometheus/config.proto)."""

    explicit_buckets: ExplicitBuckets | None = None
    linear_buckets: LinearBuckets | None = None
    exponential_buckets: ExponentialBuckets | None = None


class PrometheusMetric(_Model):
    """One exported metric: ``istio_<name>`` fed by the metric instance ``instanceName``
    (fully-qualified, docs L529), labelled by ``labelNames`` (dimensions of that instance)."""

    instance_name: str
    kind: Literal["COUNTER", "GAUGE", "DISTRIBUTION"]
    name: str | None = None
    namespace: str | None = None
    description: str | None = None
    label_names: list[str] = []
    buckets: BucketsDefinition | None = None


class PrometheusParams(_Model):
    """``kind: prometheus``."""

    metrics: list[PrometheusMetric] = []


# --- stdio ----------------------------------------------------------------------------------------

Level = Literal["INFO", "WARNING", "ERROR"]


class StdioParams(_Model):
    """``kind: stdio`` (mixer/adapter/stdio/config/config.proto). ``severityLevels`` maps a
    logentry's severity text to a level: 0/INFO, 1/WARNING, 2/ERROR."""

    log_stream: Literal["STDOUT", "STDERR", "FILE", "ROTATED_FILE"] = "STDOUT"
    severity_levels: dict[str, int | Level] = {}
    metric_level: int | Level = "INFO"
    output_as_json: bool = True
    output_level: int | Level = "INFO"
    output_path: str | None = None
    max_megabytes_before_rotation: int = 100
    max_days_before_rotation: int = 30
    max_rotated_files: int = 1000


# --- fluentd, kubernetesenv, noop -----------------------------------------------------------------


class FluentdParams(_Model):
    """``kind: fluentd``: the Forward-protocol collector at ``address`` (``host:port``)."""

    address: str = FLUENTD_ADDRESS
    integer_duration: bool = False


class KubernetesEnvParams(_Model):
    """``kind: kubernetesenv``: the attribute generator that adds workload attributes
    (``source.labels`` …). In trimesh the registry answers instead of the Kubernetes API."""

    kubeconfig_path: str | None = None
    cache_refresh_duration: Duration | None = None
    cluster_domain_name: str | None = None
    pod_label_for_app: str = "app"
    pod_label_for_version: str = "version"
    lookup_ingress_source_and_origin_values: bool = False


class NoopParams(_Model):
    """``kind: noop``: accepts every template and does nothing."""

