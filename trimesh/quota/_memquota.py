"""memquota: Istio's in-memory quota adapter, as a pure object fed ``now``.

The docs' rate-limit task (traffic-tasks.md §9) configures it like this: a ``memquota`` handler
lists quotas by the *quota instance* they serve (``requestcount.quota.istio-system``), each with a
default ``maxAmount`` per ``validDuration`` and ``overrides``; the quota instance maps request
attributes to ``dimensions``. What this module does with them (Istio's
``mixer/adapter/memquota/memquota.go``):

* **One counter per dimension tuple.** "Each quota instance is a set of counters, defined by the
  Cartesian product of all the quota dimensions" (§9.6 item 2): the evaluated dimensions, as a
  sorted tuple of ``(name, value)`` pairs, key one counter each.
* **The first matching override wins.** An override matches when every dimension it names equals the
  instance's (values compared as text); dimensions it does not name are ignored, so the docs'
  ``{destination: ratings, source: reviews, sourceVersion: v2}`` override matches whatever
  ``destinationVersion`` is (§9.6 items 5–7). No match: the quota's own ``maxAmount``. An override
  without ``validDuration`` takes the quota's (Istio would turn it into a never-expiring allocation
  quota, which nobody writing a rate limit means).
* **Rate quotas** (``validDuration`` set) use a :class:`~trimesh.quota.RollingWindow`: over any
  ``validDuration`` at most ``maxAmount`` is granted. The grant carries ``validDuration`` as its
  valid duration. **Allocation quotas** (no ``validDuration``) are plain counters that only
  :meth:`MemQuota.release` lowers; their grants have valid duration 0.
* **All-or-nothing or best effort.** An allocation that does not fit grants 0, unless
  ``best_effort``, which grants what is left (possibly 0).
* **Deduplication.** An operation that repeats a ``dedup_id`` within the deduplication window
  (``minDeduplicationDuration``, default 1 s; remembered for one to two of it) gets the first answer
  back, with its remaining valid duration, and charges nothing (see ``_dedup.py``). Ids are scoped
  to the quota name and the operation (alloc or release). No id: no deduplication.
* **Bounded memory.** A rate counter that holds nothing any more is dropped by
  :meth:`MemQuota.expire`, which :meth:`MemQuota.alloc` also runs by itself whenever the number of
  counters has doubled since the last sweep (amortised O(1)); allocation counters go when released
  to 0.

**Local fallback** (issue 13 deliver 6: "quotas fall back to per-sidecar local buckets"): while
Mixer is unreachable a sidecar runs the *same* algorithm on the same handler config, with every
limit scaled by a ``share`` — its part of the destination's instances (:func:`fallback_share`):
``maxAmount × share`` rounded down, but at least 1 where the configured limit is at least 1. The
same window means the same behaviour as Mixer's answer, just split; with N sidecars the mesh-wide
rate stays at the limit, or at N per window when the limit is below N (each sidecar keeps at least
one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from trimesh.errors import ConfigError, NotFoundError

from ._dedup import DEDUPLICATION_DURATION, DedupCache
from ._window import RollingWindow

SWEEP_MIN = 1024  # counters below which no automatic sweep runs


@dataclass(frozen=True, slots=True)
class QuotaLimit:
    """``max_amount`` per ``valid_duration`` seconds; ``valid_duration`` 0 = an allocation quota."""

    max_amount: int
    valid_duration: float = 0.0

    @property
    def is_rate(self) -> bool:
        return self.valid_duration > 0

    def scaled(self, share: float) -> "QuotaLimit":
        """This limit's part for one of several independent enforcers (the local fallback)."""
        if share >= 1.0 or self.max_amount == 0:
            return self
        amount = max(1, math.floor(self.max_amount * share + 1e-9))
        return QuotaLimit(amount, self.valid_duration)


