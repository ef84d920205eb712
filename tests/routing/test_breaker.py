"""Circuit breaking per destination cluster: the simpleCb limits, the pending/active accounting, the
docs' circuit-breaking task as a virtual-time simulation, and Envoy's counter names
(traffic-tasks.md §8; concepts.md §8.12, acceptance F.68–F.69; anchors.md §0)."""

from __future__ import annotations

import heapq
import random

import pytest

from routing_helpers import PRODUCTPAGE, egress, policy, req, route_rule, table
from trimesh.config import make_instance
from trimesh.routing import (OVERFLOW_FLAG, OVERFLOW_STATUS, OVERLOADED_HEADER, BreakerLimits,
                             CircuitBreaker, Cluster, make_balancer)

HTTPBIN_CB = {  # traffic-tasks.md §8.2, verbatim values
    "maxConnections": 1, "httpMaxPendingRequests": 1, "sleepWindow": "3m",
    "httpDetectionInterval": "1s", "httpMaxEjectionPercent": 100, "httpConsecutiveErrors": 1,
    "httpMaxRequestsPerConnection": 1,
}


def httpbin_table(cb: dict | None = None, *, with_rule: bool = True, previous=None, version=1):
    insts = [make_instance("httpbin", "127.0.9.1", 8000, labels={"version": "v1"})]
    objs = [policy("httpbin-circuit-breaker", destination={"name": "httpbin",
                                                           "labels": {"version": "v1"}},
                   circuitBreaker={"simpleCb": dict(HTTPBIN_CB if cb is None else cb)})]
    if with_rule:  # traffic-tasks.md §8.1: httpbin-default-v1 must exist first
        objs.append(route_rule("httpbin-default-v1", destination={"name": "httpbin"},
                               precedence=5, route=[{"labels": {"version": "v1"}}]))
    return table(objs, instances=insts, source=PRODUCTPAGE, previous=previous, version=version)


def httpbin_cluster(**kw) -> Cluster:
    return httpbin_table(**kw).decide(req("httpbin:8000"), random.Random(1)).cluster


def limits(**kw) -> BreakerLimits:
    return BreakerLimits(**kw)


# --- limits from the policy ------------------------------------------------------------------


def test_no_policy_means_envoy_defaults_and_a_retry_budget_without_ceiling():
    c = httpbin_cluster(with_rule=False)  # labelled policy, no rule: never applied (§8.13)
    assert c.policy is None
    assert c.limits.as_dict() == {"max_connections": 1024, "max_pending_requests": 1024,
                                  "max_requests": 1024, "max_retries": None,
                                  "max_requests_per_connection": 0}
    assert c.outlier_config is None
    assert c.detection.gateway_only  # failure accrual instead (issue 10)
    # No httpMaxRetries ceiling: the budget's floor of 10 concurrent retries applies.
    admitted = sum(c.admit_retry() for _ in range(12))
    assert admitted == 10


def test_the_docs_policy_sets_every_field():
    c = httpbin_cluster()
    assert c.policy.ref == "destination-policy/default/httpbin-circuit-breaker"
    assert c.limits.as_dict() == {"max_connections": 1, "max_pending_requests": 1,
                                  "max_requests": 1024, "max_retries": 3,
                                  "max_requests_per_connection": 1}
    o = c.outlier_config
    assert (o.consecutive_errors, o.interval, o.base_ejection_time, o.max_ejection_percent) == (
        1, 1.0, 180.0, 100.0)


def test_overflow_reply_constants_are_envoys():
    assert (OVERFLOW_STATUS, OVERFLOW_FLAG, OVERLOADED_HEADER) == (
        503, "UO", ("x-envoy-overloaded", "true"))


# --- the accounting state machine ------------------------------------------------------------

# Each step: (operation, expected result, expected (pending, active, connections) afterwards).
# "req" admits a request, "ready i" moves admitted request i to active, "done i" releases it,
# "cx" opens a connection, "cx-" closes one.
STEPS = [
    ("req", True, (1, 0, 0)),
    ("cx", True, (1, 0, 1)),
    ("ready 0", None, (0, 1, 1)),
    ("req", True, (1, 1, 1)),
    ("cx", False, (1, 1, 1)),  # maxConnections 1: the second request stays pending
    ("req", False, (1, 1, 1)),  # pending limit 1 reached: overflow
    ("done 0", None, (1, 0, 1)),
    ("ready 1", None, (0, 1, 1)),  # the freed connection serves the waiting request
    ("req", True, (1, 1, 1)),
    ("done 2", None, (0, 1, 1)),  # released while pending: failure_eject
    ("done 2", None, (0, 1, 1)),  # idempotent
    ("done 1", None, (0, 0, 1)),
    ("cx-", None, (0, 0, 0)),
    ("cx-", None, (0, 0, 0)),  # never below zero
]


