"""The cert agent's renewal schedule."""

from __future__ import annotations

import pytest

from trimesh.ca import renewal_delay, renewal_time

MIN = 60.0
HOUR = 3600.0


@pytest.mark.parametrize("lifetime, renew_after", [
    (60, 30),  # a test lifetime: half, not "10 minutes before expiry"
    (10, 5),
    (15 * MIN, 7.5 * MIN),  # below 20 min the 10-minute minimum is scaled down to half
    (20 * MIN, 10 * MIN),
    (HOUR, 30 * MIN),
    (19 * HOUR, 9.5 * HOUR),  # the default workload lifetime
    (7 * 24 * HOUR, 3.5 * 24 * HOUR),
    (0, 0), (-5, 0),  # nonsense: renew at once
])
def test_renew_at_half_the_lifetime(lifetime, renew_after):
    t0 = 1_790_000_000.0
    assert renewal_time(t0, t0 + lifetime) == pytest.approx(t0 + renew_after)


@pytest.mark.parametrize("lifetime, ratio, renew_after", [
    (30 * MIN, 0.2, 20 * MIN),  # the 10-minute minimum binds: 10 min before expiry, not 6
    (2 * HOUR, 0.2, 96 * MIN),  # 24 min of grace already exceeds the minimum
    (60, 0.2, 30),  # scaled down to half of a short lifetime
    (12 * MIN, 0.2, 6 * MIN),
])
def test_the_minimum_grace_with_a_smaller_ratio(lifetime, ratio, renew_after):
    assert renewal_time(0.0, lifetime, ratio=ratio) == pytest.approx(renew_after)


@pytest.mark.parametrize("jitter, renew_after", [(0.0, 30.0), (0.5, 28.5), (0.999, 27.003)])
def test_jitter_only_moves_the_renewal_earlier(jitter, renew_after):
    assert renewal_time(0.0, 60.0, jitter=jitter) == pytest.approx(renew_after)


@pytest.mark.parametrize("now, delay", [(0.0, 30.0), (29.0, 1.0), (30.0, 0.0), (100.0, 0.0)])
def test_renewal_delay(now, delay):
    assert renewal_delay(0.0, 60.0, now) == pytest.approx(delay)


@pytest.mark.parametrize("kwargs", [{"jitter": 1.0}, {"jitter": -0.1}, {"ratio": 0.0}, {"ratio": 1.0}])
def test_bad_parameters(kwargs):
    with pytest.raises(ValueError):
        renewal_time(0.0, 60.0, **kwargs)
