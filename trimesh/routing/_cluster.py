"""Clusters: the instances a routing decision may send to, and the balancer that picks one.

A cluster is a service FQDN plus a label subset (``reviews.default.svc.cluster.local|version=v1``);
a route backend's ``labels`` select the service's instances that carry all of them (concepts.md §8.1
L631, acceptance C.38). The cluster owns the balancer its DestinationPolicy names (§8.13), the
policy's circuit-breaker settings for the proxy, and the round-robin cursor.

Health: unhealthy instances (``ServiceInstance.healthy`` false) are skipped, unless fewer than half
of the cluster is healthy — Envoy's panic threshold (anchors.md: 50 %), where the balancer spreads
over every instance rather than piling onto the few healthy ones. With no healthy instance at all
:meth:`Cluster.pick` returns ``None`` and the proxy answers 503 ``UH`` (concepts.md §7 L573,
acceptance B.32) — Envoy would still try the unhealthy hosts in panic mode; the docs' "all instances
failed → 503" wins here.
"""

from __future__ import annotations

from typing import Any, Sequence

from ._balancers import Balancer, HostState

PANIC_THRESHOLD = 0.5  # Envoy healthy_panic_threshold default: 50 %


class ClusterState:
    """The part of a cluster that survives a snapshot change (matched by cluster name)."""

    __slots__ = ("cursor", "picks", "no_host", "clock")

    def __init__(self) -> None:
        self.cursor = 0
        self.picks = 0
        self.no_host = 0
        self.clock: float | None = None  # the latest `now` the proxy reported


def cluster_name(fqdn: str, labels: dict[str, str] | None) -> str:
    """``fqdn`` or ``fqdn|k1=v1,k2=v2`` (labels sorted by key)."""
    if not labels:
        return fqdn
    return fqdn + "|" + ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


class Cluster:
    """Instances of one service subset and how to choose among them. Built by
    :func:`~trimesh.routing.compile_routes`; the proxy calls :meth:`pick`,
    :meth:`on_request_start` and :meth:`on_request_end`."""

    __slots__ = ("name", "fqdn", "labels", "instances", "balancer", "policy", "circuit_breaker",
                 "panic", "_eligible", "_eligible_states", "_by_endpoint", "_state", "_healthy")

    def __init__(self, fqdn: str, labels: dict[str, str] | None, instances: Sequence[Any],
                 balancer: Balancer, *, policy: Any = None,
                 host_states: dict[tuple[str, int], HostState] | None = None,
                 state: ClusterState | None = None, name: str | None = None) -> None:
        self.fqdn = fqdn
        self.labels = dict(labels or {})
        self.name = name or cluster_name(fqdn, self.labels)
        self.instances: tuple[Any, ...] = tuple(instances)
        self.balancer = balancer
        self.policy = policy  # the ConfigObject of the DestinationPolicy that applies, or None
        spec = getattr(policy, "spec", None)
        cb = getattr(spec, "circuit_breaker", None)
        self.circuit_breaker = cb.simple_cb if cb is not None else None
        host_states = {} if host_states is None else host_states
        by_ep: dict[tuple[str, int], HostState] = {}
        for inst in self.instances:
            ep = inst.endpoint
            st = host_states.get(ep)
            if st is None:
                st = host_states[ep] = HostState()
            by_ep[ep] = st
        self._by_endpoint = by_ep
        healthy = [i for i in self.instances if i.healthy]
        self._healthy = len(healthy)
        n = len(self.instances)
        self.panic = 0 < len(healthy) < n * PANIC_THRESHOLD
        eligible = list(self.instances) if self.panic else healthy
        self._eligible: tuple[Any, ...] = tuple(eligible)
        self._eligible_states: tuple[HostState, ...] = tuple(by_ep[i.endpoint] for i in eligible)
        self._state = state if state is not None else ClusterState()

    @property
    def state(self) -> ClusterState:
        return self._state

    def pick(self, rng, now: float | None = None) -> Any | None:
        """The instance for the next request, or ``None`` when no instance is healthy."""
        eligible = self._eligible
        st = self._state
        if not eligible:
            st.no_host += 1
            return None
        cursor = st.cursor
        st.cursor = cursor + 1
        st.picks += 1
        if len(eligible) == 1:
            return eligible[0]
        idx = self.balancer.pick(self._eligible_states, cursor, rng,
                                 st.clock if now is None else now)
        return eligible[idx]

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

    def statistics(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "balancer": self.balancer.name,
            "policy": self.policy.ref if self.policy is not None else None,
            "instances": len(self.instances),
            "healthy": self._healthy,
            "panic": self.panic,
            "active": sum(s.active for s in self._by_endpoint.values()),
            "picks": self._state.picks,
            "no_healthy_host": self._state.no_host,
        }

    def __repr__(self) -> str:
        return (f"<Cluster {self.name} {self.balancer.name} instances={len(self.instances)} "
                f"healthy={self._healthy}{' PANIC' if self.panic else ''}>")
