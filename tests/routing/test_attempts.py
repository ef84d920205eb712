"""The attempt policy (trimesh/routing/_attempts.py): pure, table-driven, no event loop."""

from __future__ import annotations

import math
import random

import pytest

from trimesh.routing import (CONNECT_FAILURE, NO_HEALTHY_UPSTREAM, NO_HOST, PER_TRY_TIMEOUT,
                             RELAY, RESET, RESPONSE, ROUTE_TIMEOUT, UPSTREAM_FAILURE,
                             UPSTREAM_TIMEOUT, AttemptState, GiveUp, Retry, RetryPolicy)

THREE = RetryPolicy(3)
A, B, C = ("10.0.0.1", 80), ("10.0.0.2", 80), ("10.0.0.3", 80)


def state(retry=THREE, deadline=math.inf, replayable=True, tried=()):
    s = AttemptState(retry, deadline, replayable)
    for ep in tried:
        s.started(ep)
    return s


@pytest.mark.parametrize("outcome,status,tried,expect", [
    # a final answer is relayed, whatever the tries left
    (RESPONSE, 200, [A], RELAY),
    (RESPONSE, 404, [A], RELAY),
    # 5xx with tries left: retry; with none left: the upstream's own 5xx is relayed
    (RESPONSE, 503, [A], Retry),
    (RESPONSE, 503, [A, B, C, A], RELAY),
    # connect failures, resets and per-try timeouts: retried while tries remain
    (CONNECT_FAILURE, None, [A], Retry),
    (RESET, None, [A, B], Retry),
    (PER_TRY_TIMEOUT, None, [A], Retry),
    (CONNECT_FAILURE, None, [A, B, C, A], UPSTREAM_FAILURE),
    (RESET, None, [A, B, C, A], UPSTREAM_FAILURE),
    (PER_TRY_TIMEOUT, None, [A, B, C, A], UPSTREAM_TIMEOUT),
    # the route timeout is never retried
    (ROUTE_TIMEOUT, None, [A], UPSTREAM_TIMEOUT),
    # no host at all on the first try: 503 UH
    (NO_HOST, None, [], NO_HEALTHY_UPSTREAM),
])
def test_after_a_try(outcome, status, tried, expect):
    step = state(tried=tried).after(outcome, status, 0.0, random.Random(1))
    if isinstance(expect, type):
        assert type(step) is expect
    elif expect is RELAY:
        assert step is RELAY
    else:
        assert type(step) is GiveUp and step.reply == expect


def test_a_retry_avoids_every_host_tried_and_backs_off_within_envoys_bounds():
    s = state(tried=[A, B])
    step = s.after(CONNECT_FAILURE, None, 0.0, random.Random(3))
    assert step.avoid == (A, B)
    assert 0.025 <= step.backoff <= 0.100  # the second retry: 25–100 ms
    # a refused retry (circuit breaker) falls back to the give-up of this failure
    assert type(step.refused) is GiveUp and step.refused.reply == UPSTREAM_FAILURE
    # a retryable status whose retry is refused relays the upstream's answer instead
    assert s.after(RESPONSE, 503, 0.0, random.Random(3)).refused is RELAY


def test_no_host_after_failures_keeps_the_last_failure():
    s = state(tried=[A])
    s.after(RESET, None, 0.0, random.Random(1))
    step = s.after(NO_HOST, None, 0.0, random.Random(1))
    assert type(step) is GiveUp and step.reply == UPSTREAM_FAILURE


def test_time_running_out_gives_504():
    s = state(deadline=10.0, tried=[A])
    assert s.after(CONNECT_FAILURE, None, 10.0, random.Random(1)).reply == UPSTREAM_TIMEOUT
    assert s.after(RESPONSE, 503, 10.0, random.Random(1)) is RELAY  # no time for a retry
    assert s.after_backoff(9.9) is None
    assert s.after_backoff(10.0).reply == UPSTREAM_TIMEOUT


@pytest.mark.parametrize("retry,replayable,tries", [
    (None, True, 1), (THREE, True, 4), (THREE, False, 1), (RetryPolicy(0), True, 1)])
def test_max_tries(retry, replayable, tries):
    s = state(retry=retry, replayable=replayable)
    for n in range(1, 10):
        s.started(A)
        if not isinstance(s.after(CONNECT_FAILURE, None, 0.0, random.Random(1)), Retry):
            break
    assert n == tries and s.tries == tries
    assert repr(s).startswith("<AttemptState tries=")