@dataclass(frozen=True, slots=True)
class QuotaOverride:
    """Applies to instances whose dimensions include every ``(name, value)`` of ``dimensions``."""

    dimensions: tuple[tuple[str, str], ...]
    limit: QuotaLimit

    def matches(self, dimensions: Mapping[str, Any]) -> bool:
        for name, value in self.dimensions:
            if name not in dimensions or dimension_text(dimensions[name]) != value:
                return False
        return True


@dataclass(frozen=True, slots=True)
class QuotaDefinition:
    """One ``quotas[]`` entry of a memquota handler: the quota instance's FQN, its default limit,
    and the overrides in the order written."""

    name: str
    limit: QuotaLimit
    overrides: tuple[QuotaOverride, ...] = ()

    def limit_for(self, dimensions: Mapping[str, Any]) -> QuotaLimit:
        """The first matching override's limit, else the default (memquota.go ``limit``)."""
        for override in self.overrides:
            if override.matches(dimensions):
                return override.limit
        return self.limit

    def scaled(self, share: float) -> "QuotaDefinition":
        if share >= 1.0:
            return self
        return QuotaDefinition(self.name, self.limit.scaled(share),
                               tuple(QuotaOverride(o.dimensions, o.limit.scaled(share))
                                     for o in self.overrides))

    @classmethod
    def from_config(cls, quota: Any, path: str = "$.spec.quotas[0]") -> "QuotaDefinition":
        """From a :class:`trimesh.config.MemQuotaQuota`; a negative amount is a ConfigError."""
        _check_amount(quota.max_amount, f"{path}.maxAmount")
        window = float(quota.valid_duration or 0.0)
        overrides = []
        for i, o in enumerate(quota.overrides):
            _check_amount(o.max_amount, f"{path}.overrides[{i}].maxAmount")
            o_window = window if o.valid_duration is None else float(o.valid_duration)
            dims = tuple((str(k), str(v)) for k, v in o.dimensions.items())
            overrides.append(QuotaOverride(dims, QuotaLimit(o.max_amount, o_window)))
        return cls(quota.name, QuotaLimit(quota.max_amount, window), tuple(overrides))


def _check_amount(amount: int, path: str) -> None:
    if amount < 0:
        raise ConfigError(f"maxAmount must be >= 0, got {amount}", path=path)


def dimension_text(value: Any) -> str:
    """A dimension value as text, for comparing with an override (Istio ``adapter.StringEquals``):
    strings as they are, booleans ``true``/``false``, anything else ``str()``."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def dimension_key(dimensions: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """The counter key of an evaluated dimension map: its items sorted by name, values made
    hashable (a map becomes its sorted items, a list a tuple)."""
    return tuple(sorted((k, _hashable(v)) for k, v in dimensions.items()))


_SCALARS = (str, int, float, bool, type(None))


def _hashable(value: Any) -> Any:
    if type(value) in _SCALARS:  # the common case, without the slow ABC checks
        return value
    if isinstance(value, Mapping):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(v) for v in value)
    return value


def fallback_share(instances: int) -> float:
    """The share of a limit one sidecar enforces on its own while Mixer is unreachable: an equal
    part for each of the destination's ``instances`` (at least one)."""
    return 1.0 / max(1, instances)


@dataclass(frozen=True, slots=True)
class QuotaResult:
    """What an operation granted (memquota's ``QuotaResult``): ``granted`` units, valid for
    ``valid_duration`` seconds (0 for allocation quotas and refusals); ``deduplicated`` when the
    answer is a remembered one."""

    granted: int
    valid_duration: float = 0.0
    deduplicated: bool = False


DENIED = QuotaResult(0, 0.0)


