"""Weighted backends and fault rolls, checked statistically with seeded rngs
(concepts.md §8.6, §8.9; acceptance C.37, E.62–E.65)."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing_helpers import PRODUCTPAGE, req, route_rule, table, unvalidated, versions_of
from trimesh.routing import Forward


def split_rule(weights: dict[str, int | None]):
    return route_rule("reviews-default", destination={"name": "reviews"}, precedence=1,
                      route=[{"labels": {"version": v}, **({} if w is None else {"weight": w})}
                             for v, w in weights.items()])


def shares(weights, n: int, seed: int) -> dict[str, float]:
    t = table([split_rule(weights)], source=PRODUCTPAGE)
    r = random.Random(seed)
    counts = Counter(versions_of(t.decide(req("reviews"), r) for _ in range(n)))
    return {v: 100.0 * counts[v] / n for v in weights}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fifty_fifty_over_1000(seed):
    """Traffic-shifting task step 4 (v1/v3 at 50 each): within ±5 points."""
    s = shares({"v1": 50, "v3": 50}, 1000, seed)
    assert abs(s["v1"] - 50) <= 5 and abs(s["v3"] - 50) <= 5


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_twenty_five_seventy_five_over_2000(seed):
    """reviews-v2-rollout (acceptance C.37): within ±4 points."""
    s = shares({"v2": 25, "v1": 75}, 2000, seed)
    assert abs(s["v2"] - 25) <= 4 and abs(s["v1"] - 75) <= 4


def test_a_lone_backend_without_weight_takes_everything_without_a_draw():
    """Acceptance C.36; no rng draw is spent on a single backend."""
    t = table([split_rule({"v2": None})], source=PRODUCTPAGE)
    r = random.Random(5)
    before = r.getstate()
    assert versions_of([t.decide(req("reviews"), r) for _ in range(50)]) == ["v2"] * 50
    assert r.getstate() == before


def test_unset_weight_among_several_counts_as_zero():
    """Validation's rule too: with several backends an unset weight is 0 (the sum must be 100)."""
    s = shares({"v1": None, "v2": 100}, 500, 4)
    assert s == {"v1": 0.0, "v2": 100.0}


def test_unvalidated_weights_are_normalised_and_all_zero_is_ignored():
    t = table([unvalidated("RouteRule", "odd", dict(
        destination={"name": "reviews"}, route=[{"labels": {"version": "v1"}, "weight": 1},
                                                {"labels": {"version": "v2"}, "weight": 3}]))],
              source=PRODUCTPAGE)
    r = random.Random(9)
    counts = Counter(versions_of(t.decide(req("reviews"), r) for _ in range(2000)))
    assert abs(counts["v1"] / 2000 - 0.25) <= 0.04
    t = table([unvalidated("RouteRule", "zero", dict(
        destination={"name": "reviews"}, route=[{"labels": {"version": "v1"}, "weight": 0},
                                                {"labels": {"version": "v2"}, "weight": 0}]))],
              source=PRODUCTPAGE)
    assert t.decide(req("reviews"), r).rule is None
    assert any("weight" in p for p in t.problems)


@given(cuts=st.lists(st.integers(min_value=0, max_value=100), min_size=1, max_size=2),
       seed=st.integers(0, 2**32 - 1))
@settings(max_examples=60, deadline=None)
def test_zero_weight_backends_are_never_chosen(cuts, seed):
    bounds = [0, *sorted(cuts), 100]
    weights = [b - a for a, b in zip(bounds, bounds[1:])]  # sums to 100, zeros likely
    versions = ["v1", "v2", "v3"][: len(weights)]
    t = table([split_rule(dict(zip(versions, weights)))], source=PRODUCTPAGE)
    r = random.Random(seed)
    for v in versions_of(t.decide(req("reviews"), r) for _ in range(30)):
        assert weights[versions.index(v)] > 0


def fault_rule(**fault):
    return route_rule("ratings-fault", destination={"name": "ratings"},
                      route=[{"labels": {"version": "v1"}}], httpFault=fault)


