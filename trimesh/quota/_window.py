"""The rolling window behind memquota's rate limits.

Istio's memquota (``mixer/adapter/memquota/rollingWindow.go``) keeps, per counter, a ring of slots,
one per *tick* of the clock, each holding what was charged during that tick. A charge goes into the
current slot; when the clock moves on by k ticks the k oldest slots are given back. The docs call
this "a sliding window of sub-second resolution" (traffic-tasks.md §9.6 item 4).

Resolution (decided here, and documented in docs/quota.md):

* A window of ``W`` seconds is cut into ``n`` buckets of ``W / n`` seconds: as many as it takes for
  Istio's 100 ms tick (``ticksPerSecond = 10``), but never fewer than :data:`MIN_BUCKETS` nor more
  than :data:`MAX_BUCKETS`. The docs' ``validDuration: 1s`` gives 10 buckets of 100 ms; ``100ms``
  gives 10 of 10 ms; ``10s`` gives 100 of 100 ms; an hour gives 600 of 6 s (memory stays bounded).
  Istio rounds ``W`` up to whole seconds; trimesh uses ``W`` as written.
* The ring holds ``n + 1`` slots, not ``n``: the current, partly elapsed bucket plus ``n`` whole
  ones, and each slot also remembers the time of its newest charge. A slot ``n + 1`` ticks old is
  given back by the roll, as in Istio; the slot exactly ``n`` ticks old is given back as soon as its
  newest charge is ``W`` old. So a charge made at ``a`` is held **at least W** (over any interval of
  length W at most ``maxAmount`` is granted: the acceptance test's "over any 1 s at most one
  passes") and at most ``W`` plus one bucket when later charges share its bucket. A lone charge
  (the docs' 1-per-second override) is held exactly ``W``: a client at exactly the limit passes
  every time. With Istio's ``n`` plain slots a charge could come back after ``W - W/n``, so two
  requests 0.91 s apart could both pass a 1-per-second limit.

Ticks are ``floor(now / bucket)`` of the ``now`` passed in (seconds, float), and times closer than
:data:`TIME_EPSILON` (1 ns) count as equal, so that a charge at 0.2 is a whole second old at 1.2 in
spite of binary rounding; "at least W" is thus "at least W - 1 ns". The guarantee is stated for a
clock that does not go backwards (Trio's does not); a ``now`` earlier than the last one is treated
as the current tick, so such a call gives nothing back, but what a later ``now`` gave back stays
given back.
"""

from __future__ import annotations

import math
from typing import Any

TICK = 0.1  # Istio memquota: ticksPerSecond = 10 (mixer/adapter/memquota/dedup.go)
MIN_BUCKETS = 10  # sub-second resolution for the docs' 1 s window: 100 ms buckets
MAX_BUCKETS = 600  # bound on a counter's memory: an hour's window is cut into 6 s buckets
TIME_EPSILON = 1e-9  # times closer than this count as equal (0.2 and 1.2 are a window apart)


def bucket_count(window: float) -> int:
    """How many buckets a window of ``window`` seconds is cut into (see the module docstring)."""
    if not window > 0:
        raise ValueError(f"a rolling window needs a positive length, got {window!r}")
    wanted = math.ceil(window / TICK - 1e-9)
    return max(MIN_BUCKETS, min(MAX_BUCKETS, wanted))


class RollingWindow:
    """At most ``max_amount`` units granted over any ``window`` seconds.

    ``alloc(amount, now)`` is all-or-nothing; ``available(now)`` says how much could be granted now
    (memquota's best-effort path grants that much); ``release(amount, now)`` gives units back,
    newest first, as Istio does for a negative quota amount.
    """

    __slots__ = ("max_amount", "window", "bucket", "_slots", "_newest", "_tick", "_avail")

    def __init__(self, max_amount: int, window: float, buckets: int | None = None) -> None:
        if max_amount < 0:
            raise ValueError(f"max_amount must be >= 0, got {max_amount!r}")
        n = bucket_count(window) if buckets is None else buckets
        if n < 1:
            raise ValueError(f"a rolling window needs at least one bucket, got {n!r}")
        self.max_amount = max_amount
        self.window = float(window)
        self.bucket = self.window / n
        self._slots = [0] * (n + 1)  # units charged during each tick still in the ring
        self._newest = [0.0] * (n + 1)  # time of each slot's newest charge
        self._tick: int | None = None  # the tick the ring was last rolled to
        self._avail = max_amount

    # --- time ----------------------------------------------------------------------------------

    def _roll(self, now: float) -> int:
        tick = math.floor(now / self.bucket)
        last = self._tick
        if last is None:
            self._tick = last = tick
        slots = self._slots
        size = len(slots)
        behind = tick - last
        if behind > 0:
            if behind >= size:
                if self._avail != self.max_amount:
                    for i in range(size):
                        slots[i] = 0
                    self._avail = self.max_amount
            else:
                for t in range(last + 1, tick + 1):
                    i = t % size
                    if slots[i]:
                        self._avail += slots[i]
                        slots[i] = 0
            self._tick = last = tick
        # the slot n ticks old: give it back once its newest charge is a whole window old. The
        # next one (n - 1 ticks old) can only qualify when floor(now / bucket) rounded down at a
        # bucket edge; the comparison of times is what keeps it safe, so it is checked too.
        oldest = now - self.window + TIME_EPSILON
        for edge in ((last + 1) % size, (last + 2) % size):
            if slots[edge] and self._newest[edge] <= oldest:
                self._avail += slots[edge]
                slots[edge] = 0
        return last

    # --- charging ------------------------------------------------------------------------------

    def alloc(self, amount: int, now: float) -> bool:
        """Charge ``amount`` if all of it fits in the window now; ``False`` (and nothing charged)
        otherwise."""
        tick = self._roll(now)
        if amount > self._avail:
            return False
        if amount > 0:
            i = tick % len(self._slots)
            self._slots[i] += amount
            self._newest[i] = max(self._newest[i], now) if self._slots[i] > amount else now
            self._avail -= amount
        return True

    def available(self, now: float) -> int:
        """What could be granted at ``now``."""
        self._roll(now)
        return self._avail

    def release(self, amount: int, now: float) -> int:
        """Give back up to ``amount`` units, from the newest bucket backwards; returns how many
        were given back (Istio: "releasing quota in the case of rate limits is inherently racy")."""
        tick = self._roll(now)
        slots = self._slots
        size = len(slots)
        returned = 0
        for back in range(size):
            if returned >= amount:
                break
            i = (tick - back) % size
            take = min(slots[i], amount - returned)
            slots[i] -= take
            returned += take
        self._avail += returned
        return returned

    # --- bookkeeping ---------------------------------------------------------------------------

    def idle(self, now: float) -> bool:
        """Nothing is held any more at ``now``: the counter can be forgotten without changing any
        future decision."""
        self._roll(now)
        return self._avail == self.max_amount

    def held(self) -> int:
        """Units currently held (as of the last roll)."""
        return self.max_amount - self._avail

    def statistics(self) -> dict[str, Any]:
        return {"max_amount": self.max_amount, "window": self.window, "bucket": self.bucket,
                "buckets": len(self._slots) - 1, "held": self.held()}

    def __repr__(self) -> str:
        return (f"<RollingWindow {self.held()}/{self.max_amount} held over {self.window:g}s"
                f" ({len(self._slots) - 1} x {self.bucket:g}s)>")
