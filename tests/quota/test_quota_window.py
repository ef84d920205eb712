"""The rolling window: resolution, the any-window guarantee, release, idleness (virtual time)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trimesh.quota import MAX_BUCKETS, MIN_BUCKETS, RollingWindow, bucket_count


@pytest.mark.parametrize("window, buckets", [
    (1.0, 10),      # the docs' validDuration: 1s -> 100 ms buckets (Istio's tick)
    (0.1, 10),      # short windows keep at least MIN_BUCKETS
    (0.3, 10),
    (5.0, 50),      # 100 ms buckets as long as they fit
    (10.0, 100),
    (60.0, 600),
    (3600.0, 600),  # capped: 6 s buckets
])
def test_bucket_count(window, buckets):
    assert bucket_count(window) == buckets
    assert MIN_BUCKETS <= buckets <= MAX_BUCKETS


@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_bucket_count_refuses_empty_windows(bad):
    with pytest.raises(ValueError, match="positive"):
        bucket_count(bad)


# (time, amount, granted?) sequences for a 1-per-second window
ONE_PER_SECOND = [
    (0.0, True), (0.5, False), (0.999, False), (1.0, True),   # a lone charge is held exactly 1 s
    (1.05, False), (1.999, False), (2.0, True), (2.3, False), (3.29, True), (3.3, False),
]


def test_one_per_second_sequence():
    w = RollingWindow(1, 1.0)
    got = [(t, w.alloc(1, t)) for t, _ in ONE_PER_SECOND]
    assert got == ONE_PER_SECOND


def test_client_at_exactly_the_limit_always_passes():
    w = RollingWindow(1, 1.0)
    assert all(w.alloc(1, float(t)) for t in range(20))


@pytest.mark.parametrize("max_amount, window, times, expected", [
    # 3 per second: the fourth within the same second is refused, then one frees up at 1.0
    (3, 1.0, [0.0, 0.2, 0.4, 0.6, 1.0, 1.1, 1.2, 1.3], [1, 1, 1, 0, 1, 0, 1, 0]),
    # several charges in one bucket: all come back once the newest is a window old
    (2, 1.0, [0.01, 0.05, 1.02, 1.05, 1.06, 1.07], [1, 1, 0, 1, 1, 0]),
    # 0 never passes
    (0, 1.0, [0.0, 5.0], [0, 0]),
    # long idle: everything is back
    (2, 1.0, [0.0, 0.1, 0.2, 100.0, 100.0], [1, 1, 0, 1, 1]),
])
def test_sequences(max_amount, window, times, expected):
    w = RollingWindow(max_amount, window)
    assert [int(w.alloc(1, t)) for t in times] == expected


def test_all_or_nothing_and_available():
    w = RollingWindow(5, 1.0)
    assert w.alloc(3, 0.0)
    assert not w.alloc(3, 0.1)      # only 2 left: nothing charged
    assert w.available(0.1) == 2
    assert w.alloc(2, 0.2)
    assert w.available(0.9) == 0
    assert w.available(1.0) == 3    # the first bucket's charge is a window old
    assert w.available(1.25) == 5


def test_release_gives_back_newest_first():
    w = RollingWindow(5, 1.0)
    w.alloc(2, 0.0)
    w.alloc(2, 0.5)
    assert w.release(3, 0.6) == 3     # 2 from the 0.5 bucket, 1 from the 0.0 bucket
    assert w.available(0.6) == 4
    assert w.release(10, 0.7) == 1    # only 1 was left
    assert w.available(0.7) == 5 and w.idle(0.7)


def test_clock_going_backwards_gives_nothing_back_early():
    w = RollingWindow(1, 1.0)
    assert w.alloc(1, 5.0)
    assert not w.alloc(1, 4.0)
    assert not w.alloc(1, 5.5)
    assert w.alloc(1, 6.0)


def test_idle_and_statistics():
    w = RollingWindow(2, 1.0)
    assert w.idle(0.0)
    w.alloc(1, 0.0)
    assert not w.idle(0.5)
    assert w.statistics() == {"max_amount": 2, "window": 1.0, "bucket": 0.1, "buckets": 10,
                              "held": 1}
    assert "1/2 held" in repr(w)
    assert w.idle(1.0)


def test_bad_arguments():
    with pytest.raises(ValueError):
        RollingWindow(-1, 1.0)
    with pytest.raises(ValueError):
        RollingWindow(1, 1.0, buckets=0)


# --- the acceptance promise: over ANY interval of length W at most max_amount is granted ----------

charges = st.lists(
    st.tuples(st.floats(min_value=0.0, max_value=0.4, allow_nan=False), st.integers(1, 3)),
    min_size=1, max_size=120)


@settings(max_examples=200, deadline=None)
@given(max_amount=st.integers(1, 6), window=st.sampled_from([0.1, 0.25, 1.0, 1.5, 5.0]),
       buckets=st.one_of(st.none(), st.integers(1, 30)), steps=charges,
       start=st.floats(0.0, 1e6, allow_nan=False))
def test_any_window_holds_at_most_max_amount(max_amount, window, buckets, steps, start):
    w = RollingWindow(max_amount, window, buckets)
    now = start
    granted: list[tuple[float, int]] = []
    for gap, amount in steps:
        now += gap * window
        if w.alloc(amount, now):
            granted.append((now, amount))
    # every window [t, t + W) that starts at a granted charge holds at most max_amount
    for i, (t0, _) in enumerate(granted):
        inside = sum(a for t, a in granted[i:] if t < t0 + window - 2e-9 * max(1.0, t0))
        assert inside <= max_amount, (t0, granted)


@settings(max_examples=200, deadline=None)
@given(max_amount=st.integers(1, 6), window=st.sampled_from([0.25, 1.0, 5.0]),
       steps=charges)
def test_charges_come_back_within_one_bucket_of_the_window(max_amount, window, steps):
    """Liveness: a window that refuses always has a held charge younger than W + one bucket."""
    w = RollingWindow(max_amount, window)
    now = 0.0
    granted: list[tuple[float, int]] = []
    for gap, amount in steps:
        now += gap * window
        if w.alloc(amount, now):
            granted.append((now, amount))
        else:
            recent = sum(a for t, a in granted if t > now - window - w.bucket - 1e-9)
            assert recent + amount > max_amount