def test_accounting_table():
    b, lim = CircuitBreaker(), limits(max_connections=1, max_pending_requests=1)
    tokens = []
    for step, want, (pending, active, cx) in STEPS:
        op, _, arg = step.partition(" ")
        got = None
        if op == "req":
            tok = b.admit_request(lim, 0.0)
            got = tok is not None
            if tok is not None:
                tokens.append(tok)
        elif op == "ready":
            b.connection_ready(tokens[int(arg)])
        elif op == "done":
            b.release_request(tokens[int(arg)])
        elif op == "cx":
            got = b.admit_connection(lim)
        elif op == "cx-":
            b.release_connection()
        assert got == want, step
        assert (b.rq_pending, b.rq_active, b.cx_active) == (pending, active, cx), step
    s = b.statistics(lim)
    assert s["upstream_rq_pending_total"] == 3
    assert s["upstream_rq_pending_overflow"] == 1
    assert s["upstream_rq_total"] == 2  # requests that reached an upstream connection
    assert s["upstream_cx_overflow"] == 1 and s["upstream_cx_total"] == 1
    assert s["upstream_rq_pending_failure_eject"] == 1


@pytest.mark.parametrize("max_requests, max_pending, admitted", [
    (1024, 1024, 10), (3, 1024, 3), (1024, 2, 2), (5, 4, 4), (1, 1, 1),
])
def test_requests_limit_counts_pending_and_active(max_requests, max_pending, admitted):
    """``httpMaxRequests`` bounds active + pending, ``httpMaxPendingRequests`` the pending."""
    b, lim = CircuitBreaker(), limits(max_requests=max_requests, max_pending_requests=max_pending)
    got = [b.admit_request(lim) for _ in range(10)]
    assert sum(t is not None for t in got) == admitted
    assert b.statistics(lim)["upstream_rq_pending_overflow"] == 10 - admitted
    assert b.statistics(lim)["circuit_breakers.default.rq_pending_open"] == int(
        admitted == max_pending)


def test_active_requests_leave_room_for_pending_ones():
    b, lim = CircuitBreaker(), limits(max_requests=3, max_pending_requests=1)
    for _ in range(3):
        tok = b.admit_request(lim)
        b.connection_ready(tok)
    assert b.admit_request(lim) is None  # 3 active: httpMaxRequests reached
    assert b.rq_overflow_requests == 1
    assert b.statistics(lim)["circuit_breakers.default.rq_open"] == 1


def test_five_concurrent_slow_requests_at_least_three_overflow():
    """Acceptance F.69: maxConnections 1, httpMaxPendingRequests 1, 5 concurrent slow requests."""
    c = httpbin_cluster()
    refused = 0
    for _ in range(5):  # they arrive one after the other; none finishes meanwhile
        tok = c.admit_request(0.0)
        if tok is None:
            refused += 1
        elif c.admit_connection():
            c.connection_ready(tok)
    assert refused >= 3
    s = c.statistics()
    assert s["upstream_rq_pending_overflow"] == refused
    assert (s["upstream_rq_active"], s["upstream_rq_pending_active"]) == (1, 1)


def test_connection_limit_caps_open_connections():
    """Acceptance F.68: with maxConnections 100, 150 concurrent requests never hold more than 100
    connections; the other 50 wait as pending requests."""
    c = Cluster("reviews.default.svc.cluster.local", None,
                [make_instance("reviews", "127.0.0.1", 9080)], make_balancer("ROUND_ROBIN"))
    c.limits = limits(max_connections=100)
    tokens = [c.admit_request(0.0) for _ in range(150)]
    assert all(t is not None for t in tokens)
    for t in tokens:
        if c.admit_connection():
            c.connection_ready(t)
    s = c.statistics()
    assert s["upstream_cx_active"] == 100 and s["upstream_cx_overflow"] == 50
    assert (s["upstream_rq_active"], s["upstream_rq_pending_active"]) == (100, 50)
    assert s["circuit_breakers.default.cx_open"] == 1


# --- the docs' task as a simulation ----------------------------------------------------------


