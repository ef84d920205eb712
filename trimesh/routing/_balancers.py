"""Load balancers: choose one host of a cluster for the next request.

The names are DestinationPolicy's ``loadBalancing.name`` (concepts.md §6, §8.11):

``ROUND_ROBIN`` (the default, concepts.md §6 L773/L1017)
    Hosts in a fixed order, one after the other: with 3 hosts and 300 sequential requests each gets
    exactly 100 (acceptance B.23).
``RANDOM``
    One uniform draw per request.
``LEAST_CONN``
    Envoy's least-request balancer (anchors.md: ``choice_count`` 2): two distinct hosts drawn at
    random, the one with fewer active requests wins — "power of two choices" (Mitzenmacher 2001).
    When both carry the same load, the host under the round-robin cursor is taken if it is no busier
    than they are (else the first of the two), so an idle cluster spreads exactly evenly.
``PEAK_EWMA`` (trimesh addition)
    Linkerd's / Finagle's latency-aware balancer (anchors.md "Why EWMA"): every host keeps a *peak*
    exponentially weighted moving average of its round-trip times — a sample above the average
    replaces it at once, a sample below pulls it down with weight ``1 - exp(-elapsed / DECAY)``, and
    the estimate decays the same way while the host is not observed — and the cost of a host is
    ``ewma_rtt * (active + 1)``. Two random hosts are compared by cost, as in LEAST_CONN. A host
    with no samples yet is assumed to answer in :data:`DEFAULT_RTT`.

A balancer is a stateless strategy; per-host load lives in :class:`HostState` (shared by every
cluster of a route table that contains the host, and carried over to the next table) and the
round-robin cursor in the cluster, so a new snapshot does not reset either.
"""

from __future__ import annotations

import math
from typing import Sequence

from ._health import HealthState

ROUND_ROBIN = "ROUND_ROBIN"
RANDOM = "RANDOM"
LEAST_CONN = "LEAST_CONN"
PEAK_EWMA = "PEAK_EWMA"
BALANCER_NAMES = (ROUND_ROBIN, RANDOM, LEAST_CONN, PEAK_EWMA)
DEFAULT_BALANCER = ROUND_ROBIN  # concepts.md §6: "round-robin by default"

DEFAULT_RTT = 0.030  # linkerd2-proxy's default RTT estimate for a host with no samples (30 ms)
DECAY = 10.0  # Finagle PeakEwma decayTime default: 10 s


class HostState:
    """Load of one endpoint: in-flight requests and the peak-EWMA round-trip estimate, and its
    active health-check state (:class:`~trimesh.routing.HealthState`, fed by the health-checker)."""

    __slots__ = ("active", "requests", "ewma", "stamp", "health")

    def __init__(self) -> None:
        self.active = 0
        self.requests = 0  # requests started, ever
        self.ewma: float | None = None  # seconds; None = no sample yet
        self.stamp: float | None = None  # the `now` of the last sample
        self.health = HealthState()

    def observe(self, rtt: float, now: float | None) -> None:
        """Fold one round-trip time into the peak EWMA."""
        if self.ewma is None or rtt >= self.ewma:
            self.ewma = rtt
        else:
            elapsed = (now - self.stamp) if (now is not None and self.stamp is not None) else rtt
            w = math.exp(-max(elapsed, 0.0) / DECAY)
            self.ewma = self.ewma * w + rtt * (1.0 - w)
        if now is not None:
            self.stamp = now

    def cost(self, now: float | None) -> float:
        """``ewma_rtt * (active + 1)``, with the estimate decayed since its last sample."""
        rtt = self.ewma
        if rtt is None:
            rtt = DEFAULT_RTT
        elif now is not None and self.stamp is not None and now > self.stamp:
            rtt = rtt * math.exp(-(now - self.stamp) / DECAY)
        return rtt * (self.active + 1)

    def __repr__(self) -> str:
        return (f"<HostState active={self.active} requests={self.requests} ewma={self.ewma} "
                f"{self.health.state}>")


class Balancer:
    """Strategy interface: ``pick(states, cursor, rng, now) -> index``.

    ``states`` are the eligible hosts' :class:`HostState` (at least one), ``cursor`` the cluster's
    round-robin counter value for this pick, ``now`` the latest time the cluster knows (PEAK_EWMA).
    """

    name = "?"
    uses_cursor = False
    uses_rtt = False  # wants each request's round-trip time (on_request_end's rtt)

    def pick(self, states: Sequence[HostState], cursor: int, rng, now: float | None = None) -> int:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class RoundRobin(Balancer):
    name = ROUND_ROBIN
    uses_cursor = True

    def pick(self, states, cursor, rng, now=None):
        return cursor % len(states)


class RandomBalancer(Balancer):
    name = RANDOM

    def pick(self, states, cursor, rng, now=None):
        n = len(states)
        return 0 if n == 1 else rng.randrange(n)


def _two_choices(n: int, rng) -> tuple[int, int]:
    """Two distinct indices out of ``n >= 2``: both of them when n == 2, else two draws."""
    if n == 2:
        return 0, 1
    a = rng.randrange(n)
    b = rng.randrange(n - 1)
    if b >= a:
        b += 1
    return a, b


class LeastConn(Balancer):
    name = LEAST_CONN
    uses_cursor = True

    def pick(self, states, cursor, rng, now=None):
        n = len(states)
        if n == 1:
            return 0
        a, b = _two_choices(n, rng)
        la, lb = states[a].active, states[b].active
        if la < lb:
            return a
        if lb < la:
            return b
        # A tie: the round-robin host if it is no busier than the two (so an idle cluster is
        # spread evenly, as ROUND_ROBIN would), else the first of the two.
        c = cursor % n
        return c if states[c].active <= la else a


class PeakEwma(Balancer):
    name = PEAK_EWMA
    uses_cursor = True
    uses_rtt = True

    def pick(self, states, cursor, rng, now=None):
        n = len(states)
        if n == 1:
            return 0
        a, b = _two_choices(n, rng)
        ca, cb = states[a].cost(now), states[b].cost(now)
        if ca < cb:
            return a
        if cb < ca:
            return b
        c = cursor % n
        return c if states[c].cost(now) <= ca else a


_BALANCERS: dict[str, Balancer] = {
    b.name: b for b in (RoundRobin(), RandomBalancer(), LeastConn(), PeakEwma())
}


def make_balancer(name: str | None) -> Balancer:
    """The balancer named by ``loadBalancing.name`` (case-insensitive); ``None`` → ROUND_ROBIN.
    Raises ``ValueError`` naming the choices for an unknown name (validation reports it as a config
    error; :func:`compile_routes` falls back to ROUND_ROBIN instead)."""
    key = (name or DEFAULT_BALANCER).strip().upper()
    try:
        return _BALANCERS[key]
    except KeyError:
        raise ValueError(f"unknown load balancer {name!r}; expected one of "
                         f"{', '.join(BALANCER_NAMES)}") from None
