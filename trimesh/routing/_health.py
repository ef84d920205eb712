"""Active health checking: the decision a prober's results lead to, per endpoint.

The docs (concepts.md §6 L538–540, acceptance B.30–B.31): the sidecar periodically checks every
instance of its load-balancing pools; an instance that fails more than a threshold of consecutive
checks is taken out of the pool and put back after a threshold of consecutive passes; and a service
can **shed load** by answering a check with HTTP 503, which takes it out *at once*. Envoy's
``HealthCheck`` has the same two counters, ``unhealthy_threshold`` and ``healthy_threshold``
(config.core.v3.HealthCheck; both are required there, so there is no Envoy default to copy — the
values below are trimesh's, see the constants). Envoy treats any response outside
``expected_statuses`` (default: 200) as an immediate failure ("if the upstream host wants to
immediately notify downstream hosts to no longer forward traffic to it, it can respond with a
non-expected status", Envoy architecture overview, *Health checking*); trimesh keeps that fast path
for the docs' load-shedding signal, **503**, and counts every other failure (another status, a
timeout, a refused connection) towards the threshold, so one flaky 500 does not drop a host.

:class:`HealthState` is a small table-driven state machine with two states, ``healthy`` and
``unhealthy``; it starts healthy (the registry only lists instances whose readiness passed, so the
first probe need not be waited for). The Trio health-checker task (in the sidecar) owns the timing
and the HTTP request; it feeds each result to :meth:`HealthState.record_probe` with the ``now`` of
the answer. Every :class:`~trimesh.routing.Cluster` containing the endpoint sees the change on its
next pick: a flip bumps the generation of every cluster state that watches this host.
"""

from __future__ import annotations

import weakref
from typing import Any

UNHEALTHY_THRESHOLD = 2  # consecutive failed checks before a host leaves the pool (trimesh choice;
#                          Envoy's unhealthy_threshold is required, Istio 1.x examples use 2-3)
HEALTHY_THRESHOLD = 2  # consecutive passing checks before it returns (Envoy healthy_threshold)
IMMEDIATE_FAIL_STATUSES = frozenset({503})  # concepts.md §6 L540: "answer 503 to shed load"

HEALTHY = "healthy"
UNHEALTHY = "unhealthy"

# (state, probe outcome) -> the state the outcome leads to once its threshold is met. Outcomes:
# "pass" (HEALTHY_THRESHOLD in a row), "fail" (UNHEALTHY_THRESHOLD in a row), "shed" (an
# IMMEDIATE_FAIL_STATUSES answer: no threshold).
_TRANSITIONS: dict[tuple[str, str], str] = {
    (HEALTHY, "pass"): HEALTHY,
    (HEALTHY, "fail"): UNHEALTHY,  # after UNHEALTHY_THRESHOLD consecutive failures
    (HEALTHY, "shed"): UNHEALTHY,  # at once
    (UNHEALTHY, "pass"): HEALTHY,  # after HEALTHY_THRESHOLD consecutive passes
    (UNHEALTHY, "fail"): UNHEALTHY,
    (UNHEALTHY, "shed"): UNHEALTHY,
}


class HealthState:
    """Health of one endpoint as active checks see it. ``record_probe`` is the only input."""

    __slots__ = ("state", "unhealthy_threshold", "healthy_threshold", "fails", "passes",
                 "probes", "failures", "flips", "changed_at", "last_status", "_watchers")

    def __init__(self, *, unhealthy_threshold: int = UNHEALTHY_THRESHOLD,
                 healthy_threshold: int = HEALTHY_THRESHOLD) -> None:
        if unhealthy_threshold < 1 or healthy_threshold < 1:
            raise ValueError("health thresholds must be at least 1 "
                             f"(got unhealthy={unhealthy_threshold}, healthy={healthy_threshold})")
        self.state = HEALTHY
        self.unhealthy_threshold = unhealthy_threshold
        self.healthy_threshold = healthy_threshold
        self.fails = 0  # consecutive failed probes
        self.passes = 0  # consecutive passing probes
        self.probes = 0
        self.failures = 0
        self.flips = 0
        self.changed_at: float | None = None
        self.last_status: int | None = None
        self._watchers: weakref.WeakSet[Any] = weakref.WeakSet()

    @property
    def healthy(self) -> bool:
        return self.state == HEALTHY

    def watch(self, cluster_state: Any) -> None:
        """Bump ``cluster_state.generation`` whenever this host flips (clusters cache their
        eligible hosts by generation)."""
        self._watchers.add(cluster_state)

    def record_probe(self, ok: bool, status: int | None, now: float) -> bool:
        """One check's result: ``ok`` is the prober's verdict (expected status in time),
        ``status`` the HTTP status or ``None`` (no answer: refused, reset, timed out).
        Returns ``True`` when the host changed state."""
        self.probes += 1
        self.last_status = status
        if ok:
            outcome = "pass"
            self.passes += 1
            self.fails = 0
        else:
            outcome = "shed" if status in IMMEDIATE_FAIL_STATUSES else "fail"
            self.failures += 1
            self.fails += 1
            self.passes = 0
        target = _TRANSITIONS[(self.state, outcome)]
        if target == self.state:
            return False
        if outcome == "fail" and self.fails < self.unhealthy_threshold:
            return False
        if outcome == "pass" and self.passes < self.healthy_threshold:
            return False
        self.state = target
        self.flips += 1
        self.changed_at = now
        for cs in list(self._watchers):
            cs.generation += 1
        return True

    def statistics(self) -> dict[str, Any]:
        return {"state": self.state, "probes": self.probes, "failures": self.failures,
                "consecutive_failures": self.fails, "consecutive_passes": self.passes,
                "flips": self.flips, "changed_at": self.changed_at,
                "last_status": self.last_status}

    def __repr__(self) -> str:
        return (f"<HealthState {self.state} fails={self.fails}/{self.unhealthy_threshold} "
                f"passes={self.passes}/{self.healthy_threshold}>")
