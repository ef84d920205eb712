"""Routing: the pure decision core of the HTTP data plane.

``compile_routes(snapshot, source=..., previous=...)`` builds a :class:`RouteTable` once per config
Snapshot; ``table.decide(request, rng)`` returns a :class:`Forward`, :class:`Redirect` or
:class:`Reject`. RouteRule matching by precedence, weighted backends, DestinationPolicy balancers,
timeouts, retries, faults, mirroring and EgressRule host matching live here; the Trio proxy only
carries them out. PURE: no I/O, no clock, no global randomness — ``rng`` and ``now`` are passed in.
"""

from ._balancers import BALANCER_NAMES as BALANCER_NAMES
from ._balancers import DEFAULT_BALANCER as DEFAULT_BALANCER
from ._balancers import Balancer as Balancer
from ._balancers import HostState as HostState
from ._balancers import make_balancer as make_balancer
from ._cluster import PANIC_THRESHOLD as PANIC_THRESHOLD
from ._cluster import Cluster as Cluster
from ._match import host_pattern_matches as host_pattern_matches
from ._policy import BASE_RETRY_INTERVAL as BASE_RETRY_INTERVAL
from ._policy import DEFAULT_TIMEOUT as DEFAULT_TIMEOUT
from ._policy import MAX_RETRY_INTERVAL as MAX_RETRY_INTERVAL
from ._policy import RETRIES_HEADER as RETRIES_HEADER
from ._policy import TIMEOUT_HEADER as TIMEOUT_HEADER
from ._policy import RetryPolicy as RetryPolicy
from ._table import RouteTable as RouteTable
from ._table import compile_routes as compile_routes
from ._types import Forward as Forward
from ._types import Redirect as Redirect
from ._types import Reject as Reject
from ._types import RequestInfo as RequestInfo
from ._types import SourceIdentity as SourceIdentity

__all__ = [
    "BALANCER_NAMES", "DEFAULT_BALANCER", "Balancer", "HostState", "make_balancer",
    "PANIC_THRESHOLD", "Cluster", "host_pattern_matches", "BASE_RETRY_INTERVAL", "DEFAULT_TIMEOUT",
    "MAX_RETRY_INTERVAL", "RETRIES_HEADER", "TIMEOUT_HEADER", "RetryPolicy", "RouteTable",
    "compile_routes", "Forward", "Redirect", "Reject", "RequestInfo", "SourceIdentity",
]
