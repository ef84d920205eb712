"""Deduplication of quota operations.

A client that retries a Quota call (its first answer was lost) sends the same *deduplication id*
again; the operation must not be charged twice. Istio's memquota
(``mixer/adapter/memquota/dedup.go``) remembers each id with the amount it granted and when that
grant expires, in two maps that swap every ``minDeduplicationDuration`` (default 1 s): a new id goes
into the *recent* map, a swap makes recent the *old* one and empties the former old one. An id is
thus remembered for at least one and less than two periods, and a repeat within that time gets the
first answer back (its remaining valid duration) without touching any counter.

Here the swap is driven by ``now`` instead of a ticker: time is cut into epochs of one period, the
recent map holds ids first seen in the current epoch and the old map those of the previous one.
Memory is bounded by the ids seen in two periods.
"""

from __future__ import annotations

import math
from typing import Any, Hashable

DEDUPLICATION_DURATION = 1.0  # memquota GetInfo: DefaultConfig MinDeduplicationDuration 1s


class DedupCache:
    """Remembers ``key -> (granted, expires_at)`` for one to two ``period`` seconds."""

    __slots__ = ("period", "_epoch", "_recent", "_old", "hits")

    def __init__(self, period: float = DEDUPLICATION_DURATION) -> None:
        if not period > 0:
            raise ValueError(f"the deduplication period must be > 0, got {period!r}")
        self.period = float(period)
        self._epoch: int | None = None
        self._recent: dict[Hashable, tuple[int, float]] = {}
        self._old: dict[Hashable, tuple[int, float]] = {}
        self.hits = 0

    def _advance(self, now: float) -> None:
        epoch = math.floor(now / self.period)
        if self._epoch is None:
            self._epoch = epoch
            return
        gap = epoch - self._epoch
        if gap <= 0:
            return
        if gap == 1:
            self._old = self._recent
        else:
            self._old = {}
        self._recent = {}
        self._epoch = epoch

    def get(self, key: Hashable, now: float) -> tuple[int, float] | None:
        """The remembered ``(granted, expires_at)`` of ``key``, or ``None``."""
        self._advance(now)
        found = self._recent.get(key)
        if found is None:
            found = self._old.get(key)
        if found is not None:
            self.hits += 1
        return found

    def put(self, key: Hashable, granted: int, expires_at: float, now: float) -> None:
        self._advance(now)
        self._recent[key] = (granted, expires_at)

    def expire(self, now: float) -> None:
        """Forget what is older than the window (the reaper's job)."""
        self._advance(now)

    def __len__(self) -> int:
        return len(self._recent) + len(self._old)

    def statistics(self) -> dict[str, Any]:
        return {"entries": len(self), "hits": self.hits, "period": self.period}

    def __repr__(self) -> str:
        return f"<DedupCache {len(self)} ids, period {self.period:g}s, {self.hits} hits>"
