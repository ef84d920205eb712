"""memquota with the docs' handler: counters per dimension tuple, the first matching override,
best effort, dedup ids, allocation quotas, memory bounds, the local fallback. Virtual time only."""

from __future__ import annotations

import pytest
from docs_yaml import fixture
from hypothesis import given, settings
from hypothesis import strategies as st

from trimesh.config import MemQuotaOverride, MemQuotaParams, MemQuotaQuota, load_text
from trimesh.errors import ConfigError, NotFoundError
from trimesh.quota import (MemQuota, QuotaDefinition, QuotaLimit, QuotaOverride, QuotaResult,
                           dimension_key, fallback_share)

Q = "requestcount.quota.istio-system"


def docs_handler(**kw) -> MemQuota:
    (obj,) = load_text(fixture("ratelimit-handler.yaml"))
    return MemQuota.from_params(obj.spec, **kw)


def dims(source="reviews", source_version="v2", destination="ratings", destination_version="v1"):
    """The requestcount instance's four dimensions (ratelimit-rule.yaml)."""
    return {"source": source, "sourceVersion": source_version, "destination": destination,
            "destinationVersion": destination_version}


@pytest.mark.parametrize("instance, limit", [
    (dims(), QuotaLimit(1, 1.0)),                                    # reviews v2 -> ratings
    (dims(destination_version="v7"), QuotaLimit(1, 1.0)),            # destinationVersion ignored
    (dims(source_version="v3"), QuotaLimit(5000, 1.0)),              # reviews v3: the default
    (dims(source="productpage", source_version="v1", destination="reviews"),
     QuotaLimit(5000, 1.0)),
    ({"source": "reviews", "sourceVersion": "v2"}, QuotaLimit(5000, 1.0)),  # missing dimension
])
def test_docs_override_matches_a_subset_of_dimensions(instance, limit):
    assert docs_handler().limit_for(Q, instance) == limit


def test_reviews_v2_to_ratings_held_to_one_per_second_while_others_keep_5000():
    mq = docs_handler()
    v2 = [mq.alloc(Q, dims(), 1, t / 10).granted for t in range(30)]  # 10 per second for 3 s
    assert v2 == [1] + [0] * 9 + [1] + [0] * 9 + [1] + [0] * 9
    v3 = [mq.alloc(Q, dims(source_version="v3"), 1, t / 5000).granted for t in range(5000)]
    assert sum(v3) == 5000  # 5000 within one second
    assert mq.alloc(Q, dims(source_version="v3"), 1, 0.9999).granted == 0
    assert mq.statistics()["counters"] == 2


def test_counters_are_per_dimension_tuple():
    mq = docs_handler()
    assert mq.alloc(Q, dims(destination_version="v1"), 1, 0.0).granted == 1
    # same override, different tuple (destinationVersion differs): a counter of its own
    assert mq.alloc(Q, dims(destination_version="v2"), 1, 0.0).granted == 1
    assert mq.alloc(Q, dims(destination_version="v1"), 1, 0.5).granted == 0
    # key order does not matter
    assert mq.alloc(Q, dict(reversed(list(dims().items()))), 1, 0.5).granted == 0
    assert mq.statistics()["counters"] == 2


def test_first_matching_override_wins():
    quota = MemQuotaQuota(name="q", max_amount=100, valid_duration=1.0, overrides=[
        MemQuotaOverride(dimensions={"destination": "ratings"}, max_amount=5, valid_duration=10.0),
        MemQuotaOverride(dimensions={"destination": "ratings", "source": "reviews"}, max_amount=1),
    ])
    mq = MemQuota.from_params(MemQuotaParams(quotas=[quota]))
    # the broader override comes first, so it wins even where the narrower one matches too
    assert mq.limit_for("q", {"destination": "ratings", "source": "reviews"}) == QuotaLimit(5, 10.0)
    assert mq.limit_for("q", {"destination": "details"}) == QuotaLimit(100, 1.0)