def fortio(cluster: Cluster, callers: int, calls_each: int, seed: int) -> dict[str, int]:
    """fortio ``-c callers -n callers*calls_each -qps 0`` against a sidecar whose upstream
    answers in 4–15 ms (traffic-tasks.md §8.5 run times) and closes every connection
    (``httpMaxRequestsPerConnection: 1``). Overflow replies come back in under a millisecond.
    Discrete events in virtual time: (time, seq, kind, caller)."""
    rng = random.Random(seed)
    events: list[tuple[float, int, str, int]] = []
    seq = 0
    left = [calls_each] * callers
    tokens: dict[int, object] = {}
    waiting: list[int] = []
    codes = {200: 0, 503: 0}

    def push(t, kind, who):
        nonlocal seq
        seq += 1
        heapq.heappush(events, (t, seq, kind, who))

    def connect(t, who):
        cluster.connection_ready(tokens[who])
        push(t + rng.uniform(0.004, 0.015), "done", who)

    for who in range(callers):
        push(rng.uniform(0.0, 0.001), "call", who)
    while events:
        t, _, kind, who = heapq.heappop(events)
        if kind == "call":
            if left[who] == 0:
                continue
            left[who] -= 1
            tok = cluster.admit_request(t)
            if tok is None:
                codes[503] += 1
                push(t + rng.uniform(0.0003, 0.001), "call", who)
                continue
            tokens[who] = tok
            if cluster.admit_connection():
                connect(t, who)
            else:
                waiting.append(who)
        else:  # done: response relayed, connection closed (1 request per connection)
            codes[200] += 1
            cluster.release_request(tokens.pop(who))
            cluster.release_connection()
            if waiting and cluster.admit_connection():
                connect(t, waiting.pop(0))
            push(t + rng.uniform(0.0001, 0.0005), "call", who)
    return codes


@pytest.mark.parametrize("seed", range(5))
def test_docs_task_three_callers_about_a_third_overflow(seed):
    """traffic-tasks.md §8.5 run 2: ``-c 3``, 30 calls → "only 63 % of requests got through",
    the 503s returned immediately; the stats count every refusal as pending overflow."""
    c = httpbin_cluster()
    codes = fortio(c, callers=3, calls_each=10, seed=seed)
    assert codes[200] + codes[503] == 30
    assert 0.2 <= codes[503] / 30 <= 0.5, codes
    s = c.statistics()
    assert s["upstream_rq_pending_overflow"] == codes[503]
    assert s["upstream_rq_pending_total"] == codes[200]  # every admitted request waited first
    assert s["upstream_rq_total"] == codes[200]
    assert (s["upstream_rq_active"], s["upstream_rq_pending_active"], s["upstream_cx_active"]) == (
        0, 0, 0)


@pytest.mark.parametrize("seed", range(3))
def test_docs_task_two_callers_get_through(seed):
    """Run 1 (``-c 2``): one request holds the connection, one waits as pending; none overflow
    (the docs saw one 503 in 20 — "istio-proxy allows some leeway")."""
    c = httpbin_cluster()
    codes = fortio(c, callers=2, calls_each=10, seed=seed)
    assert codes == {200: 20, 503: 0}


def test_counters_are_cumulative_across_runs_and_snapshots():
    """The docs' ``upstream_rq_pending_overflow: 12`` sums both runs; a config change in between
    keeps the counters (state carried by cluster name)."""
    t1 = httpbin_table()
    c1 = t1.decide(req("httpbin:8000"), random.Random(1)).cluster
    first = fortio(c1, callers=3, calls_each=10, seed=1)[503]
    t2 = httpbin_table(previous=t1, version=2)
    c2 = t2.decide(req("httpbin:8000"), random.Random(1)).cluster
    assert c2 is not c1
    second = fortio(c2, callers=3, calls_each=10, seed=2)[503]
    assert c2.statistics()["upstream_rq_pending_overflow"] == first + second


def test_a_request_admitted_on_the_old_table_is_released_into_the_new_one():
    t1 = httpbin_table()
    c1 = t1.decide(req("httpbin:8000"), random.Random(1)).cluster
    tok = c1.admit_request(0.0)
    c2 = httpbin_table(previous=t1, version=2).decide(req("httpbin:8000"),
                                                       random.Random(1)).cluster
    assert c2.statistics()["upstream_rq_pending_active"] == 1
    assert c2.admit_request(0.0) is None  # the old request still holds the one pending slot
    c1.release_request(tok)
    assert c2.statistics()["upstream_rq_pending_active"] == 0
    assert c2.admit_request(0.0) is not None


