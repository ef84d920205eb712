"""When the cert agent renews a workload certificate. PURE: certificate times, ``now`` and a
jitter drawn by the caller.

Istio's node agent renews when the remaining lifetime falls to a *grace period*: ``ratio`` × the
lifetime (rotation grace period ratio 0.5), but never less than a minimum grace of 10 minutes
(telemetry-security.md §10.3; behaviour 50: "renews once ≤ 50 % of the lifetime remains, not later
than 10 min before expiry"). Taken literally the minimum breaks short lifetimes: a 60 s test
certificate would always be inside its 10-minute grace and be renewed in a loop. trimesh scales
the minimum down: it is capped at :data:`MAX_GRACE_FRACTION` (half) of the lifetime, so

    grace = max(ratio × lifetime, min(MIN_GRACE, MAX_GRACE_FRACTION × lifetime))
    renew at not_after − grace

With the default ratio (0.5) this is "renew at half the lifetime" for every lifetime: from 20
minutes up, half the lifetime is already at least 10 minutes before expiry; below, the 10-minute
minimum is scaled down to half the lifetime (a 60 s certificate renews at 30 s, a 19 h one at
9.5 h). With a smaller ratio the minimum matters: ratio 0.2 renews a 30-minute certificate 10
minutes before expiry instead of 6.

Jitter: the caller passes ``jitter`` in [0, 1) (``rng.random()``); the renewal moves *earlier* by up
to :data:`JITTER_FRACTION` of the time from notBefore to the renewal point, so agents that got
their certificates together do not all return to the CA in the same instant, and the guarantee
above still holds. The lifetime is measured on the certificate (notBefore to notAfter), which
includes the CA's small backdating (``CLOCK_SKEW_GRACE``, at most a tenth of the lifetime).
"""

from __future__ import annotations

RENEWAL_RATIO = 0.5  # Istio node agent: rotation grace period ratio (telemetry-security.md §10.3)
MIN_GRACE = 600.0  # Istio node agent: minimum grace period 10 min (§10.3)
MAX_GRACE_FRACTION = 0.5  # trimesh: the minimum grace is scaled down to half a short lifetime
JITTER_FRACTION = 0.1  # trimesh: renew up to 10 % earlier to spread agents out


def renewal_time(not_before: float, not_after: float, *, jitter: float = 0.0,
                 ratio: float = RENEWAL_RATIO, min_grace: float = MIN_GRACE) -> float:
    """The instant (same clock as the certificate times) to renew a certificate valid from
    ``not_before`` to ``not_after``."""
    if not 0.0 <= jitter < 1.0:
        raise ValueError(f"jitter must be in [0, 1), got {jitter!r}")
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"ratio must be in (0, 1), got {ratio!r}")
    lifetime = not_after - not_before
    if lifetime <= 0:
        return not_before
    grace = max(ratio * lifetime, min(min_grace, MAX_GRACE_FRACTION * lifetime))
    at = not_after - grace
    return at - jitter * JITTER_FRACTION * (at - not_before)


def renewal_delay(not_before: float, not_after: float, now: float, *, jitter: float = 0.0,
                  ratio: float = RENEWAL_RATIO, min_grace: float = MIN_GRACE) -> float:
    """Seconds from ``now`` until the renewal; 0 when it is due (or the certificate expired)."""
    at = renewal_time(not_before, not_after, jitter=jitter, ratio=ratio, min_grace=min_grace)
    return max(0.0, at - now)