class MemQuota:
    """The counters of one memquota handler (or of one sidecar's local fallback)."""

    __slots__ = ("_quotas", "_windows", "_cells", "_dedup", "share", "_sweep_at", "_stats")

    def __init__(self, quotas: Iterable[QuotaDefinition] = (), *,
                 min_deduplication_duration: float = DEDUPLICATION_DURATION,
                 share: float = 1.0) -> None:
        if not 0.0 < share <= 1.0:
            raise ValueError(f"share must be in (0, 1], got {share!r}")
        self.share = share
        self._quotas: dict[str, QuotaDefinition] = {}
        self._windows: dict[tuple, RollingWindow] = {}
        self._cells: dict[tuple, int] = {}
        self._dedup = DedupCache(min_deduplication_duration)
        self._sweep_at = SWEEP_MIN
        self._stats = {"allocs": 0, "granted": 0, "rejected": 0, "partial": 0, "releases": 0,
                       "released": 0, "expired": 0}
        self._install(quotas)

    @classmethod
    def from_params(cls, params: Any, *, share: float = 1.0) -> "MemQuota":
        """From a :class:`trimesh.config.MemQuotaParams` (a ``kind: memquota`` spec)."""
        period = params.min_deduplication_duration
        if period is not None and not period > 0:
            raise ConfigError("minDeduplicationDuration must be > 0",
                              path="$.spec.minDeduplicationDuration")
        return cls(definitions_from_params(params), share=share,
                   min_deduplication_duration=DEDUPLICATION_DURATION if period is None else period)

    def _install(self, quotas: Iterable[QuotaDefinition]) -> None:
        table: dict[str, QuotaDefinition] = {}
        for q in quotas:
            if q.name in table:
                raise ConfigError(f"quota {q.name!r} is listed twice")
            table[q.name] = q.scaled(self.share)
        self._quotas = table

    def reconfigure(self, quotas: Iterable[QuotaDefinition]) -> None:
        """New limits (a new config snapshot). Counters of quotas that are gone are dropped; a
        counter whose limit changed starts afresh on its next use; the rest carry on."""
        self._install(quotas)
        for store in (self._windows, self._cells):
            for key in [k for k in store if k[0] not in self._quotas]:
                del store[key]

    @property
    def quota_names(self) -> tuple[str, ...]:
        return tuple(self._quotas)

    def limit_for(self, name: str, dimensions: Mapping[str, Any]) -> QuotaLimit:
        return self._definition(name).limit_for(dimensions)

    def _definition(self, name: str) -> QuotaDefinition:
        try:
            return self._quotas[name]
        except KeyError:
            raise NotFoundError(f"memquota has no quota named {name!r} (known: "
                                f"{', '.join(sorted(self._quotas)) or 'none'})") from None

    # --- operations ----------------------------------------------------------------------------

    def alloc(self, name: str, dimensions: Mapping[str, Any], amount: int, now: float, *,
              dedup_id: str | None = None, best_effort: bool = False) -> QuotaResult:
        """Charge ``amount`` units of quota ``name`` to the counter of ``dimensions``."""
        if amount < 0:
            raise ValueError(f"alloc amount must be >= 0, got {amount!r} (use release)")
        limit = self._definition(name).limit_for(dimensions)
        dedup_key = None if dedup_id is None else ("alloc", name, dedup_id)
        if dedup_key is not None:
            seen = self._dedup.get(dedup_key, now)
            if seen is not None:
                return QuotaResult(seen[0], max(0.0, seen[1] - now), True)
        key = (name, dimension_key(dimensions))
        stats = self._stats
        stats["allocs"] += 1
        if limit.is_rate:
            granted = self._alloc_window(key, limit, amount, now, best_effort)
            valid = limit.valid_duration if granted > 0 else 0.0
        else:
            granted = self._alloc_cell(key, limit, amount, best_effort)
            valid = 0.0
        stats["granted"] += granted
        if granted == 0 and amount > 0:
            stats["rejected"] += 1
        elif granted < amount:
            stats["partial"] += 1
        if dedup_key is not None:
            self._dedup.put(dedup_key, granted, now + valid, now)
        if len(self._windows) >= self._sweep_at:
            self.expire(now)
        return QuotaResult(granted, valid) if granted else DENIED

    def _alloc_window(self, key: tuple, limit: QuotaLimit, amount: int, now: float,
                      best_effort: bool) -> int:
        window = self._windows.get(key)
        if (window is None or window.max_amount != limit.max_amount
                or window.window != limit.valid_duration):
            window = self._windows[key] = RollingWindow(limit.max_amount, limit.valid_duration)
        if window.alloc(amount, now):
            return amount
        if not best_effort:
            return 0
        rest = window.available(now)
        window.alloc(rest, now)
        return rest

    def _alloc_cell(self, key: tuple, limit: QuotaLimit, amount: int, best_effort: bool) -> int:
        in_use = self._cells.get(key, 0)
        room = max(0, limit.max_amount - in_use)
        if amount > room:
            if not best_effort:
                return 0
            amount = room
        if amount:
            self._cells[key] = in_use + amount
        return amount

    def release(self, name: str, dimensions: Mapping[str, Any], amount: int, now: float, *,
                dedup_id: str | None = None) -> QuotaResult:
        """Give back up to ``amount`` units (memquota's negative amount); ``granted`` says how many
        were given back."""
        if amount < 0:
            raise ValueError(f"release amount must be >= 0, got {amount!r}")
        limit = self._definition(name).limit_for(dimensions)
        dedup_key = None if dedup_id is None else ("release", name, dedup_id)
        if dedup_key is not None:
            seen = self._dedup.get(dedup_key, now)
            if seen is not None:
                return QuotaResult(seen[0], 0.0, True)
        key = (name, dimension_key(dimensions))
        if limit.is_rate:
            window = self._windows.get(key)
            returned = 0 if window is None else window.release(amount, now)
            if window is not None and window.idle(now):
                del self._windows[key]
        else:
            in_use = self._cells.get(key, 0)
            returned = min(in_use, amount)
            if in_use - returned > 0:
                self._cells[key] = in_use - returned
            else:
                self._cells.pop(key, None)
        self._stats["releases"] += 1
        self._stats["released"] += returned
        if dedup_key is not None:
            self._dedup.put(dedup_key, returned, now, now)
        return QuotaResult(returned)

    def available(self, name: str, dimensions: Mapping[str, Any], now: float) -> int:
        """What an allocation for ``dimensions`` could get at ``now`` (charges nothing)."""
        limit = self._definition(name).limit_for(dimensions)
        key = (name, dimension_key(dimensions))
        if limit.is_rate:
            window = self._windows.get(key)
            if (window is None or window.max_amount != limit.max_amount
                    or window.window != limit.valid_duration):
                return limit.max_amount
            return window.available(now)
        return max(0, limit.max_amount - self._cells.get(key, 0))

    # --- memory --------------------------------------------------------------------------------

    def expire(self, now: float) -> int:
        """Drop every rate counter that holds nothing at ``now`` and the dedup ids past their
        window; returns how many counters went."""
        idle = [k for k, w in self._windows.items() if w.idle(now)]
        for k in idle:
            del self._windows[k]
        self._dedup.expire(now)
        self._stats["expired"] += len(idle)
        self._sweep_at = max(SWEEP_MIN, 2 * len(self._windows))
        return len(idle)

    def statistics(self) -> dict[str, Any]:
        return {"quotas": len(self._quotas), "counters": len(self._windows),
                "allocations": len(self._cells), "dedup_entries": len(self._dedup),
                "dedup_hits": self._dedup.hits, "share": self.share, **self._stats}

    def __repr__(self) -> str:
        share = "" if self.share == 1.0 else f" share={self.share:g}"
        return (f"<MemQuota {len(self._quotas)} quotas, {len(self._windows)} counters,"
                f" {len(self._cells)} allocations{share}>")


def definitions_from_params(params: Any) -> list[QuotaDefinition]:
    """The :class:`QuotaDefinition` of each ``quotas[]`` entry of a memquota spec, validated with
    field paths; a name listed twice is a ConfigError."""
    seen: set[str] = set()
    out = []
    for i, q in enumerate(params.quotas):
        path = f"$.spec.quotas[{i}]"
        if q.name in seen:
            raise ConfigError(f"quota {q.name!r} is listed twice", path=f"{path}.name")
        seen.add(q.name)
        out.append(QuotaDefinition.from_config(q, path))
    return out

