"""Load balancers, health and the panic threshold, state carried across snapshots
(concepts.md §6; acceptance B.23, B.27–B.29, B.32; anchors.md panic threshold)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from routing_helpers import PRODUCTPAGE, policy, req, table
from trimesh.config import (ConfigObject, DestinationPolicy, IstioService, LoadBalancing,
                            make_instance)
from trimesh.routing import (BALANCER_NAMES, Cluster, HostState, make_balancer)


def hosts(n: int, *, unhealthy: tuple[int, ...] = ()):
    return [make_instance("reviews", f"127.0.0.{i + 1}", 9080, labels={"version": "v1"},
                          healthy=i not in unhealthy) for i in range(n)]


def cluster(n: int, balancer: str = "ROUND_ROBIN", **kw) -> Cluster:
    return Cluster("reviews.default.svc.cluster.local", None, hosts(n, **kw),
                   make_balancer(balancer))


def test_round_robin_cycles_in_a_fixed_order():
    """Acceptance B.27."""
    c, r = cluster(3), random.Random(1)
    seq = [c.pick(r).address for _ in range(9)]
    assert seq[:3] == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    assert seq == seq[:3] * 3


def test_random_spreads_evenly_and_is_not_cyclic():
    """Acceptance B.28: 3000 picks over 3 hosts, each 33 % ± 3 %."""
    c, r = cluster(3, "RANDOM"), random.Random(2)
    seq = [c.pick(r).address for _ in range(3000)]
    for n in Counter(seq).values():
        assert abs(n / 3000 - 1 / 3) <= 0.03
    assert seq[:3] * 1000 != seq


@pytest.mark.parametrize("n", [2, 3, 5])
def test_least_conn_prefers_the_idle_host(n):
    """Acceptance B.29: host A holds 10 in-flight requests; ≥ 90 % of new picks avoid it."""
    c, r = cluster(n, "LEAST_CONN"), random.Random(3)
    busy = c.instances[0]
    for _ in range(10):
        c.on_request_start(busy)
    picks = [c.pick(r) for _ in range(1000)]
    share_busy = sum(p is busy for p in picks) / 1000
    assert share_busy <= 0.10
    if n == 2:
        assert share_busy == 0.0  # both hosts are always compared


def test_least_conn_follows_load_as_requests_finish():
    c, r = cluster(2, "LEAST_CONN"), random.Random(4)
    a, b = c.instances
    c.on_request_start(a)
    assert c.pick(r) is b
    c.on_request_start(b)
    c.on_request_start(b)
    assert c.pick(r) is a
    c.on_request_end(b)
    c.on_request_end(b)
    c.on_request_end(b)  # extra ends never drive the count negative
    assert c.host_state(b).active == 0
    assert c.pick(r) is b


def test_least_conn_ties_fall_back_to_round_robin():
    c, r = cluster(3, "LEAST_CONN"), random.Random(5)
    seq = [c.pick(r).address for _ in range(6)]
    assert seq == ["127.0.0.1", "127.0.0.2", "127.0.0.3"] * 2


def test_peak_ewma_prefers_the_fast_host():
    c, r = cluster(2, "PEAK_EWMA"), random.Random(6)
    fast, slow = c.instances
    now = 100.0
    for _ in range(5):
        for inst, rtt in ((fast, 0.010), (slow, 0.500)):
            c.on_request_start(inst)
            c.on_request_end(inst, rtt=rtt, now=now)
        now += 0.1
    assert c.host_state(slow).ewma == pytest.approx(0.5)
    picks = Counter(c.pick(r) is fast for _ in range(100))
    assert picks[True] == 100
    # With many requests in flight on the fast host its cost (ewma × (active+1)) overtakes.
    for _ in range(60):
        c.on_request_start(fast)
    assert c.pick(r) is slow


def test_peak_ewma_reacts_to_a_peak_at_once_and_decays_slowly():
    st = HostState()
    st.observe(0.010, 0.0)
    st.observe(1.0, 1.0)
    assert st.ewma == 1.0  # a peak replaces the average immediately
    st.observe(0.010, 2.0)
    assert 0.8 < st.ewma < 1.0  # a fast sample only pulls it down gradually (10 s decay)
    assert st.cost(100.0) < st.cost(2.0)  # unobserved, the estimate decays with time


def test_unhealthy_instances_are_skipped():
    c, r = cluster(3, unhealthy=(1,)), random.Random(1)
    assert not c.panic
    assert {c.pick(r).address for _ in range(30)} == {"127.0.0.1", "127.0.0.3"}


def test_panic_threshold_balances_over_all():
    """Fewer than 50 % healthy: Envoy's panic mode spreads over every host."""
    c, r = cluster(3, unhealthy=(0, 1)), random.Random(1)
    assert c.panic
    assert {c.pick(r).address for _ in range(30)} == {"127.0.0.1", "127.0.0.2", "127.0.0.3"}
    half = cluster(2, unhealthy=(0,))  # exactly 50 %: not panic
    assert not half.panic and {half.pick(r).address for _ in range(10)} == {"127.0.0.2"}


