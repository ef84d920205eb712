"""Beyond Istio 0.x: the retry budget combined with httpMaxRetries, and latency-aware balancing
(PEAK_EWMA) steering away from a slow instance — pure simulations in virtual time
(anchors.md §0 retry_budget defaults; anchors.md "Why EWMA")."""

from __future__ import annotations

import heapq
import random
from collections import Counter

import pytest

from trimesh.config import make_instance
from trimesh.routing import BreakerLimits, CircuitBreaker, Cluster, RetryBudget, make_balancer
from trimesh.routing._budget import BUDGET_PERCENT, MIN_RETRY_CONCURRENCY


def test_envoy_defaults():
    assert (BUDGET_PERCENT, MIN_RETRY_CONCURRENCY) == (20.0, 3)


@pytest.mark.parametrize("outstanding, ceiling, limit", [
    (0, None, 3),  # the floor: min_retry_concurrency
    (10, None, 3),  # 20 % of 10 = 2 < 3
    (15, None, 3),
    (20, None, 4),
    (100, None, 20),
    (0, 3, 3),
    (100, 3, 3),  # httpMaxRetries stays the ceiling
    (100, 100, 20),  # a large ceiling: the budget bites
    (1000, 100, 100),
    (0, 0, 0),  # httpMaxRetries 0: no retries at all
])
def test_limit_table(outstanding, ceiling, limit):
    assert RetryBudget().limit(outstanding, ceiling) == limit


@pytest.mark.parametrize("kw", [{"percent": -1}, {"percent": 101}, {"min_concurrency": -1}])
def test_bad_budgets_are_refused(kw):
    with pytest.raises(ValueError):
        RetryBudget(**kw)


def active_breaker(n: int, lim: BreakerLimits) -> CircuitBreaker:
    b = CircuitBreaker()
    for _ in range(n):
        b.connection_ready(b.admit_request(lim))
    return b


def test_default_ceiling_allows_three_concurrent_retries():
    lim = BreakerLimits()
    b = active_breaker(50, lim)
    assert [b.admit_retry(lim) for _ in range(5)] == [True, True, True, False, False]
    s = b.statistics(lim)
    assert (s["upstream_rq_retry"], s["upstream_rq_retry_overflow"]) == (3, 2)
    assert s["circuit_breakers.default.rq_retry_open"] == 1
    b.release_retry()
    assert b.admit_retry(lim)


@pytest.mark.parametrize("active, allowed", [(0, 3), (10, 3), (50, 10), (200, 40), (2000, 100)])
def test_budget_caps_retries_under_a_large_ceiling(active, allowed):
    """httpMaxRetries 100: retries are held to 20 % of the requests in flight (at least 3)."""
    lim = BreakerLimits(max_retries=100, max_requests=5000)
    b = active_breaker(active, lim)
    admitted = 0
    while b.admit_retry(lim):
        admitted += 1
        assert admitted <= 1000
    assert admitted == allowed


def test_without_budget_only_the_ceiling_counts():
    lim = BreakerLimits(max_retries=100)
    b = active_breaker(0, lim)
    assert sum(b.admit_retry(lim, None) for _ in range(150)) == 100


def test_a_retry_storm_is_damped():
    """Every request fails and wants 3 retries (attempts: 3). With a ceiling of 1000 and the
    budget, retries stay at most 20 % of what is in flight; without the budget they would be
    3 per request."""
    lim = BreakerLimits(max_retries=1000)
    b = active_breaker(100, lim)
    wanted = granted = 0
    for _ in range(100):
        for _ in range(3):
            wanted += 1
            granted += b.admit_retry(lim)
    assert wanted == 300 and granted == 20
    assert b.statistics(lim)["upstream_rq_retry_overflow"] == 280


def test_cluster_retry_gate_without_a_policy_is_the_budget_floor():
    c = Cluster("r.default.svc.cluster.local", None, [make_instance("r", "127.0.0.1", 80)],
                make_balancer(None))
    assert [c.admit_retry() for _ in range(11)] == [True] * 10 + [False]
    c.release_retry()
    assert c.admit_retry()
    assert c.statistics()["upstream_rq_retry_overflow"] == 1


# --- PEAK_EWMA against a slow instance ---------------------------------------------------------


def simulate(balancer: str, seed: int, picks: int = 10_000) -> Counter:
    """Open-loop arrivals every 2 ms (500 rps) over three instances; two answer in ~10 ms, one
    in ~100 ms (10×). Completions feed ``on_request_end(rtt, now)`` in time order."""
    insts = [make_instance("reviews", f"127.0.0.{i + 1}", 9080) for i in range(3)]
    latency = {"127.0.0.1": 0.010, "127.0.0.2": 0.010, "127.0.0.3": 0.100}
    c = Cluster("reviews.default.svc.cluster.local", None, insts, make_balancer(balancer))
    rng = random.Random(seed)
    pending: list[tuple[float, int, object, float]] = []
    share: Counter = Counter()
    t = 0.0
    for n in range(picks):
        t += 0.002
        while pending and pending[0][0] <= t:
            done, _, inst, rtt = heapq.heappop(pending)
            c.on_request_end(inst, rtt, done)
        inst = c.pick(rng, t)
        c.on_request_start(inst)
        share[inst.address] += 1
        rtt = latency[inst.address] * rng.uniform(0.8, 1.2)
        heapq.heappush(pending, (t + rtt, n, inst, rtt))
    return share


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_peak_ewma_sends_under_ten_percent_to_a_ten_times_slower_instance(seed):
    share = simulate("PEAK_EWMA", seed)
    assert sum(share.values()) == 10_000
    assert share["127.0.0.3"] / 10_000 < 0.10, share
    assert share["127.0.0.3"] > 0  # still probed now and then (its estimate decays)


def test_round_robin_for_comparison_does_not_steer():
    share = simulate("ROUND_ROBIN", 1)
    assert abs(share["127.0.0.3"] / 10_000 - 1 / 3) < 0.01
