"""Timeouts, retries and their per-request header overrides (concepts.md §7, §8.7, §8.8;
acceptance D.52–D.60)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing_helpers import PRODUCTPAGE, req_h, route_rule, table
from trimesh.routing import (BASE_RETRY_INTERVAL, DEFAULT_TIMEOUT, MAX_RETRY_INTERVAL, Forward,
                             RetryPolicy)


def ratings_rule(timeout: str | None = None, retry: dict | None = None):
    spec = {"destination": {"name": "ratings"}, "route": [{"labels": {"version": "v1"}}]}
    if timeout is not None:
        spec["httpReqTimeout"] = {"simpleTimeout": {"timeout": timeout}}
    if retry is not None:
        spec["httpReqRetries"] = {"simpleRetry": retry}
    return route_rule("ratings-default", **spec)


def decide(rules, headers=None) -> Forward:
    d = table(rules, source=PRODUCTPAGE).decide(req_h("ratings:9080", headers or {}),
                                                random.Random(1))
    assert isinstance(d, Forward)
    return d


def test_default_timeout_is_15_seconds():
    assert DEFAULT_TIMEOUT == 15.0
    assert decide([]).timeout == 15.0
    assert decide([ratings_rule()]).timeout == 15.0


def test_rule_timeout():
    assert decide([ratings_rule("10s")]).timeout == 10.0
    assert decide([ratings_rule("1.5s")]).timeout == 1.5


@pytest.mark.parametrize("value,expected", [
    ("500", 0.5), ("2000", 2.0), (" 250 ", 0.25),
    ("abc", 10.0), ("-1", 10.0), ("1.5", 10.0), ("", 10.0), ("0", 10.0), ("+5", 10.0),
    ("1e3", 10.0), ("１２", 10.0),
])
def test_timeout_header_overrides_in_milliseconds(value, expected):
    """Acceptance D.54; invalid values leave the route's timeout."""
    d = decide([ratings_rule("10s")], {"x-envoy-upstream-rq-timeout-ms": value})
    assert d.timeout == expected


def test_no_retries_unless_configured():
    assert decide([ratings_rule()]).retry is None
    assert decide([]).retry is None


def test_attempts_is_the_number_of_retries():
    """ratings-retry (attempts: 3): 1 try + 3 retries; see docs/routing.md."""
    d = decide([ratings_rule(retry={"attempts": 3, "perTryTimeout": "2s"})])
    assert d.retry == RetryPolicy(3, 2.0)
    assert d.retry.max_tries == 4


@pytest.mark.parametrize("header,rule_retry,expected", [
    ("0", {"attempts": 3}, None),  # acceptance D.57: the header disables retries
    ("5", {"attempts": 3, "perTryTimeout": "2s"}, RetryPolicy(5, 2.0)),
    ("2", None, RetryPolicy(2)),
    ("nope", {"attempts": 3}, RetryPolicy(3)),
    ("-2", {"attempts": 3}, RetryPolicy(3)),
    ("99999999", {"attempts": 3}, RetryPolicy(3)),
])
def test_retry_header_override(header, rule_retry, expected):
    d = decide([ratings_rule(retry=rule_retry)], {"x-envoy-max-retries": header})
    assert d.retry == expected


@given(index=st.integers(min_value=-3, max_value=60), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=200, deadline=None)
def test_backoff_bounds(index, seed):
    b = RetryPolicy(3).backoff(index, random.Random(seed))
    i = max(index, 0)
    assert BASE_RETRY_INTERVAL <= b <= min(MAX_RETRY_INTERVAL, BASE_RETRY_INTERVAL * 2 ** (i + 1))
    assert b <= 0.25


def test_backoff_grows_is_jittered_and_capped():
    """Acceptance D.59: delays are ≥ 25 ms, not all identical, and never above 250 ms."""
    p, r = RetryPolicy(10), random.Random(3)
    samples = {i: [p.backoff(i, r) for _ in range(400)] for i in range(6)}
    assert len({round(x, 9) for x in samples[0]}) > 100
    assert max(samples[0]) <= 0.050 and max(samples[1]) <= 0.100
    assert max(samples[2]) > 0.1  # the window did grow
    assert max(samples[5]) <= 0.250 and max(samples[5]) > 0.2
    means = [sum(v) / len(v) for v in samples.values()]
    assert means[0] < means[1] < means[2] < means[3]


@pytest.mark.parametrize("status,retry", [(500, True), (503, True), (504, True), (599, True),
                                          (200, False), (404, False), (429, False), (499, False)])
def test_retryable_statuses_are_5xx(status, retry):
    assert RetryPolicy(1).should_retry_status(status) is retry