def test_override_without_valid_duration_takes_the_quotas():
    quota = MemQuotaQuota(name="q", max_amount=100, valid_duration=2.0, overrides=[
        MemQuotaOverride(dimensions={"a": "1"}, max_amount=1)])
    mq = MemQuota.from_params(MemQuotaParams(quotas=[quota]))
    assert mq.limit_for("q", {"a": "1"}) == QuotaLimit(1, 2.0)


@pytest.mark.parametrize("value, text", [("v2", "v2"), (True, "true"), (False, "false"),
                                         (200, "200")])
def test_override_values_compare_as_text(value, text):
    o = QuotaOverride((("d", text),), QuotaLimit(1, 1.0))
    assert o.matches({"d": value})
    assert not o.matches({"d": "other"})


@pytest.mark.parametrize("best_effort, amounts, granted", [
    (False, [3, 3, 2], [3, 0, 2]),   # all or nothing
    (True, [3, 3, 2], [3, 2, 0]),    # what is left
])
def test_best_effort_vs_all_or_nothing(best_effort, amounts, granted):
    mq = MemQuota([QuotaDefinition("q", QuotaLimit(5, 1.0))])
    got = [mq.alloc("q", {}, a, 0.1 * i, best_effort=best_effort).granted
           for i, a in enumerate(amounts)]
    assert got == granted


def test_grant_carries_the_window_as_valid_duration():
    mq = MemQuota([QuotaDefinition("q", QuotaLimit(1, 1.5))])
    assert mq.alloc("q", {}, 1, 0.0) == QuotaResult(1, 1.5)
    assert mq.alloc("q", {}, 1, 0.1) == QuotaResult(0, 0.0)


# --- deduplication --------------------------------------------------------------------------------


def test_repeated_dedup_id_returns_the_first_answer_without_charging():
    mq = MemQuota([QuotaDefinition("q", QuotaLimit(2, 10.0))])
    first = mq.alloc("q", {}, 1, 0.0, dedup_id="req-1")
    again = mq.alloc("q", {}, 1, 0.4, dedup_id="req-1")
    assert first == QuotaResult(1, 10.0)
    assert again == QuotaResult(1, 9.6, deduplicated=True)  # remaining validity
    assert mq.available("q", {}, 0.5) == 1                   # charged once
    assert mq.statistics()["dedup_hits"] == 1


def test_refusal_is_remembered_too():
    mq = MemQuota([QuotaDefinition("q", QuotaLimit(1, 10.0))])
    mq.alloc("q", {}, 1, 0.0)
    assert mq.alloc("q", {}, 1, 0.1, dedup_id="x").granted == 0
    assert mq.alloc("q", {}, 1, 0.2, dedup_id="x") == QuotaResult(0, 0.0, deduplicated=True)


@pytest.mark.parametrize("repeat_at, deduplicated", [
    (0.5, True), (1.0, True), (1.99, True),   # remembered through the next period
    (2.0, False), (7.0, False),               # forgotten after two
])
def test_dedup_window_is_one_to_two_periods(repeat_at, deduplicated):
    mq = MemQuota([QuotaDefinition("q", QuotaLimit(100, 60.0))], min_deduplication_duration=1.0)
    mq.alloc("q", {}, 1, 0.0, dedup_id="id")
    assert mq.alloc("q", {}, 1, repeat_at, dedup_id="id").deduplicated is deduplicated


def test_dedup_ids_are_per_quota_and_absent_ids_never_dedup():
    mq = MemQuota([QuotaDefinition("a", QuotaLimit(5, 1.0)),
                   QuotaDefinition("b", QuotaLimit(5, 1.0))])
    mq.alloc("a", {}, 1, 0.0, dedup_id="same")
    assert not mq.alloc("b", {}, 1, 0.0, dedup_id="same").deduplicated
    mq.alloc("a", {}, 1, 0.0)
    assert not mq.alloc("a", {}, 1, 0.0).deduplicated
    assert mq.available("a", {}, 0.0) == 2  # three charges on a, none deduplicated