def test_new_limits_apply_after_a_policy_change():
    t1 = httpbin_table()
    c1 = t1.decide(req("httpbin:8000"), random.Random(1)).cluster
    c1.admit_request(0.0)
    wider = dict(HTTPBIN_CB, httpMaxPendingRequests=10)
    c2 = httpbin_table(wider, previous=t1, version=2).decide(req("httpbin:8000"),
                                                              random.Random(1)).cluster
    assert c2.admit_request(0.0) is not None
    assert c1.admit_request(0.0) is None  # the old snapshot's cluster keeps its own limits


def test_statistics_use_envoys_names():
    c = httpbin_cluster()
    names = set(c.statistics())
    for n in ("upstream_rq_pending_overflow", "upstream_cx_overflow", "upstream_rq_retry_overflow",
              "upstream_rq_total", "upstream_rq_pending_total", "upstream_rq_pending_active",
              "upstream_rq_pending_failure_eject", "upstream_cx_active", "upstream_cx_total",
              "upstream_rq_active", "upstream_rq_retry", "membership_healthy",
              "membership_total", "outlier_detection.ejections_active",
              "outlier_detection.ejections_overflow", "circuit_breakers.default.cx_open"):
        assert n in names, n
    assert "pending=0" in repr(c.state.breaker)


def test_egress_cluster_counters_survive_a_snapshot_change():
    eg = egress(
        "httpbin-egress", destination={"service": "httpbin.org"}, ports=[{"port": 80}])
    t1 = table([eg], source=PRODUCTPAGE)
    c1 = t1.decide(req("httpbin.org"), random.Random(1)).cluster
    c1.admit_request(0.0)
    t2 = table([eg], source=PRODUCTPAGE, previous=t1, version=2)
    c2 = t2.decide(req("httpbin.org"), random.Random(1)).cluster
    assert c2 is not c1 and c2.statistics()["upstream_rq_pending_total"] == 1


@pytest.mark.parametrize("seed", range(20))
def test_invariants_under_random_operations(seed):
    """Whatever order the proxy calls things in (double releases included), no gauge goes
    negative or past its limit, and the counters add up."""
    rng = random.Random(seed)
    lim = limits(max_connections=rng.randint(1, 4), max_pending_requests=rng.randint(1, 4),
                 max_requests=rng.randint(1, 6), max_retries=rng.randint(0, 3))
    b, tokens, attempts = CircuitBreaker(), [], 0
    for _ in range(500):
        op = rng.choice(("req", "ready", "done", "cx", "cx-", "retry", "retry-"))
        if op == "req":
            attempts += 1
            tok = b.admit_request(lim, 0.0)
            if tok is not None:
                tokens.append(tok)
        elif op == "ready" and tokens:
            b.connection_ready(rng.choice(tokens))
        elif op == "done" and tokens:
            b.release_request(rng.choice(tokens))
        elif op == "cx":
            b.admit_connection(lim)
        elif op == "cx-":
            b.release_connection()
        elif op == "retry":
            b.admit_retry(lim)
        elif op == "retry-":
            b.release_retry()
        assert 0 <= b.rq_pending <= lim.max_pending_requests
        assert 0 <= b.rq_active and b.rq_pending + b.rq_active <= lim.max_requests
        assert 0 <= b.cx_active <= lim.max_connections
        assert 0 <= b.retries_active <= max(lim.max_retries, 0)
    s = b.statistics(lim)
    assert s["upstream_rq_pending_total"] + s["upstream_rq_pending_overflow"] == attempts
    live = [t for t in tokens if t.state != "released"]
    assert sum(t.pending for t in live) == b.rq_pending
    assert len(live) - b.rq_pending == b.rq_active


def test_resilience_names_are_public():
    import trimesh.routing as routing
    for name in ("Admission", "BreakerLimits", "CircuitBreaker", "ClusterState", "HealthState",
                 "OutlierConfig", "OutlierDetector", "RetryBudget", "OVERFLOW_STATUS",
                 "OVERFLOW_FLAG", "OVERLOADED_HEADER", "OVERFLOW_BODY", "UNHEALTHY_THRESHOLD",
                 "HEALTHY_THRESHOLD", "IMMEDIATE_FAIL_STATUSES", "PANIC_THRESHOLD"):
        assert name in routing.__all__ and hasattr(routing, name), name
