"""Circuit breaking: per-cluster limits on connections, pending and active requests, and retries.

Istio 0.x's ``circuitBreaker.simpleCb`` (concepts.md §8.12, traffic-tasks.md §8) becomes Envoy's
cluster circuit breakers (config.cluster.v3.CircuitBreakers.Thresholds, defaults 1024 / 1024 /
1024 / 3, anchors.md §0). The limits are per destination cluster (``reviews|version=v1``) and
enforced client-side, in the caller's sidecar:

* ``maxConnections`` → ``max_connections``: :meth:`CircuitBreaker.admit_connection`;
* ``httpMaxPendingRequests`` → ``max_pending_requests`` and ``httpMaxRequests`` →
  ``max_requests``: :meth:`CircuitBreaker.admit_request`;
* ``httpMaxRetries`` → ``max_retries`` (plus the retry budget, ``_budget.py``):
  :meth:`CircuitBreaker.admit_retry`;
* ``httpMaxRequestsPerConnection`` (a connection-pool setting, 1 = no keep-alive):
  :attr:`BreakerLimits.max_requests_per_connection`, for the proxy's pool.

A request's life in the accounting (HTTP/1: one request per connection at a time):

1. :meth:`~CircuitBreaker.admit_request` — the request arrives for the cluster. It is *pending*
   (waiting for a connection) until step 2. Refused when ``pending >= httpMaxPendingRequests``
   or ``active + pending >= httpMaxRequests``: the proxy answers **503** at once with response
   flag ``UO`` and ``x-envoy-overloaded: true``, and ``upstream_rq_pending_overflow`` counts it
   (Envoy's name for both refusals: "requests that overflowed connection pool or requests
   circuit breaking").
2. The proxy needs a connection. Reusing an idle pooled one costs nothing; opening one asks
   :meth:`~CircuitBreaker.admit_connection`, which refuses at ``maxConnections``
   (``upstream_cx_overflow``) — the request then *stays pending* until a connection frees up,
   exactly as in Envoy's HTTP/1 pool. Once the request has its connection the proxy calls
   :meth:`~CircuitBreaker.connection_ready`: pending → active (``upstream_rq_total``).
3. :meth:`~CircuitBreaker.release_request` when the response is done (or the request failed);
   a request released while still pending counts ``upstream_rq_pending_failure_eject``.
   :meth:`~CircuitBreaker.release_connection` when a connection closes.

So with the docs' task policy (``maxConnections: 1``, ``httpMaxPendingRequests: 1``) one request
holds the connection, one waits, and a third concurrent caller is refused — "only 63 % of requests
got through" with three fortio threads (traffic-tasks.md §8.5). Tokens (:class:`Admission`) make
release idempotent, so a ``finally:`` can always release.

The state object lives in the cluster's :class:`~trimesh.routing.ClusterState` and so survives a
snapshot swap; the limits belong to each compiled :class:`~trimesh.routing.Cluster` and are passed
in by it, so a request that started on the old snapshot finishes under the old limits.
"""

from __future__ import annotations

from typing import Any

from ._budget import RetryBudget

MAX_CONNECTIONS = 1024  # simpleCb maxConnections / Envoy max_connections default
MAX_PENDING_REQUESTS = 1024  # httpMaxPendingRequests / Envoy max_pending_requests default
MAX_REQUESTS = 1024  # httpMaxRequests / Envoy max_requests default
MAX_RETRIES = 3  # httpMaxRetries / Envoy max_retries default
MAX_REQUESTS_PER_CONNECTION = 0  # httpMaxRequestsPerConnection: 0 = unlimited (1 = no keep-alive)

OVERFLOW_STATUS = 503  # Envoy's answer to a circuit-breaker overflow
OVERFLOW_FLAG = "UO"  # access-log response flag "upstream overflow"
OVERLOADED_HEADER = ("x-envoy-overloaded", "true")  # set by Envoy on overflow replies
OVERFLOW_BODY = "upstream connect error or disconnect/reset before headers. reset reason: overflow"