@settings(max_examples=100, deadline=None)
@given(ops=st.lists(st.tuples(st.integers(0, 5), st.integers(1, 3),
                              st.floats(0.0, 0.3, allow_nan=False)), min_size=1, max_size=60))
def test_dedup_never_charges_twice(ops):
    """Replaying every call right away with the same id changes nothing."""
    plain = MemQuota([QuotaDefinition("q", QuotaLimit(4, 1.0))])
    replayed = MemQuota([QuotaDefinition("q", QuotaLimit(4, 1.0))])
    now = 0.0
    for i, (_, amount, gap) in enumerate(ops):
        now += gap
        a = plain.alloc("q", {}, amount, now, dedup_id=str(i))
        b = replayed.alloc("q", {}, amount, now, dedup_id=str(i))
        b2 = replayed.alloc("q", {}, amount, now, dedup_id=str(i))
        assert a == b and b2.granted == b.granted and b2.deduplicated
    assert plain.available("q", {}, now) == replayed.available("q", {}, now)


# --- allocation quotas and release ----------------------------------------------------------------


def test_allocation_quota_holds_until_released():
    mq = MemQuota([QuotaDefinition("conns", QuotaLimit(2))])
    assert [mq.alloc("conns", {"d": "x"}, 1, t).granted for t in (0.0, 1.0, 1e6)] == [1, 1, 0]
    assert mq.alloc("conns", {"d": "x"}, 1, 0.0).valid_duration == 0.0
    assert mq.release("conns", {"d": "x"}, 5, 2e6) == QuotaResult(2)  # only 2 were held
    assert mq.statistics()["allocations"] == 0
    assert mq.alloc("conns", {"d": "x"}, 2, 2e6).granted == 2


def test_release_on_a_rate_quota_and_dedup_of_release():
    mq = MemQuota([QuotaDefinition("q", QuotaLimit(3, 1.0))])
    mq.alloc("q", {}, 3, 0.0)
    assert mq.release("q", {}, 2, 0.1, dedup_id="r") == QuotaResult(2)
    assert mq.release("q", {}, 2, 0.1, dedup_id="r") == QuotaResult(2, 0.0, True)
    assert mq.available("q", {}, 0.2) == 2
    assert mq.release("q", {"other": "tuple"}, 1, 0.2).granted == 0


# --- memory, statistics, config -------------------------------------------------------------------


def test_idle_counters_expire():
    mq = docs_handler()
    for i in range(50):
        mq.alloc(Q, dims(destination_version=f"v{i}"), 1, 0.0)
    assert mq.statistics()["counters"] == 50
    assert mq.expire(0.5) == 0
    assert mq.expire(1.0) == 50
    assert mq.statistics()["counters"] == 0 and mq.statistics()["expired"] == 50


def test_memory_stays_bounded_without_explicit_sweeps():
    mq = MemQuota([QuotaDefinition("q", QuotaLimit(1, 1.0))])
    for i in range(20000):  # a fresh tuple every 1 ms for 20 s
        mq.alloc("q", {"user": str(i)}, 1, i / 1000)
    assert mq.statistics()["counters"] <= 2 * 1024 + 1000


def test_statistics_and_repr():
    mq = docs_handler()
    mq.alloc(Q, dims(), 1, 0.0)
    mq.alloc(Q, dims(), 1, 0.1)
    mq.alloc(Q, dims(), 1, 0.2, dedup_id="d")
    mq.alloc(Q, dims(), 1, 0.3, dedup_id="d")
    s = mq.statistics()
    assert (s["allocs"], s["granted"], s["rejected"], s["dedup_hits"]) == (3, 1, 2, 1)
    assert repr(mq) == "<MemQuota 1 quotas, 1 counters, 0 allocations>"


