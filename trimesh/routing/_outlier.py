"""Outlier detection: passive health checking from real traffic (the simpleCb ejection fields).

Istio 0.x's ``circuitBreaker.simpleCb`` fields ``httpConsecutiveErrors``, ``sleepWindow``,
``httpDetectionInterval`` and ``httpMaxEjectionPercent`` became Envoy's outlier detection
``consecutive_5xx``, ``base_ejection_time``, ``interval`` and ``max_ejection_percent``
(concepts.md §8.12, anchors.md §0; Envoy config.cluster.v3.OutlierDetection and the architecture
overview *Outlier detection*). The algorithm, per cluster:

1. Every upstream result is reported with :meth:`OutlierDetector.record`: a 5xx response **or a
   connect failure / reset** (``status=None``; Envoy maps local-origin errors to 5xx unless
   ``split_external_local_origin_errors``) adds one to the host's consecutive-error count; any
   other response resets it to zero.
2. When the count reaches ``consecutive_errors`` the host is an outlier and is ejected **at once**
   (Envoy: consecutive-5xx ejection "runs inline"; only success-rate detection waits for the
   sweep) — unless that would eject more than ``max_ejection_percent`` of the pool. The first
   ejection is always allowed ("will eject at least one host regardless of the value"); after
   that a host is ejected only if ``(ejected + 1) / pool <= max_ejection_percent`` (Envoy 1.x
   compared the current share, which could overshoot the percentage by one host). A refused
   ejection counts ``ejections_overflow`` and leaves the count where it is, so the next error
   tries again.
3. An ejected host stays out for ``base_ejection_time × its ejection multiplier`` (the multiplier
   is the number of times it was ejected in a row), capped by ``max(MAX_EJECTION_TIME,
   base_ejection_time)`` (Envoy ``max_ejection_time``, default 300 s "or base_ejection_time,
   whichever is larger").
4. Every ``interval`` a sweep runs: ejected hosts whose time is up return to the pool (their count
   restarts at zero), and every host *not* ejected has its multiplier decreased by one (Envoy ≥
   1.17: a host that stays healthy is forgiven step by step).

Pure code has no timers, so the sweep is **lazy**: sweeps happen at ``start + k × interval`` (start
= the first ``now`` the detector sees) and :meth:`OutlierDetector.advance` runs every sweep that is
due whenever the cluster is asked for a host or given a result. The outcome is the same as a timer
firing on time, at any request rate.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

CONSECUTIVE_ERRORS = 5  # simpleCb httpConsecutiveErrors / Envoy consecutive_5xx default
DETECTION_INTERVAL = 10.0  # httpDetectionInterval / Envoy interval default: 10 s
BASE_EJECTION_TIME = 30.0  # sleepWindow / Envoy base_ejection_time default: 30 s
MAX_EJECTION_PERCENT = 10  # httpMaxEjectionPercent / Envoy max_ejection_percent default: 10 %
MAX_EJECTION_TIME = 300.0  # Envoy max_ejection_time default: 300 s (or base time if larger)
# Failure accrual for clusters without a DestinationPolicy circuit breaker (issue 10: connect
# failures and resets feed ejection even then). Linkerd's failure accrual ejects after 5
# consecutive failures; Envoy's consecutive_gateway_failure counts the same "gateway" class
# (connect failure, reset, 502/503/504) with a default threshold of 5. Ejection is short (5 s,
# growing with repeated ejections like any other) and may take up to half the pool — never the
# only host of a cluster — so a restarted instance is back soon and a small cluster can still route
# around one dead member.
ACCRUAL_ERRORS = 5
ACCRUAL_EJECTION_TIME = 5.0
ACCRUAL_MAX_EJECTION_PERCENT = 50
GATEWAY_STATUSES = frozenset({502, 503, 504})


class OutlierConfig:
    """The ejection parameters of one cluster (from its DestinationPolicy's simpleCb)."""

    __slots__ = ("consecutive_errors", "interval", "base_ejection_time", "max_ejection_percent",
                 "max_ejection_time", "gateway_only")

    def __init__(self, consecutive_errors: int = CONSECUTIVE_ERRORS,
                 interval: float = DETECTION_INTERVAL,
                 base_ejection_time: float = BASE_EJECTION_TIME,
                 max_ejection_percent: float = MAX_EJECTION_PERCENT,
                 max_ejection_time: float = MAX_EJECTION_TIME, *,
                 gateway_only: bool = False) -> None:
        self.gateway_only = gateway_only  # count only gateway errors (failure accrual)
        self.consecutive_errors = max(int(consecutive_errors), 1)
        self.interval = float(interval) if interval > 0 else DETECTION_INTERVAL
        self.base_ejection_time = float(base_ejection_time)
        self.max_ejection_percent = min(max(float(max_ejection_percent), 0.0), 100.0)
        self.max_ejection_time = max(float(max_ejection_time), self.base_ejection_time)

    @classmethod
    def from_simple_cb(cls, cb: Any) -> "OutlierConfig | None":
        """The settings of a ``simpleCb`` (``None``: no policy, no outlier detection — as Envoy,
        Istio only configured it when a DestinationPolicy had a circuit breaker)."""
        if cb is None:
            return None
        return cls(cb.http_consecutive_errors, float(cb.http_detection_interval),
                   float(cb.sleep_window), cb.http_max_ejection_percent)

    def __repr__(self) -> str:
        return (f"<OutlierConfig {'gateway ' if self.gateway_only else ''}consecutive={self.consecutive_errors} "
                f"interval={self.interval}s base={self.base_ejection_time}s "
                f"max={self.max_ejection_percent:g}%>")


FAILURE_ACCRUAL = OutlierConfig(ACCRUAL_ERRORS, DETECTION_INTERVAL, ACCRUAL_EJECTION_TIME,
                                ACCRUAL_MAX_EJECTION_PERCENT, gateway_only=True)


class HostOutlier:
    """Outlier bookkeeping for one endpoint of one cluster."""

    __slots__ = ("consecutive", "multiplier", "ejected_at", "ejected_until", "ejections")

    def __init__(self) -> None:
        self.consecutive = 0  # consecutive errors (5xx or connect failure)
        self.multiplier = 0  # ejections in a row (decreases while the host behaves)
        self.ejected_at: float | None = None
        self.ejected_until: float | None = None  # None: in the pool
        self.ejections = 0  # ever

    @property
    def ejected(self) -> bool:
        return self.ejected_until is not None

    def __repr__(self) -> str:
        state = f"ejected until {self.ejected_until}" if self.ejected else "in pool"
        return f"<HostOutlier {state} consecutive={self.consecutive} x{self.multiplier}>"


def is_error(status: int | None) -> bool:
    """What counts towards ``httpConsecutiveErrors``: a 5xx or no response at all."""
    return status is None or status >= 500


def is_gateway_error(status: int | None) -> bool:
    """What failure accrual counts: no response at all, or 502/503/504."""
    return status is None or status in GATEWAY_STATUSES


class OutlierDetector:
    """Ejection state of one cluster, keyed by endpoint; survives snapshot swaps with the
    cluster's state. Each call takes the cluster's current :class:`OutlierConfig` and pool."""

    __slots__ = ("hosts", "next_sweep", "sweeps", "ejections_total", "ejections_overflow",
                 "ejections_detected", "returns")

    def __init__(self) -> None:
        self.hosts: dict[tuple[str, int], HostOutlier] = {}
        self.next_sweep: float | None = None
        self.sweeps = 0
        self.ejections_total = 0  # enforced consecutive-5xx ejections
        self.ejections_overflow = 0  # refused by max_ejection_percent
        self.ejections_detected = 0  # outliers detected (enforced or not)
        self.returns = 0

    def is_ejected(self, endpoint: tuple[str, int]) -> bool:
        h = self.hosts.get(endpoint)
        return h is not None and h.ejected_until is not None

    def ejected_count(self, pool: Iterable[tuple[str, int]]) -> int:
        hosts = self.hosts
        n = 0
        for ep in pool:
            h = hosts.get(ep)
            if h is not None and h.ejected_until is not None:
                n += 1
        return n

    def advance(self, now: float, cfg: OutlierConfig) -> bool:
        """Run every sweep due by ``now``; ``True`` if a host returned to the pool."""
        nxt = self.next_sweep
        if nxt is None:
            self.next_sweep = now + cfg.interval
            return False
        if now < nxt:
            return False
        interval = cfg.interval
        due = int((now - nxt) // interval) + 1  # sweeps at nxt, nxt + interval, ... <= now
        last = nxt + (due - 1) * interval
        changed = False
        for h in self.hosts.values():
            forgiven = due  # sweeps at which this host is in the pool
            until = h.ejected_until
            if until is not None:
                # Its return sweep: the first one at or after its ejection ends.
                back = nxt if until <= nxt else nxt + math.ceil((until - nxt) / interval) * interval
                if back > last:
                    continue  # still out after every due sweep
                h.ejected_until = None
                h.ejected_at = None
                h.consecutive = 0
                self.returns += 1
                changed = True
                forgiven = int(round((last - back) / interval))
            if h.multiplier > 0 and forgiven > 0:
                h.multiplier = max(h.multiplier - forgiven, 0)
        self.sweeps += due
        self.next_sweep = last + interval
        return changed

    def record(self, endpoint: tuple[str, int], status: int | None, now: float,
               cfg: OutlierConfig, pool: tuple[tuple[str, int], ...]) -> bool:
        """One upstream result of ``endpoint``; ``True`` if it was ejected by it."""
        self.advance(now, cfg)
        h = self.hosts.get(endpoint)
        if not (is_gateway_error(status) if cfg.gateway_only else is_error(status)):
            if h is not None:
                h.consecutive = 0
            return False
        if h is None:
            h = self.hosts[endpoint] = HostOutlier()
        if h.ejected_until is not None:
            return False  # a request that started before the ejection; already out
        h.consecutive += 1
        if h.consecutive < cfg.consecutive_errors:
            return False
        self.ejections_detected += 1
        ejected = self.ejected_count(pool)
        n = len(pool)
        # Envoy ejects the first host whatever the percentage; failure accrual never does more
        # than the percentage allows, so it cannot eject a cluster's only host.
        if ((ejected > 0 or cfg.gateway_only)
                and (ejected + 1) * 100.0 > cfg.max_ejection_percent * n):
            self.ejections_overflow += 1
            return False
        h.multiplier += 1
        h.ejections += 1
        h.ejected_at = now
        h.ejected_until = now + min(cfg.base_ejection_time * h.multiplier, cfg.max_ejection_time)
        h.consecutive = 0
        self.ejections_total += 1
        return True

    def forget(self, keep: Iterable[tuple[str, int]]) -> None:
        """Drop the state of endpoints no longer in the pool."""
        keep = set(keep)
        for ep in [ep for ep in self.hosts if ep not in keep]:
            del self.hosts[ep]

    def statistics(self, pool: tuple[tuple[str, int], ...]) -> dict[str, Any]:
        active = self.ejected_count(pool)
        return {
            "outlier_detection.ejections_active": active,
            "outlier_detection.ejections_total": self.ejections_total,
            "outlier_detection.ejections_consecutive_5xx": self.ejections_total,
            "outlier_detection.ejections_enforced_total": self.ejections_total,
            "outlier_detection.ejections_enforced_consecutive_5xx": self.ejections_total,
            "outlier_detection.ejections_detected_consecutive_5xx": self.ejections_detected,
            "outlier_detection.ejections_overflow": self.ejections_overflow,
        }

    def __repr__(self) -> str:
        ejected = sum(1 for h in self.hosts.values() if h.ejected)
        nxt = "-" if self.next_sweep is None else f"{self.next_sweep:g}"
        return f"<OutlierDetector ejected={ejected} next_sweep={nxt} sweeps={self.sweeps}>"