class BreakerLimits:
    """The thresholds of one cluster (a ``simpleCb`` with its defaults filled in)."""

    __slots__ = ("max_connections", "max_pending_requests", "max_requests", "max_retries",
                 "max_requests_per_connection")

    def __init__(self, max_connections: int = MAX_CONNECTIONS,
                 max_pending_requests: int = MAX_PENDING_REQUESTS,
                 max_requests: int = MAX_REQUESTS, max_retries: int = MAX_RETRIES,
                 max_requests_per_connection: int = MAX_REQUESTS_PER_CONNECTION) -> None:
        self.max_connections = max_connections
        self.max_pending_requests = max_pending_requests
        self.max_requests = max_requests
        self.max_retries = max_retries
        self.max_requests_per_connection = max_requests_per_connection

    @classmethod
    def from_simple_cb(cls, cb: Any) -> "BreakerLimits":
        """A policy's ``simpleCb``; ``None`` (no policy or no circuit breaker) gives Envoy's
        defaults, which every Envoy cluster has whether configured or not — except the retry
        ceiling: unconfigured, only the retry budget bounds retries (UNCONFIGURED_BUDGET)."""
        if cb is None:
            return UNCONFIGURED_LIMITS
        return cls(cb.max_connections, cb.http_max_pending_requests, cb.http_max_requests,
                   cb.http_max_retries, cb.http_max_requests_per_connection)

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}

    def __repr__(self) -> str:
        return ("<BreakerLimits " + " ".join(f"{k}={getattr(self, k)}" for k in self.__slots__)
                + ">")


DEFAULT_LIMITS = BreakerLimits()
DEFAULT_BUDGET = RetryBudget()
# A cluster whose DestinationPolicy sets no circuit breaker has no httpMaxRetries ceiling of its
# own: its concurrent retries are bounded by the retry budget alone, with Linkerd's floor of 10
# (retry budget min_retries_per_second) instead of Envoy's 3, so the docs' retry scenarios (a
# dead instance under load with `attempts: 3`) are never refused; a policy's httpMaxRetries
# (default 3, as in Istio) stays a hard ceiling.
UNCONFIGURED_MIN_RETRIES = 10
UNCONFIGURED_BUDGET = RetryBudget(min_concurrency=UNCONFIGURED_MIN_RETRIES)
UNCONFIGURED_LIMITS = BreakerLimits(max_retries=None)  # type: ignore[arg-type]

PENDING = "pending"
ACTIVE = "active"
RELEASED = "released"


class Admission:
    """A request admitted to a cluster; give it back with ``release_request``."""

    __slots__ = ("state", "admitted_at", "_breaker")

    def __init__(self, breaker: "CircuitBreaker", now: float | None) -> None:
        self.state = PENDING
        self.admitted_at = now
        self._breaker = breaker

    @property
    def pending(self) -> bool:
        return self.state == PENDING

    def __repr__(self) -> str:
        return f"<Admission {self.state} at {self.admitted_at}>"