def test_unknown_quota_and_bad_amounts():
    mq = docs_handler()
    with pytest.raises(NotFoundError, match="no quota named 'nope'.*requestcount"):
        mq.alloc("nope", {}, 1, 0.0)
    with pytest.raises(ValueError):
        mq.alloc(Q, dims(), -1, 0.0)


@pytest.mark.parametrize("params, path", [
    (MemQuotaParams(quotas=[MemQuotaQuota(name="q", max_amount=-1)]), "$.spec.quotas[0].maxAmount"),
    (MemQuotaParams(quotas=[MemQuotaQuota(name="q", max_amount=1, overrides=[
        MemQuotaOverride(max_amount=-5)])]), "$.spec.quotas[0].overrides[0].maxAmount"),
    (MemQuotaParams(quotas=[MemQuotaQuota(name="q", max_amount=1),
                            MemQuotaQuota(name="q", max_amount=2)]), "$.spec.quotas[1].name"),
])
def test_bad_config_is_refused_with_its_path(params, path):
    with pytest.raises(ConfigError) as err:
        MemQuota.from_params(params)
    assert err.value.path == path


def test_reconfigure_keeps_counters_whose_limit_still_applies():
    mq = MemQuota([QuotaDefinition("a", QuotaLimit(1, 10.0)),
                   QuotaDefinition("b", QuotaLimit(1, 10.0))])
    mq.alloc("a", {}, 1, 0.0)
    mq.alloc("b", {}, 1, 0.0)
    mq.reconfigure([QuotaDefinition("a", QuotaLimit(1, 10.0)),
                    QuotaDefinition("c", QuotaLimit(1, 1.0))])
    assert mq.alloc("a", {}, 1, 1.0).granted == 0      # same limit: still held
    assert mq.quota_names == ("a", "c")
    assert mq.statistics()["counters"] == 1            # b's counter went
    mq.reconfigure([QuotaDefinition("a", QuotaLimit(2, 10.0))])
    assert mq.alloc("a", {}, 1, 1.0).granted == 1      # new limit: a fresh counter


# --- local fallback -------------------------------------------------------------------------------


@pytest.mark.parametrize("instances, share", [(0, 1.0), (1, 1.0), (4, 0.25)])
def test_fallback_share(instances, share):
    assert fallback_share(instances) == share


@pytest.mark.parametrize("limit, share, scaled", [
    (QuotaLimit(5000, 1.0), 0.25, QuotaLimit(1250, 1.0)),
    (QuotaLimit(1, 1.0), 1 / 3, QuotaLimit(1, 1.0)),    # never below 1
    (QuotaLimit(10, 1.0), 1 / 3, QuotaLimit(3, 1.0)),
    (QuotaLimit(0, 1.0), 0.5, QuotaLimit(0, 1.0)),      # 0 stays 0
    (QuotaLimit(7, 1.0), 1.0, QuotaLimit(7, 1.0)),
])
def test_limits_scale_by_share(limit, share, scaled):
    assert limit.scaled(share) == scaled


def test_local_fallback_runs_the_docs_handler_on_a_share():
    local = docs_handler(share=fallback_share(4))
    assert local.limit_for(Q, dims(source_version="v3")) == QuotaLimit(1250, 1.0)
    assert local.limit_for(Q, dims()) == QuotaLimit(1, 1.0)
    assert [local.alloc(Q, dims(), 1, t).granted for t in (0.0, 0.5, 1.0)] == [1, 0, 1]
    assert "share=0.25" in repr(local)
    with pytest.raises(ValueError):
        docs_handler(share=0.0)


def test_dimension_key_is_order_free_and_hashable():
    assert dimension_key({"b": 1, "a": [1, 2]}) == dimension_key({"a": [1, 2], "b": 1})
    hash(dimension_key({"m": {"k": "v"}, "l": [1, {"x": 2}]}))