def test_no_healthy_instance_gives_none():
    """Acceptance B.32: the proxy answers 503."""
    c = cluster(2, unhealthy=(0, 1))
    assert c.pick(random.Random()) is None
    assert c.statistics()["no_healthy_host"] == 1


def test_make_balancer_names():
    assert {make_balancer(n).name for n in BALANCER_NAMES} == set(BALANCER_NAMES)
    assert make_balancer(None).name == "ROUND_ROBIN"
    assert make_balancer("least_conn").name == "LEAST_CONN"
    with pytest.raises(ValueError, match="unknown load balancer 'FASTEST'.*ROUND_ROBIN"):
        make_balancer("FASTEST")


def test_policy_selects_the_balancer_and_unknown_names_fall_back():
    lc = policy("reviews-lb", destination={"name": "reviews"}, loadBalancing={"name": "LEAST_CONN"})
    t = table([lc], source=PRODUCTPAGE)
    assert t.decide(req("reviews"), random.Random()).cluster.balancer.name == "LEAST_CONN"
    # Validation refuses unknown names; a table compiled from an unvalidated object falls back.
    bad = ConfigObject(kind="DestinationPolicy", name="reviews-lb", spec=DestinationPolicy(
        destination=IstioService(name="reviews"), load_balancing=LoadBalancing(name="FASTEST")))
    t = table([bad], source=PRODUCTPAGE)
    assert t.decide(req("reviews"), random.Random()).cluster.balancer.name == "ROUND_ROBIN"
    assert any("FASTEST" in p for p in t.problems)


def test_state_carries_over_to_the_next_snapshot():
    """`previous`: the round-robin cursor and in-flight counts survive a config change, and a
    request that started on the old table finishes on the shared host state."""
    r = random.Random(7)
    t1 = table((), source=PRODUCTPAGE, version=1)
    c1 = t1.decide(req("reviews"), r).cluster
    first = c1.pick(r)
    c1.on_request_start(first)
    t2 = table((), source=PRODUCTPAGE, previous=t1, version=2)
    c2 = t2.decide(req("reviews"), r).cluster
    assert c2 is not c1
    assert c2.pick(r).address != first.address  # the cursor moved on
    assert c2.host_state(first).active == 1
    c1.on_request_end(first)  # the old request finishes against the old cluster
    assert c2.host_state(first).active == 0
    t3 = table((), source=PRODUCTPAGE, version=3)  # no previous: fresh state
    assert t3.decide(req("reviews"), r).cluster.statistics()["picks"] == 0


def test_cluster_statistics_and_repr():
    c, r = cluster(3, "LEAST_CONN", unhealthy=(2,)), random.Random(1)
    inst = c.pick(r)
    c.on_request_start(inst)
    s = c.statistics()
    base = {"name": "reviews.default.svc.cluster.local", "balancer": "LEAST_CONN",
            "policy": None, "instances": 3, "healthy": 2, "panic": False, "active": 1,
            "picks": 1, "no_healthy_host": 0}
    assert {k: s[k] for k in base} == base  # plus the resilience counters (test_breaker.py)
    assert "LEAST_CONN" in repr(c) and "healthy=2" in repr(c)


def test_table_lists_its_clusters_for_the_admin_page():
    lc = policy("reviews-lb", destination={"name": "reviews"}, loadBalancing={"name": "LEAST_CONN"})
    t = table([lc], source=PRODUCTPAGE)
    clusters = t.clusters()
    assert set(clusters) == {f"{s}.default.svc.cluster.local"
                             for s in ("productpage", "details", "reviews", "ratings")}
    assert clusters["reviews.default.svc.cluster.local"].statistics()["balancer"] == "LEAST_CONN"
    assert clusters["reviews.default.svc.cluster.local"].statistics()["policy"] == (
        "destination-policy/default/reviews-lb")
