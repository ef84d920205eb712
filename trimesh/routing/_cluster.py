"""Clusters: the instances a routing decision may send to, the balancer that picks one, and the
resilience state (circuit breaker, outlier detection, health) that decides which may be picked.

A cluster is a service FQDN plus a label subset (``reviews.default.svc.cluster.local|version=v1``);
a route backend's ``labels`` select the service's instances that carry all of them (concepts.md §8.1
L631, acceptance C.38). The cluster owns the balancer its DestinationPolicy names (§8.13), the
policy's circuit-breaker settings and the round-robin cursor. docs/resilience.md is the contract
the proxy follows; the algorithms live in ``_breaker.py``, ``_outlier.py``, ``_health.py`` and
``_budget.py``.

Which hosts may be picked — **the one place for it** (:meth:`Cluster._rebuild`): a host is
*available* when the registry says it is healthy (``ServiceInstance.healthy``), its active health
checks say so (:class:`~trimesh.routing.HealthState`) and outlier detection has not ejected it.
Available hosts are balanced over, unless fewer than half of the cluster is available — Envoy's
panic threshold (anchors.md: 50 %), where the balancer spreads over every instance rather than
piling onto the few healthy ones. With no available instance at all :meth:`Cluster.pick` returns
``None`` and the proxy answers 503 ``UH`` (concepts.md §7 L573, acceptance B.32) — Envoy would
still try the unhealthy hosts in panic mode; the docs' "all instances failed → 503" wins here.
The available set is cached and rebuilt only when a host flips (a health change, an ejection or a
return bumps :attr:`ClusterState.generation`), so a pick stays a few attribute reads.

Time is passed in: ``pick(rng, now)`` and ``record_result(..., now)`` run the outlier detector's
due interval sweeps first (lazy, no timers), so an ejected host comes back on the first request
after its sleep window, at the sweep time a timer would have used.
"""

from __future__ import annotations

from typing import Any, Sequence

from ._balancers import Balancer, HostState
from ._breaker import Admission, BreakerLimits, CircuitBreaker, DEFAULT_BUDGET, UNCONFIGURED_BUDGET
from ._budget import RetryBudget
from ._health import HealthState
from ._outlier import FAILURE_ACCRUAL, OutlierConfig, OutlierDetector

PANIC_THRESHOLD = 0.5  # Envoy healthy_panic_threshold default: 50 %


class ClusterState:
    """The part of a cluster that survives a snapshot change (matched by cluster name): the
    round-robin cursor, counters, circuit-breaker accounting and outlier-ejection state."""

    __slots__ = ("cursor", "picks", "no_host", "clock", "breaker", "outlier", "generation",
                 "detection_mode", "__weakref__")

    def __init__(self) -> None:
        self.cursor = 0
        self.picks = 0
        self.no_host = 0
        self.clock: float | None = None  # the latest `now` the proxy reported
        self.breaker = CircuitBreaker()
        self.outlier = OutlierDetector()
        self.generation = 0  # bumped whenever a host of the cluster may have changed availability
        self.detection_mode: bool | None = None  # gateway_only of the config that ejected hosts


def cluster_name(fqdn: str, labels: dict[str, str] | None) -> str:
    """``fqdn`` or ``fqdn|k1=v1,k2=v2`` (labels sorted by key)."""
    if not labels:
        return fqdn
    return fqdn + "|" + ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