def fault_rates(fault: dict, n: int, seed: int = 11) -> tuple[float, float]:
    t = table([fault_rule(**fault)], source=PRODUCTPAGE)
    r = random.Random(seed)
    ds = [t.decide(req("ratings"), r) for _ in range(n)]
    delayed = sum(d.delay is not None for d in ds)
    aborted = sum(d.abort_status is not None for d in ds)
    return delayed / n, aborted / n


@pytest.mark.parametrize("seed", [1, 2])
def test_abort_percent_50_over_2000(seed):
    _, abort = fault_rates({"abort": {"percent": 50, "httpStatus": 503}}, 2000, seed)
    assert 0.45 <= abort <= 0.55


@pytest.mark.parametrize("seed", [1, 2])
def test_delay_percent_50_over_2000(seed):
    delay, _ = fault_rates({"delay": {"percent": 50, "fixedDelay": "5s"}}, 2000, seed)
    assert 0.45 <= delay <= 0.55


@pytest.mark.parametrize("percent,n,low,high", [
    (12.5, 8000, 0.11, 0.14),
    (0.5, 40000, 0.0035, 0.0065),
    (99.5, 8000, 0.99, 1.0),
])
def test_fractional_percents(percent, n, low, high):
    _, abort = fault_rates({"abort": {"percent": percent, "httpStatus": 400}}, n)
    assert low <= abort <= high


@pytest.mark.parametrize("percent,expected", [(None, 1.0), (100, 1.0), (0, 0.0)])
def test_percent_absent_is_every_request_and_zero_is_none(percent, expected):
    """Acceptance E.65."""
    delay = {"fixedDelay": "5s", **({} if percent is None else {"percent": percent})}
    d, _ = fault_rates({"delay": delay}, 200)
    assert d == expected


def test_delay_and_abort_roll_independently():
    """ratings-delay-abort: every request delayed 5 s, then 10 % aborted with 400 (E.64); two
    independent 50 % rolls hit both together about a quarter of the time."""
    t = table([fault_rule(delay={"fixedDelay": "5s"}, abort={"percent": 10, "httpStatus": 400})],
              source=PRODUCTPAGE)
    r = random.Random(8)
    ds = [t.decide(req("ratings"), r) for _ in range(2000)]
    assert all(d.delay == 5.0 for d in ds)
    assert 0.07 <= sum(d.abort_status == 400 for d in ds) / 2000 <= 0.13

    t = table([fault_rule(delay={"percent": 50, "fixedDelay": "1s"},
                          abort={"percent": 50, "httpStatus": 503})], source=PRODUCTPAGE)
    ds = [t.decide(req("ratings"), r) for _ in range(4000)]
    both = sum(d.delay is not None and d.abort_status is not None for d in ds) / 4000
    assert 0.22 <= both <= 0.28


def test_faults_apply_only_to_the_rules_destination():
    """Acceptance E.66."""
    t = table([fault_rule(abort={"httpStatus": 500})], source=PRODUCTPAGE)
    assert t.decide(req("ratings"), random.Random()).abort_status == 500
    other = t.decide(req("reviews"), random.Random())
    assert isinstance(other, Forward) and other.abort_status is None and other.delay is None


def test_a_forward_without_per_request_changes_is_shared():
    """The precompiled Forward is returned as is when nothing depends on the request."""
    t = table([split_rule({"v1": None})], source=PRODUCTPAGE)
    a, b = t.decide(req("reviews"), random.Random()), t.decide(req("reviews"), random.Random())
    assert a is b


class _EdgeRng:
    """A draw at the very top of the range (what float rounding can produce)."""

    def random(self) -> float:
        return 1.0


def test_a_draw_at_the_top_lands_on_the_last_weighted_backend():
    t = table([split_rule({"v1": 40, "v2": 60, "v3": 0})], source=PRODUCTPAGE)
    assert versions_of([t.decide(req("reviews"), _EdgeRng())]) == ["v2"]
