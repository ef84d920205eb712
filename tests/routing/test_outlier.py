"""Outlier detection in virtual time: consecutive 5xx and connect failures eject a host for
sleepWindow × times ejected, within httpMaxEjectionPercent (at least one), swept every detection
interval (concepts.md §8.12, acceptance F.75; Envoy outlier detection, anchors.md §0)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from routing_helpers import PRODUCTPAGE, policy, req, route_rule, table
from trimesh.config import make_instance
from trimesh.routing import OutlierConfig, OutlierDetector
from trimesh.routing._outlier import is_error

FQDN = "reviews.default.svc.cluster.local"


def reviews(n: int, cb: dict | None = None, *, previous=None, version: int = 1, with_cb=True):
    insts = [make_instance("reviews", f"127.0.0.{i + 1}", 9080, labels={"version": "v1"})
             for i in range(n)]
    objs = []
    if with_cb:
        objs.append(policy("reviews-cb", destination={"name": "reviews"},
                           circuitBreaker={"simpleCb": dict(cb or {})}))
    t = table(objs, instances=insts, source=PRODUCTPAGE, previous=previous, version=version)
    return t, t.decide(req("reviews"), random.Random(1)).cluster


def drive(c, now: float, rng, answer, n: int) -> Counter:
    """``n`` sequential requests at ``now``: pick, answer (a function of the address), record."""
    seen: Counter = Counter()
    for _ in range(n):
        inst = c.pick(rng, now)
        if inst is None:
            seen[None] += 1
            continue
        seen[inst.address] += 1
        c.record_result(inst, answer(inst.address), now)
    return seen


@pytest.mark.parametrize("status, error", [
    (None, True), (500, True), (502, True), (503, True), (504, True), (599, True),
    (200, False), (204, False), (302, False), (404, False), (429, False), (499, False),
])
def test_what_counts_as_an_error(status, error):
    assert is_error(status) is error


def test_config_from_the_policy_defaults():
    _, c = reviews(3)
    o = c.outlier_config
    assert (o.consecutive_errors, o.interval, o.base_ejection_time, o.max_ejection_percent,
            o.max_ejection_time) == (5, 10.0, 30.0, 10.0, 300.0)
    _, plain = reviews(3, with_cb=False)
    assert plain.outlier_config is None


def test_one_of_three_answering_500_is_ejected_traffic_moves_and_it_returns():
    """F.75: 5 consecutive 5xx eject the host for sleepWindow (30 s); traffic moves to the
    other two; at the first sweep after the window it is back."""
    _, c = reviews(3)
    r = random.Random(3)
    bad = "127.0.0.2"
    answer = (lambda a: 500 if a == bad else 200)
    c.tick(0.0)  # the detector's clock starts: sweeps at 10, 20, 30, 40 ...
    seen = drive(c, 1.0, r, answer, 15)  # round robin: the bad host gets 5 in 15
    assert seen[bad] == 5 and c.is_ejected(c.instances[1])
    s = c.statistics()
    assert s["outlier_detection.ejections_active"] == 1 and s["healthy"] == 2
    assert s["outlier_detection.ejections_enforced_consecutive_5xx"] == 1
    later = drive(c, 20.0, r, answer, 100)
    assert later[bad] == 0 and later["127.0.0.1"] == later["127.0.0.3"] == 50
    # Ejected at t=1 for 30 s: the window ends at 31, the sweep at 40 returns it.
    assert drive(c, 39.9, r, answer, 10)[bad] == 0
    back = drive(c, 40.0, r, lambda a: 200, 30)
    assert back[bad] == 10
    assert c.statistics()["outlier_detection.ejections_active"] == 0


def test_ejection_time_grows_with_each_ejection_and_is_capped():
    cfg = OutlierConfig(consecutive_errors=1, interval=1.0, base_ejection_time=100.0,
                        max_ejection_time=250.0)
    det, pool = OutlierDetector(), (("h", 1), ("g", 1))
    det.advance(0.0, cfg)
    t, untils = 0.5, []
    for _ in range(4):
        assert det.record(("h", 1), 503, t, cfg, pool)
        untils.append(det.hosts[("h", 1)].ejected_until - t)
        t = det.hosts[("h", 1)].ejected_until  # right at the end of the window...
        det.advance(t + 1.0, cfg)  # ...and the next sweep returns it
        assert not det.is_ejected(("h", 1))
        t += 1.0
    assert untils == [100.0, 200.0, 250.0, 250.0]  # 100 × 1, × 2, then the cap


def test_a_host_that_behaves_is_forgiven_one_step_per_sweep():
    cfg = OutlierConfig(consecutive_errors=1, interval=10.0, base_ejection_time=30.0)
    det, pool = OutlierDetector(), (("h", 1),)
    det.advance(0.0, cfg)
    det.record(("h", 1), 500, 1.0, cfg, pool)
    det.advance(40.0, cfg)  # returned at the sweep at 40 (window ended at 31)
    assert det.hosts[("h", 1)].multiplier == 1
    det.advance(50.0, cfg)  # one healthy sweep: forgiven
    assert det.hosts[("h", 1)].multiplier == 0
    det.record(("h", 1), 500, 51.0, cfg, pool)
    assert det.hosts[("h", 1)].ejected_until == 81.0  # back to the base time


def test_many_sweeps_are_caught_up_at_once():
    """Lazy sweeps: after a long quiet spell one call runs every due sweep (in O(hosts))."""
    cfg = OutlierConfig(consecutive_errors=1, interval=0.001, base_ejection_time=30.0)
    det, pool = OutlierDetector(), (("h", 1), ("g", 1))
    det.advance(0.0, cfg)
    det.record(("h", 1), None, 0.0, cfg, pool)
    assert det.is_ejected(("h", 1))
    assert not det.advance(29.0, cfg)
    assert det.advance(3600.0, cfg) and not det.is_ejected(("h", 1))
    assert det.sweeps >= 3_600_000 - 2
    assert det.hosts[("h", 1)].multiplier == 0  # thousands of healthy sweeps since


@pytest.mark.parametrize("seq, ejected", [
    ([500] * 5, True),
    ([500] * 4, False),
    ([500, 500, 200, 500, 500, 500], False),  # a success resets the count
    ([None, 500, None, 502, 503], True),  # connect failures count like 5xx
    ([500, 500, 404, 500, 500, 500], False),  # so does any non-5xx answer
])
def test_consecutive_errors_table(seq, ejected):
    cfg = OutlierConfig()  # consecutive 5
    det = OutlierDetector()
    pool = tuple(("h", i) for i in range(1))
    for i, status in enumerate(seq):
        det.record(("h", 0), status, float(i), cfg, pool)
    assert det.is_ejected(("h", 0)) is ejected


@pytest.mark.parametrize("hosts, percent, max_ejected", [
    (3, 10, 1),  # default 10 %: "but at least one"
    (3, 100, 3),
    (4, 50, 2),
    (4, 40, 1),  # a second host would be 50 % > 40 %
    (10, 10, 1),
    (10, 30, 3),
    (5, 0, 1),
])
def test_max_ejection_percent_with_at_least_one(hosts, percent, max_ejected):
    _, c = reviews(hosts, {"httpConsecutiveErrors": 1, "httpMaxEjectionPercent": percent})
    r = random.Random(5)
    drive(c, 1.0, r, lambda a: 503, 4 * hosts)  # every host fails
    s = c.statistics()
    assert s["outlier_detection.ejections_active"] == max_ejected
    assert (s["outlier_detection.ejections_overflow"] > 0) is (max_ejected < hosts)


def test_every_host_ejected_means_no_healthy_upstream():
    """The docs' httpbin policy (errors 1, max ejection 100 %): a lone failing instance is ejected
    and the caller gets 503 UH (B.32) until sleepWindow (3m) has passed and a 1 s sweep runs."""
    _, c = reviews(1, {"httpConsecutiveErrors": 1, "httpMaxEjectionPercent": 100,
                       "sleepWindow": "3m", "httpDetectionInterval": "1s"})
    r = random.Random(1)
    c.tick(0.0)
    inst = c.pick(r, 0.5)
    assert c.record_result(inst, 503, 0.5)
    assert c.pick(r, 1.0) is None and c.statistics()["no_healthy_host"] == 1
    assert c.pick(r, 180.4) is None
    assert c.pick(r, 181.0) is inst  # window ended at 180.5, returned by the sweep at 181


def test_panic_threshold_counts_ejected_hosts():
    """Two of three ejected: fewer than half available, so the balancer spreads over all."""
    _, c = reviews(3, {"httpConsecutiveErrors": 1, "httpMaxEjectionPercent": 100})
    r = random.Random(2)
    for inst in c.instances[:2]:
        c.record_result(inst, 500, 1.0)
    assert c.panic
    assert len(set(drive(c, 2.0, r, lambda a: 200, 30))) == 3


def test_ejection_survives_a_snapshot_change_and_ends_with_the_policy():
    t1, c1 = reviews(3, {"httpConsecutiveErrors": 1})
    c1.record_result(c1.instances[0], 500, 1.0)
    t2, c2 = reviews(3, {"httpConsecutiveErrors": 1}, previous=t1, version=2)
    assert c2 is not c1 and c2.is_ejected(c2.instances[0])
    assert "127.0.0.1" not in drive(c2, 2.0, random.Random(1), lambda a: 200, 20)
    # The policy is deleted: no outlier detection, every host is in the pool again.
    _, c3 = reviews(3, previous=t2, version=3, with_cb=False)
    assert not c3.is_ejected(c3.instances[0])
    assert "127.0.0.1" in drive(c3, 3.0, random.Random(1), lambda a: 200, 20)


def test_results_without_a_policy_or_for_external_hosts_are_ignored():
    _, c = reviews(2, with_cb=False)
    assert not any(c.record_result(c.instances[0], 500, float(t)) for t in range(10))
    _, c = reviews(2)
    assert c.record_result(None, 500, 1.0) is False


def test_labelled_policy_needs_a_route_rule():
    """The subtle rule (§8.13): a version-scoped breaker only applies when a rule routes there."""
    insts = [make_instance("reviews", "127.0.0.1", 9080, labels={"version": "v1"})]
    cb = policy("reviews-v1-cb", destination={"name": "reviews", "labels": {"version": "v1"}},
                circuitBreaker={"simpleCb": {"httpConsecutiveErrors": 1}})
    rule = route_rule("reviews-default", destination={"name": "reviews"}, precedence=1,
                      route=[{"labels": {"version": "v1"}}])
    bare = table([cb], instances=insts, source=PRODUCTPAGE).decide(req("reviews"),
                                                                  random.Random(1)).cluster
    assert bare.outlier_config is None
    routed = table([cb, rule], instances=insts, source=PRODUCTPAGE).decide(
        req("reviews"), random.Random(1)).cluster
    assert routed.outlier_config.consecutive_errors == 1


def test_detector_repr_and_forget():
    cfg = OutlierConfig(consecutive_errors=1)
    det = OutlierDetector()
    det.record(("a", 1), 500, 0.0, cfg, (("a", 1), ("b", 1)))
    assert "ejected=1" in repr(det) and "ejected until" in repr(det.hosts[("a", 1)])
    det.forget([("b", 1)])
    assert det.hosts == {}