class Cluster:
    """Instances of one service subset and how to choose among them. Built by
    :func:`~trimesh.routing.compile_routes`; the proxy calls :meth:`admit_request`,
    :meth:`pick`, :meth:`on_request_start`/:meth:`on_request_end`, :meth:`record_result` and
    :meth:`release_request` (docs/resilience.md)."""

    __slots__ = ("name", "fqdn", "labels", "instances", "balancer", "policy", "circuit_breaker",
                 "limits", "outlier_config", "detection", "retry_budget", "_hosts", "_endpoints",
                 "_by_endpoint", "_state", "_gen", "_panic", "_healthy", "_eligible",
                 "_eligible_states", "secure")

    def __init__(self, fqdn: str, labels: dict[str, str] | None, instances: Sequence[Any],
                 balancer: Balancer, *, policy: Any = None,
                 host_states: dict[tuple[str, int], HostState] | None = None,
                 state: ClusterState | None = None, name: str | None = None,
                 retry_budget: RetryBudget | None = DEFAULT_BUDGET,
                 secure: dict[tuple[str, int], tuple] | None = None) -> None:
        self.fqdn = fqdn
        self.labels = dict(labels or {})
        self.name = name or cluster_name(fqdn, self.labels)
        self.instances: tuple[Any, ...] = tuple(instances)
        self.balancer = balancer
        self.policy = policy  # the ConfigObject of the DestinationPolicy that applies, or None
        # mutual TLS: {endpoint: secure endpoint} for the instances called with mTLS (_mtls.py)
        self.secure = secure
        spec = getattr(policy, "spec", None)
        cb = getattr(spec, "circuit_breaker", None)
        self.circuit_breaker = cb.simple_cb if cb is not None else None
        self.limits = BreakerLimits.from_simple_cb(self.circuit_breaker)
        self.outlier_config = OutlierConfig.from_simple_cb(self.circuit_breaker)
        # What ejects hosts: the policy's outlier detection, else failure accrual (_outlier.py).
        self.detection = self.outlier_config or FAILURE_ACCRUAL
        if self.circuit_breaker is None and retry_budget is DEFAULT_BUDGET:
            retry_budget = UNCONFIGURED_BUDGET  # no httpMaxRetries set: _breaker.py
        self.retry_budget = retry_budget
        self._state = state if state is not None else ClusterState()
        mode = self.detection.gateway_only
        if self._state.detection_mode not in (None, mode):
            # The policy came or went: ejections made under the other kind of detection end.
            self._state.outlier = OutlierDetector()
            self._state.generation += 1
        self._state.detection_mode = mode
        host_states = {} if host_states is None else host_states
        by_ep: dict[tuple[str, int], HostState] = {}
        for inst in self.instances:
            ep = inst.endpoint
            st = host_states.get(ep)
            if st is None:
                st = host_states[ep] = HostState()
            by_ep[ep] = st
            st.health.watch(self._state)
        self._by_endpoint = by_ep
        self._hosts = tuple((i, by_ep[i.endpoint]) for i in self.instances)
        self._endpoints = tuple(i.endpoint for i in self.instances)
        if self.instances:
            self._state.outlier.forget(self._endpoints)
        self._rebuild()

    @property
    def state(self) -> ClusterState:
        return self._state

    # --- availability (health, ejection, panic) ------------------------------------------------

    def _rebuild(self) -> None:
        det = self._state.outlier
        available = [(i, hs) for i, hs in self._hosts
                     if i.healthy and hs.health.healthy and not det.is_ejected(i.endpoint)]
        n = len(self._hosts)
        self._healthy = len(available)
        self._panic = 0 < len(available) < n * PANIC_THRESHOLD
        chosen = self._hosts if self._panic else available
        self._eligible: tuple[Any, ...] = tuple(i for i, _ in chosen)
        self._eligible_states: tuple[HostState, ...] = tuple(hs for _, hs in chosen)
        self._gen = self._state.generation

    def _advance(self, now: float | None) -> None:
        """Run due outlier sweeps and note ``now``; rebuild the available set if needed."""
        st = self._state
        if now is not None:
            if st.clock is None or now > st.clock:
                st.clock = now
            nxt = st.outlier.next_sweep
            if (nxt is None or now >= nxt) and st.outlier.advance(now, self.detection):
                st.generation += 1
        if st.generation != self._gen:
            self._rebuild()

    def tick(self, now: float) -> None:
        """Bring ejections up to date without picking (admin pages, tests); never required."""
        self._advance(now)

    @property
    def panic(self) -> bool:
        """Fewer than :data:`PANIC_THRESHOLD` of the instances are available."""
        self._advance(None)
        return self._panic

    @property
    def healthy_count(self) -> int:
        self._advance(None)
        return self._healthy

    def is_ejected(self, inst: Any) -> bool:
        return self._state.outlier.is_ejected(inst.endpoint)

    def health(self, inst: Any) -> HealthState | None:
        """The active health-check state of ``inst`` (shared by every cluster holding it)."""
        st = self._by_endpoint.get(inst.endpoint)
        return st.health if st is not None else None

    # --- picking -------------------------------------------------------------------------------

    def pick(self, rng, now: float | None = None, avoid: tuple = ()) -> Any | None:
        """The instance for the next request, or ``None`` when no instance is available.
        ``avoid``: endpoints this request already tried — a retry goes to another available
        host while one exists (Envoy's ``previous_hosts`` predicate), else to any."""
        st = self._state
        if now is not None or st.generation != self._gen:
            self._advance(now)
        eligible = self._eligible
        states = self._eligible_states
        if avoid and len(eligible) > 1:
            keep = [k for k, i in enumerate(eligible) if i.endpoint not in avoid]
            if keep and len(keep) < len(eligible):
                eligible = tuple(eligible[k] for k in keep)
                states = tuple(states[k] for k in keep)
        if not eligible:
            st.no_host += 1
            return None
        cursor = st.cursor
        st.cursor = cursor + 1
        st.picks += 1
        if len(eligible) == 1:
            return eligible[0]
        return eligible[self.balancer.pick(states, cursor, rng, st.clock if now is None else now)]

    def host_state(self, inst: Any) -> HostState | None:
        return self._by_endpoint.get(inst.endpoint)

    def on_request_start(self, inst: Any) -> None:
        """Count a request in flight to ``inst`` (LEAST_CONN / PEAK_EWMA load)."""
        st = self._by_endpoint.get(inst.endpoint)
        if st is not None:
            st.active += 1
            st.requests += 1

    def on_request_end(self, inst: Any, rtt: float | None = None, now: float | None = None) -> None:
        """The request to ``inst`` finished; ``rtt`` (seconds) feeds PEAK_EWMA and ``now`` is the
        time it finished."""
        st = self._by_endpoint.get(inst.endpoint)
        if st is None:
            return
        if st.active > 0:
            st.active -= 1
        if rtt is not None:
            st.observe(rtt, now)
        if now is not None:
            cs = self._state
            if cs.clock is None or now > cs.clock:
                cs.clock = now

    def record_result(self, inst: Any, status: int | None, now: float) -> bool:
        """Feed outlier detection one upstream result of ``inst``: the response status, or
        ``None`` for a connect failure / reset / no response. Returns ``True`` when this result
        ejected the host. Without a circuit-breaker policy, failure accrual counts only gateway
        errors (``_outlier.py``)."""
        if inst is None:
            return False
        st = self._state
        cfg = self.detection
        if cfg.gateway_only and status is not None and status < 502:
            h = st.outlier.hosts.get(inst.endpoint)  # the common case: a success, nothing to reset
            if h is None or not h.consecutive:
                return False
        self._advance(now)
        if st.outlier.record(inst.endpoint, status, now, cfg, self._endpoints):
            st.generation += 1
            return True
        return False

    # --- circuit breaking ----------------------------------------------------------------------

    def admit_request(self, now: float | None = None) -> Admission | None:
        """Admit a request to this cluster (pending until :meth:`connection_ready`); ``None``
        means overflow: answer 503, flag ``UO``, header ``x-envoy-overloaded: true``."""
        return self._state.breaker.admit_request(self.limits, now)

    def connection_ready(self, token: Admission) -> None:
        """The admitted request has a connection: pending → active."""
        self._state.breaker.connection_ready(token)

    def release_request(self, token: Admission | None) -> None:
        """The admitted request is over (idempotent)."""
        self._state.breaker.release_request(token)

    def admit_connection(self) -> bool:
        """May the pool open one more connection to this cluster (``maxConnections``)?"""
        return self._state.breaker.admit_connection(self.limits)

    def release_connection(self) -> None:
        self._state.breaker.release_connection()

    def admit_retry(self) -> bool:
        """May one more retry start (``httpMaxRetries`` and the retry budget)?"""
        return self._state.breaker.admit_retry(self.limits, self.retry_budget)

    def release_retry(self) -> None:
        self._state.breaker.release_retry()

    # --- introspection -------------------------------------------------------------------------

    def statistics(self) -> dict[str, Any]:
        self._advance(None)
        st = self._state
        return {
            "name": self.name,
            "balancer": self.balancer.name,
            "policy": self.policy.ref if self.policy is not None else None,
            "instances": len(self.instances),
            "healthy": self._healthy,
            "panic": self._panic,
            "active": sum(s.active for s in self._by_endpoint.values()),
            "picks": st.picks,
            "no_healthy_host": st.no_host,
            "membership_total": len(self.instances),
            "membership_healthy": self._healthy,
            **st.breaker.statistics(self.limits, self.retry_budget),
            **st.outlier.statistics(self._endpoints),
        }

    def __repr__(self) -> str:
        self._advance(None)
        return (f"<Cluster {self.name} {self.balancer.name} instances={len(self.instances)} "
                f"healthy={self._healthy}{' PANIC' if self._panic else ''}>")
