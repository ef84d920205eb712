"""Active health checking decisions: thresholds, the 503 load-shedding signal, and how clusters
use the result (concepts.md §6 L538–540, acceptance B.30–B.32; Envoy healthy/unhealthy
thresholds; the 50 % panic threshold)."""

from __future__ import annotations

import random

import pytest

from routing_helpers import PRODUCTPAGE, req, route_rule, table
from trimesh.config import make_instance
from trimesh.routing import (HEALTHY_THRESHOLD, IMMEDIATE_FAIL_STATUSES, UNHEALTHY_THRESHOLD,
                             HealthState)

OK, FAIL = (True, 200), (False, 500)
TIMEOUT = (False, None)
SHED = (False, 503)


def test_thresholds_are_named_constants():
    assert (UNHEALTHY_THRESHOLD, HEALTHY_THRESHOLD) == (2, 2)
    assert 503 in IMMEDIATE_FAIL_STATUSES


@pytest.mark.parametrize("probes, states", [
    ([OK, OK], [True, True]),
    ([FAIL], [True]),  # one failure is not enough
    ([FAIL, FAIL], [True, False]),  # unhealthy after 2 consecutive failures
    ([FAIL, OK, FAIL], [True, True, True]),  # not consecutive
    ([TIMEOUT, FAIL], [True, False]),  # no answer counts as a failure
    ([SHED], [False]),  # 503 sheds load at once
    ([OK, SHED, OK], [True, False, False]),
    ([SHED, OK, OK], [False, False, True]),  # back after 2 consecutive passes
    ([FAIL, FAIL, OK, FAIL, OK, OK], [True, False, False, False, False, True]),
    ([SHED, SHED, OK, SHED, OK, OK, OK], [False, False, False, False, False, True, True]),
])
def test_probe_sequences(probes, states):
    h = HealthState()
    got = []
    for i, (ok, status) in enumerate(probes):
        h.record_probe(ok, status, float(i))
        got.append(h.healthy)
    assert got == states


def test_flips_are_reported_and_counted():
    h = HealthState(unhealthy_threshold=3, healthy_threshold=1)
    assert [h.record_probe(False, 500, t) for t in (1.0, 2.0, 3.0)] == [False, False, True]
    assert h.changed_at == 3.0 and not h.healthy
    assert h.record_probe(True, 200, 4.0) and h.healthy
    s = h.statistics()
    assert (s["probes"], s["failures"], s["flips"], s["last_status"]) == (4, 3, 2, 200)
    assert "healthy" in repr(h)


@pytest.mark.parametrize("kw", [{"unhealthy_threshold": 0}, {"healthy_threshold": 0}])
def test_thresholds_must_be_positive(kw):
    with pytest.raises(ValueError, match="at least 1"):
        HealthState(**kw)


def reviews_table(n=3, previous=None, version=1, objs=()):
    insts = [make_instance("reviews", f"127.0.0.{i + 1}", 9080, labels={"version": "v1"})
             for i in range(n)]
    return table(list(objs), instances=insts, source=PRODUCTPAGE, previous=previous,
                 version=version)


def addresses(c, r, n=30, now=1.0):
    return {getattr(c.pick(r, now), "address", None) for _ in range(n)}


def test_a_host_answering_503_leaves_every_pool_at_once():
    """B.31: one 503 probe and the instance is out, in the service's cluster and in any subset
    cluster holding it (health is per endpoint, shared)."""
    rule = route_rule("reviews-default", destination={"name": "reviews"}, precedence=1,
                      route=[{"labels": {"version": "v1"}}])
    t = reviews_table(objs=[rule])
    r = random.Random(1)
    sub = t.decide(req("reviews"), r).cluster
    whole = t.cluster("reviews.default.svc.cluster.local")
    assert sub is not whole
    t.health_states()[("127.0.0.2", 9080)].record_probe(False, 503, 1.0)
    assert addresses(sub, r) == addresses(whole, r) == {"127.0.0.1", "127.0.0.3"}
    assert sub.statistics()["healthy"] == 2 and sub.statistics()["membership_healthy"] == 2
    assert not sub.health(sub.instances[1]).healthy


def test_threshold_failures_then_recovery():
    """B.30: out after UNHEALTHY_THRESHOLD failed checks, back after HEALTHY_THRESHOLD passes."""
    t = reviews_table()
    c, r = t.cluster("reviews.default.svc.cluster.local"), random.Random(1)
    h = t.health_states()[("127.0.0.3", 9080)]
    h.record_probe(False, None, 1.0)
    assert "127.0.0.3" in addresses(c, r)
    h.record_probe(False, None, 2.0)
    assert "127.0.0.3" not in addresses(c, r)
    h.record_probe(True, 200, 3.0)
    assert "127.0.0.3" not in addresses(c, r)
    h.record_probe(True, 200, 4.0)
    assert "127.0.0.3" in addresses(c, r)


def test_health_is_carried_to_the_next_snapshot():
    t1 = reviews_table()
    t1.health_states()[("127.0.0.1", 9080)].record_probe(False, 503, 1.0)
    t2 = reviews_table(previous=t1, version=2)
    c2 = t2.cluster("reviews.default.svc.cluster.local")
    assert "127.0.0.1" not in addresses(c2, random.Random(1))
    assert t2.health_states()[("127.0.0.1", 9080)] is t1.health_states()[("127.0.0.1", 9080)]


def test_panic_when_fewer_than_half_pass_their_checks():
    """Two of three failing their checks: Envoy's panic threshold spreads over all three;
    all three failing: no healthy upstream (503 UH, B.32)."""
    t = reviews_table()
    c, r = t.cluster("reviews.default.svc.cluster.local"), random.Random(1)
    hs = t.health_states()
    for ep in (("127.0.0.1", 9080), ("127.0.0.2", 9080)):
        hs[ep].record_probe(False, 503, 1.0)
    assert c.panic and len(addresses(c, r)) == 3
    hs[("127.0.0.3", 9080)].record_probe(False, 503, 1.0)
    assert not c.panic and addresses(c, r) == {None}
    assert c.statistics()["no_healthy_host"] == 30


def test_registry_health_and_probe_health_combine():
    insts = [make_instance("reviews", f"127.0.0.{i + 1}", 9080, healthy=(i != 0))
             for i in range(4)]
    t = table([], instances=insts, source=PRODUCTPAGE)
    c, r = t.cluster("reviews.default.svc.cluster.local"), random.Random(1)
    t.health_states()[("127.0.0.2", 9080)].record_probe(False, 503, 1.0)
    assert addresses(c, r) == {"127.0.0.3", "127.0.0.4"}  # 2 of 4: exactly half, no panic
    assert not c.panic and c.healthy_count == 2
