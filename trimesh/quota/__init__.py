"""Quota: memquota's algorithms, PURE (no I/O, no clock: ``now`` is passed in as float seconds).

:class:`MemQuota` holds the counters of one ``kind: memquota`` handler: one :class:`RollingWindow`
per dimension tuple for rate quotas (at most ``maxAmount`` over any ``validDuration``), plain
counters for allocation quotas, the first matching override, best-effort or all-or-nothing amounts,
and deduplication ids (:class:`DedupCache`). The same class, built with a ``share``
(:func:`fallback_share`), is the sidecar's local fallback while Mixer is unreachable.
:class:`QuotaCharges` says which quotas a request is charged (``QuotaSpec``/``QuotaSpecBinding``).
See docs/quota.md.
"""

from ._charges import DEFAULT_CHARGE as DEFAULT_CHARGE
from ._charges import QuotaCharges as QuotaCharges
from ._charges import QuotaRequirement as QuotaRequirement
from ._dedup import DEDUPLICATION_DURATION as DEDUPLICATION_DURATION
from ._dedup import DedupCache as DedupCache
from ._memquota import MemQuota as MemQuota
from ._memquota import QuotaDefinition as QuotaDefinition
from ._memquota import QuotaLimit as QuotaLimit
from ._memquota import QuotaOverride as QuotaOverride
from ._memquota import QuotaResult as QuotaResult
from ._memquota import definitions_from_params as definitions_from_params
from ._memquota import dimension_key as dimension_key
from ._memquota import dimension_text as dimension_text
from ._memquota import fallback_share as fallback_share
from ._window import MAX_BUCKETS as MAX_BUCKETS
from ._window import MIN_BUCKETS as MIN_BUCKETS
from ._window import TICK as TICK
from ._window import RollingWindow as RollingWindow
from ._window import bucket_count as bucket_count

__all__ = [
    "DEFAULT_CHARGE", "QuotaCharges", "QuotaRequirement",
    "DEDUPLICATION_DURATION", "DedupCache", "MemQuota", "QuotaDefinition", "QuotaLimit",
    "QuotaOverride", "QuotaResult", "definitions_from_params", "dimension_key", "dimension_text",
    "fallback_share", "MAX_BUCKETS", "MIN_BUCKETS", "TICK", "RollingWindow", "bucket_count",
]