class CircuitBreaker:
    """Resource accounting of one cluster. Every method takes the cluster's current limits."""

    __slots__ = ("cx_active", "rq_pending", "rq_active", "retries_active", "cx_total",
                 "cx_overflow", "rq_total", "rq_pending_total", "rq_pending_overflow",
                 "rq_pending_failure_eject", "retries_total", "retry_overflow",
                 "rq_overflow_requests")

    def __init__(self) -> None:
        self.cx_active = 0
        self.rq_pending = 0
        self.rq_active = 0
        self.retries_active = 0
        self.cx_total = 0
        self.cx_overflow = 0
        self.rq_total = 0
        self.rq_pending_total = 0
        self.rq_pending_overflow = 0
        self.rq_pending_failure_eject = 0
        self.retries_total = 0
        self.retry_overflow = 0
        self.rq_overflow_requests = 0  # the part of rq_pending_overflow due to httpMaxRequests

    # --- requests ------------------------------------------------------------------------------

    def admit_request(self, limits: BreakerLimits, now: float | None = None) -> Admission | None:
        """A new request, pending until :meth:`connection_ready`; ``None`` = overflow (503 UO)."""
        if self.rq_pending >= limits.max_pending_requests:
            self.rq_pending_overflow += 1
            return None
        if self.rq_pending + self.rq_active >= limits.max_requests:
            self.rq_pending_overflow += 1
            self.rq_overflow_requests += 1
            return None
        self.rq_pending += 1
        self.rq_pending_total += 1
        return Admission(self, now)

    def connection_ready(self, token: Admission) -> None:
        """The request got its connection: pending → active. Idempotent."""
        if token.state != PENDING or token._breaker is not self:
            return
        token.state = ACTIVE
        self.rq_pending -= 1
        self.rq_active += 1
        self.rq_total += 1

    def release_request(self, token: Admission | None) -> None:
        """The request is over (answered, failed or cancelled). Idempotent; ``None`` is ignored."""
        if token is None or token.state == RELEASED or token._breaker is not self:
            return
        if token.state == PENDING:
            self.rq_pending -= 1
            self.rq_pending_failure_eject += 1
        else:
            self.rq_active -= 1
        token.state = RELEASED

    # --- connections ---------------------------------------------------------------------------

    def admit_connection(self, limits: BreakerLimits) -> bool:
        """May the pool open one more connection to this cluster?"""
        if self.cx_active >= limits.max_connections:
            self.cx_overflow += 1
            return False
        self.cx_active += 1
        self.cx_total += 1
        return True

    def release_connection(self) -> None:
        """A connection admitted by :meth:`admit_connection` closed."""
        if self.cx_active > 0:
            self.cx_active -= 1

    # --- retries -------------------------------------------------------------------------------

    def retry_limit(self, limits: BreakerLimits,
                    budget: RetryBudget | None = DEFAULT_BUDGET) -> int:
        if budget is None:
            return limits.max_retries if limits.max_retries is not None else MAX_RETRIES
        return budget.limit(self.rq_active + self.rq_pending, limits.max_retries)

    def admit_retry(self, limits: BreakerLimits,
                    budget: RetryBudget | None = DEFAULT_BUDGET) -> bool:
        """May one more retry start now? Refusal counts ``upstream_rq_retry_overflow``; the
        proxy then returns the failed attempt's response instead of retrying."""
        if self.retries_active >= self.retry_limit(limits, budget):
            self.retry_overflow += 1
            return False
        self.retries_active += 1
        self.retries_total += 1
        return True

    def release_retry(self) -> None:
        """A retry admitted by :meth:`admit_retry` finished."""
        if self.retries_active > 0:
            self.retries_active -= 1

    # --- introspection -------------------------------------------------------------------------

    def statistics(self, limits: BreakerLimits = DEFAULT_LIMITS,
                   budget: RetryBudget | None = DEFAULT_BUDGET) -> dict[str, int]:
        """Envoy's cluster statistic names (traffic-tasks.md §8.5 shows the
        ``upstream_rq_pending_*`` ones) and the ``circuit_breakers.default.*_open`` gauges (1
        while a limit is reached)."""
        return {
            "upstream_cx_total": self.cx_total,
            "upstream_cx_active": self.cx_active,
            "upstream_cx_overflow": self.cx_overflow,
            "upstream_rq_total": self.rq_total,
            "upstream_rq_active": self.rq_active,
            "upstream_rq_pending_total": self.rq_pending_total,
            "upstream_rq_pending_active": self.rq_pending,
            "upstream_rq_pending_overflow": self.rq_pending_overflow,
            "upstream_rq_pending_failure_eject": self.rq_pending_failure_eject,
            "upstream_rq_retry": self.retries_total,
            "upstream_rq_retry_overflow": self.retry_overflow,
            "circuit_breakers.default.cx_open": int(self.cx_active >= limits.max_connections),
            "circuit_breakers.default.rq_pending_open":
                int(self.rq_pending >= limits.max_pending_requests),
            "circuit_breakers.default.rq_open":
                int(self.rq_pending + self.rq_active >= limits.max_requests),
            "circuit_breakers.default.rq_retry_open":
                int(self.retries_active >= self.retry_limit(limits, budget)),
        }

    def __repr__(self) -> str:
        return (f"<CircuitBreaker cx={self.cx_active} pending={self.rq_pending} "
                f"active={self.rq_active} retries={self.retries_active} "
                f"overflow={self.rq_pending_overflow}>")
