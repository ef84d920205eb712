"""Routing: the pure decision core of the HTTP data plane.

``compile_routes(snapshot, source=..., previous=...)`` builds a :class:`RouteTable` once per config
Snapshot; ``table.decide(request, rng)`` returns a :class:`Forward`, :class:`Redirect` or
:class:`Reject`. RouteRule matching by precedence, weighted backends, DestinationPolicy balancers,
timeouts, retries, faults, mirroring and EgressRule host matching live here; the Trio proxy only
carries them out. Resilience (docs/resilience.md) is per :class:`Cluster`: circuit-breaker
admission (``admit_request``/``admit_connection``/``admit_retry``), outlier ejection
(``record_result``), active health (:class:`HealthState`) and the retry budget. PURE: no I/O, no
clock, no global randomness — ``rng`` and ``now`` are passed in.
"""

from ._attempts import CONNECT_FAILURE as CONNECT_FAILURE
from ._attempts import NO_HOST as NO_HOST
from ._attempts import PER_TRY_TIMEOUT as PER_TRY_TIMEOUT
from ._attempts import RELAY as RELAY
from ._attempts import RESET as RESET
from ._attempts import RESPONSE as RESPONSE
from ._attempts import ROUTE_TIMEOUT as ROUTE_TIMEOUT
from ._attempts import SECURE_NAMING as SECURE_NAMING
from ._attempts import AttemptState as AttemptState
from ._attempts import GiveUp as GiveUp
from ._attempts import Relay as Relay
from ._attempts import Retry as Retry
from ._balancers import BALANCER_NAMES as BALANCER_NAMES
from ._balancers import DEFAULT_BALANCER as DEFAULT_BALANCER
from ._balancers import PEAK_EWMA as PEAK_EWMA
from ._balancers import Balancer as Balancer
from ._balancers import HostState as HostState
from ._balancers import make_balancer as make_balancer
from ._breaker import OVERFLOW_BODY as OVERFLOW_BODY
from ._breaker import OVERFLOW_FLAG as OVERFLOW_FLAG
from ._breaker import OVERFLOW_STATUS as OVERFLOW_STATUS
from ._breaker import OVERLOADED_HEADER as OVERLOADED_HEADER
from ._breaker import Admission as Admission
from ._breaker import BreakerLimits as BreakerLimits
from ._breaker import CircuitBreaker as CircuitBreaker
from ._budget import RetryBudget as RetryBudget
from ._cluster import PANIC_THRESHOLD as PANIC_THRESHOLD
from ._cluster import Cluster as Cluster
from ._cluster import ClusterState as ClusterState
from ._health import HEALTHY_THRESHOLD as HEALTHY_THRESHOLD
from ._health import IMMEDIATE_FAIL_STATUSES as IMMEDIATE_FAIL_STATUSES
from ._health import UNHEALTHY_THRESHOLD as UNHEALTHY_THRESHOLD
from ._health import HealthState as HealthState
from ._ingress import IngressTable as IngressTable
from ._ingress import compile_ingress as compile_ingress
from ._match import host_pattern_matches as host_pattern_matches
from ._match import split_host_port as split_host_port
from ._mtls import MTLS as MTLS
from ._mtls import inbound_mtls as inbound_mtls
from ._mtls import instance_uses_mtls as instance_uses_mtls
from ._mtls import secure_endpoints as secure_endpoints
from ._mtls import spiffe_uri as spiffe_uri
from ._outlier import OutlierConfig as OutlierConfig
from ._outlier import OutlierDetector as OutlierDetector
from ._policy import BASE_RETRY_INTERVAL as BASE_RETRY_INTERVAL
from ._policy import DEFAULT_TIMEOUT as DEFAULT_TIMEOUT
from ._policy import MAX_RETRY_INTERVAL as MAX_RETRY_INTERVAL
from ._policy import RETRIES_HEADER as RETRIES_HEADER
from ._policy import TIMEOUT_HEADER as TIMEOUT_HEADER
from ._policy import RetryPolicy as RetryPolicy
from ._table import RouteTable as RouteTable
from ._table import compile_routes as compile_routes
from ._replies import NO_HEALTHY_UPSTREAM as NO_HEALTHY_UPSTREAM
from ._replies import OVERFLOW as OVERFLOW
from ._replies import SECURE_NAMING_FAILURE as SECURE_NAMING_FAILURE
from ._replies import UPSTREAM_FAILURE as UPSTREAM_FAILURE
from ._replies import UPSTREAM_TIMEOUT as UPSTREAM_TIMEOUT
from ._replies import MeshReply as MeshReply
from ._replies import fault_abort as fault_abort
from ._types import Forward as Forward
from ._types import Redirect as Redirect
from ._types import Reject as Reject
from ._types import RequestInfo as RequestInfo
from ._types import SourceIdentity as SourceIdentity

__all__ = [
    "CONNECT_FAILURE", "NO_HOST", "PER_TRY_TIMEOUT", "RELAY", "RESET", "RESPONSE",
    "ROUTE_TIMEOUT", "AttemptState", "GiveUp", "Relay", "Retry",
    "NO_HEALTHY_UPSTREAM", "OVERFLOW", "UPSTREAM_FAILURE", "UPSTREAM_TIMEOUT", "MeshReply",
    "fault_abort", "IngressTable", "compile_ingress",
    "BALANCER_NAMES", "DEFAULT_BALANCER", "PEAK_EWMA", "Balancer", "HostState", "make_balancer",
    "PANIC_THRESHOLD", "Cluster", "ClusterState", "host_pattern_matches", "BASE_RETRY_INTERVAL",
    "DEFAULT_TIMEOUT",
    "MAX_RETRY_INTERVAL", "RETRIES_HEADER", "TIMEOUT_HEADER", "RetryPolicy", "RouteTable",
    "compile_routes", "Forward", "Redirect", "Reject", "RequestInfo", "SourceIdentity",
    "OVERFLOW_BODY", "OVERFLOW_FLAG", "OVERFLOW_STATUS", "OVERLOADED_HEADER", "Admission",
    "BreakerLimits", "CircuitBreaker", "RetryBudget", "HEALTHY_THRESHOLD",
    "IMMEDIATE_FAIL_STATUSES", "UNHEALTHY_THRESHOLD", "HealthState", "OutlierConfig",
    "OutlierDetector", "SECURE_NAMING", "SECURE_NAMING_FAILURE", "MTLS", "inbound_mtls",
    "instance_uses_mtls", "secure_endpoints", "spiffe_uri", "split_host_port",
]
