"""Verdicts on what page loads showed (PURE): the numbers each docs task promises.

Each function takes what was observed (the :attr:`PageView.kind` of each load, elapsed seconds,
access-log records) and returns a :class:`Verdict`: pass or fail, and one line of the numbers seen,
so ``trimesh demo --check`` can print ``PASS request routing: ...`` and a test can assert on it.
The expectations come from traffic-tasks.md:

- §2.1: with no rules, every reviews version answers in turn: all three kinds of page appear;
- §2.2 / §2.3: every load the same kind (no stars; black stars for jason);
- §3.2: jason's page shows the reviews-unavailable message after ~6 s (productpage's 3 s timeout,
  tried twice: :data:`FAULT_PAGE_SECONDS`), before the 7 s delay would have ended;
- §4.1: a 50 % split lands within ± :data:`SHARE_TOLERANCE` of 50 % over many loads;
- §5.2: with a 2 s delay on ratings each page takes ~2 s; with a 1 s timeout on reviews every
  productpage→reviews call fails with 504 after ~1 s (§5.3 [DERIVED]: two tries, so the page
  takes ~2 s and shows reviews unavailable).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

CYCLE_KINDS = ("no-stars", "black", "red")  # reviews v1, v2, v3
FAULT_PAGE_SECONDS = 6.0  # productpage: 3 s timeout x 2 tries (traffic-tasks.md §3.3)
FAULT_DELAY_SECONDS = 7.0  # route-rule-ratings-test-delay.yaml's fixedDelay
SHARE_TOLERANCE = 0.10  # ± 10 points on a 50 % split over 200 loads (3.5 sigma)
TIME_SLACK = 1.0  # seconds a page may take beyond the expected time on 2 busy cores
QUICK_SECONDS = 1.0  # "at once"


@dataclass(frozen=True)
class Verdict:
    ok: bool
    summary: str


def count_kinds(kinds: Iterable[str]) -> str:
    """``"red 97, no-stars 103"`` (most common first)."""
    return ", ".join(f"{k} {n}" for k, n in Counter(kinds).most_common())


def all_of(kinds: Sequence[str], want: str, statuses: Sequence[int] = ()) -> Verdict:
    """Every load showed ``want`` (and answered 200)."""
    bad = [s for s in statuses if s != 200]
    ok = bool(kinds) and all(k == want for k in kinds) and not bad
    extra = f"; non-200: {len(bad)}" if bad else ""
    return Verdict(ok, f"{len(kinds)} loads: {count_kinds(kinds)}{extra}")


def cycle(kinds: Sequence[str], statuses: Sequence[int] = ()) -> Verdict:
    """No rules: loads show no stars, black and red stars, and nothing else."""
    seen = Counter(kinds)
    bad = [s for s in statuses if s != 200]
    ok = all(seen[k] > 0 for k in CYCLE_KINDS) and set(seen) <= set(CYCLE_KINDS) and not bad
    return Verdict(ok, f"{len(kinds)} loads: {count_kinds(kinds)}")


def share(kinds: Sequence[str], want: str, expected: float, other: str,
          tolerance: float = SHARE_TOLERANCE) -> Verdict:
    """``want`` makes up ``expected`` ± ``tolerance`` of the loads, the rest are ``other``."""
    n = len(kinds)
    seen = Counter(kinds)
    got = seen[want] / n if n else 0.0
    strays = n - seen[want] - seen[other]
    ok = n > 0 and abs(got - expected) <= tolerance and strays == 0
    return Verdict(ok, f"{n} loads: {want} {got:.0%} (want {expected:.0%} ± "
                       f"{tolerance * 100:.0f} points), {count_kinds(kinds)}")


def slow_page(kind: str, want: str, elapsed: float, low: float, high: float) -> Verdict:
    """One page shows ``want`` after ``low`` ≤ elapsed < ``high`` seconds."""
    ok = kind == want and low <= elapsed < high
    return Verdict(ok, f"{kind} after {elapsed:.1f}s (want {want} in {low:.1f}–{high:.1f}s)")


def timed_out_calls(records: Sequence[dict[str, Any]], service: str, timeout: float, *,
                    calls_expected: int = 1, slack: float = TIME_SLACK) -> Verdict:
    """At least ``calls_expected`` outbound calls to ``service`` in ``records`` (access-log
    dicts), and all ended 504 after about ``timeout`` seconds."""
    calls = [r for r in records if r.get("direction") == "outbound"
             and str(r.get("authority", "")).split(":")[0].split(".")[0] == service]
    if not calls:
        return Verdict(False, f"no outbound call to {service} in the access log")
    statuses = Counter(r.get("status") for r in calls)
    durations = [float(r.get("duration_ms", 0)) / 1000.0 for r in calls]
    ok = (len(calls) >= calls_expected and set(statuses) == {504}
          and all(timeout - 0.05 <= d < timeout + slack for d in durations))
    flags = ",".join(sorted({str(r.get("flags")) for r in calls}))
    return Verdict(ok, f"{len(calls)} calls to {service}: status "
                       f"{', '.join(f'{s} x{n}' for s, n in statuses.items())}, flags {flags}, "
                       f"{min(durations):.2f}–{max(durations):.2f}s each (want 504 after "
                       f"~{timeout:.0f}s)")
