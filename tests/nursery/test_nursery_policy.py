"""The restart tracker, with no event loop: the policy x exit table and the intensity window."""

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trimesh.nursery import (
    DECISIONS,
    DEFAULT_MAX_RESTARTS,
    DEFAULT_RESTART_WINDOW,
    Action,
    ExitKind,
    RestartPolicy,
    RestartTracker,
)

P, E, A = RestartPolicy, ExitKind, Action

# OTP design principles, "Child Specification" / restart: permanent always restarted, transient
# only on abnormal exit, temporary never.
EXPECTED = [
    (P.PERMANENT, E.NORMAL, A.RESTART),
    (P.PERMANENT, E.ERROR, A.RESTART),
    (P.TRANSIENT, E.NORMAL, A.LEAVE),
    (P.TRANSIENT, E.ERROR, A.RESTART),
    (P.TEMPORARY, E.NORMAL, A.LEAVE),
    (P.TEMPORARY, E.ERROR, A.LEAVE),
]


def test_table_covers_every_policy_and_exit_kind():
    assert set(DECISIONS) == set(itertools.product(RestartPolicy, ExitKind))


@pytest.mark.parametrize(("policy", "exit", "action"), EXPECTED)
def test_decision_table(policy, exit, action):
    assert DECISIONS[(policy, exit)] is action
    tracker = RestartTracker(max_restarts=5, window=10.0)
    decision = tracker.decide("web", policy, exit, now=100.0, cause="ValueError('x')")
    assert decision.action is action
    assert decision.child == "web" and decision.exit is exit
    # only restarts count against the intensity
    assert tracker.restarts_in_window(100.0) == (1 if action is A.RESTART else 0)
    assert tracker.statistics(100.0).total_restarts == (1 if action is A.RESTART else 0)


@pytest.mark.parametrize(("policy", "exit", "action"), EXPECTED)
def test_policy_and_exit_accept_strings(policy, exit, action):
    tracker = RestartTracker(max_restarts=5, window=10.0)
    assert tracker.decide("web", policy.value, exit.value, now=0.0, cause="c").action is action


def test_defaults_are_otps():
    assert (DEFAULT_MAX_RESTARTS, DEFAULT_RESTART_WINDOW) == (1, 5.0)
    tracker = RestartTracker()
    assert (tracker.max_restarts, tracker.window) == (1, 5.0)


@pytest.mark.parametrize("max_restarts", [0, 1, 3])
def test_the_restart_after_max_restarts_escalates(max_restarts):
    tracker = RestartTracker(max_restarts=max_restarts, window=5.0)
    actions = [
        tracker.decide("a", P.PERMANENT, E.ERROR, now=0.1 * i, cause=f"crash {i}").action
        for i in range(max_restarts + 1)
    ]
    assert actions == [A.RESTART] * max_restarts + [A.ESCALATE]
    stats = tracker.statistics(0.1 * max_restarts)
    assert stats.escalated and stats.total_restarts == max_restarts


def test_escalation_names_child_cause_and_limit():
    tracker = RestartTracker(max_restarts=2, window=3.0)
    for t in (0.0, 1.0):
        tracker.decide("discovery", P.PERMANENT, E.ERROR, now=t, cause="OSError(98)")
    decision = tracker.decide("discovery", P.TRANSIENT, E.ERROR, now=2.0, cause="OSError(98)")
    assert decision.action is A.ESCALATE
    assert decision.restarts_in_window == 3
    assert decision.cause == "OSError(98)"
    for part in ("'discovery'", "OSError(98)", "2 restarts in 3s"):
        assert part in decision.reason


# (timestamps of exits, window) -> actions; max_restarts = 2 throughout
@pytest.mark.parametrize(
    ("times", "expected"),
    [
        # spaced more than a window apart: never more than one in the window
        ([0.0, 5.1, 10.2, 15.3, 20.4], [A.RESTART] * 5),
        # the third within 5 s escalates
        ([0.0, 1.0, 4.9], [A.RESTART, A.RESTART, A.ESCALATE]),
        # exactly `window` old still counts (OTP keeps R >= Now - Period)
        ([0.0, 1.0, 5.0], [A.RESTART, A.RESTART, A.ESCALATE]),
        # just past it has slid out
        ([0.0, 1.0, 5.001], [A.RESTART, A.RESTART, A.RESTART]),
        # sliding, not fixed buckets: 4.0 and 8.0 are within 5 s of 8.5
        ([0.0, 4.0, 8.0, 8.5], [A.RESTART, A.RESTART, A.RESTART, A.ESCALATE]),
    ],
)
def test_sliding_window(times, expected):
    tracker = RestartTracker(max_restarts=2, window=5.0)
    got = [tracker.decide("a", P.PERMANENT, E.ERROR, now=t, cause="c").action for t in times]
    assert got == expected


def test_intensity_is_shared_by_all_children():
    tracker = RestartTracker(max_restarts=2, window=5.0)
    assert tracker.decide("a", P.PERMANENT, E.ERROR, now=0.0, cause="c").action is A.RESTART
    assert tracker.decide("b", P.PERMANENT, E.ERROR, now=1.0, cause="c").action is A.RESTART
    assert tracker.decide("c", P.TRANSIENT, E.ERROR, now=2.0, cause="c").action is A.ESCALATE


def test_leave_decisions_do_not_count():
    tracker = RestartTracker(max_restarts=1, window=5.0)
    for t in range(5):
        assert tracker.decide("job", P.TEMPORARY, E.ERROR, now=float(t), cause="c").action is A.LEAVE
        assert tracker.decide("t", P.TRANSIENT, E.NORMAL, now=float(t), cause="c").action is A.LEAVE
    assert tracker.decide("web", P.PERMANENT, E.NORMAL, now=5.0, cause="c").action is A.RESTART


def test_restarts_in_window_does_not_mutate():
    tracker = RestartTracker(max_restarts=3, window=5.0)
    tracker.decide("a", P.PERMANENT, E.ERROR, now=0.0, cause="c")
    assert tracker.restarts_in_window(100.0) == 0
    assert tracker.restarts_in_window(1.0) == 1  # asking about the far future dropped nothing
    assert "1 recent" in repr(tracker) and "intensity=3 in 5s" in repr(tracker)


@pytest.mark.parametrize(
    ("max_restarts", "window"), [(-1, 5.0), (1.5, 5.0), (True, 5.0), (1, 0.0), (1, -2.0), (1, "5")]
)
def test_bad_intensity_is_rejected(max_restarts, window):
    with pytest.raises(ValueError, match="intensity"):
        RestartTracker(max_restarts, window)


@settings(max_examples=300, deadline=None)
@given(
    max_restarts=st.integers(0, 4),
    window=st.sampled_from([0.5, 1.0, 5.0]),
    gaps=st.lists(st.sampled_from([0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 6.0]), max_size=25),
)
def test_tracker_matches_the_definition(max_restarts, window, gaps):
    """Up to its first escalation, the tracker restarts exactly when fewer than max_restarts earlier
    restarts lie within [now - window, now] (brute force over the history)."""
    tracker = RestartTracker(max_restarts, window)
    restarted: list[float] = []
    now = 0.0
    for gap in gaps:
        now += gap
        action = tracker.decide("a", P.PERMANENT, E.ERROR, now=now, cause="c").action
        recent = sum(1 for t in restarted if t >= now - window)
        assert action is (A.RESTART if recent + 1 <= max_restarts else A.ESCALATE)
        if action is A.ESCALATE:
            break
        restarted.append(now)
    assert tracker.statistics(now).total_restarts == len(restarted)
