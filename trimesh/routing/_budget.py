"""Retry budget: retries may only be a fraction of the traffic a cluster is carrying.

Retries multiply load exactly when a service is already struggling (a 503 storm answered with
three retries each is four times the storm). Istio 0.x bounds them with ``simpleCb.httpMaxRetries``
("max retries outstanding to all hosts in a cluster at a given time", default 3 — Envoy's
``max_retries`` circuit breaker). A fixed count is wrong at both ends: tiny for a busy cluster,
generous for a quiet one. Two published remedies:

* Envoy's ``retry_budget`` (config.cluster.v3.CircuitBreakers.Thresholds.RetryBudget):
  concurrent retries are limited to ``budget_percent`` (default **20 %**) of the requests active
  or pending in the cluster, but never below ``min_retry_concurrency`` (default **3**); anchors.md
  §0 verifies both defaults.
* Linkerd / Finagle: a token bucket where each request deposits ``retry_ratio`` (0.2) of a retry,
  deposits expire after a TTL window (10 s), plus a floor of ``min_retries_per_second`` (10).

trimesh uses **Envoy's form**, because it is concurrency-based like ``httpMaxRetries`` and like
every other circuit-breaker limit of the cluster, needs no clock and no decaying window, and
combines with the 0.x field in one comparison. The two are applied together: a retry is admitted
while the retries already in flight are fewer than::

    min(httpMaxRetries, max(min_retry_concurrency, budget_percent% × (active + pending requests)))

So ``httpMaxRetries`` stays a hard ceiling, and the budget keeps a large ceiling (set to allow
bursts of retries on a busy cluster) from turning into a retry storm when the cluster is quiet or
overloaded. (Envoy lets a configured budget *replace* ``max_retries``; Istio 0.x has no field for
the budget, so trimesh keeps the 0.x ceiling and adds the budget beneath it.) With the default
ceiling of 3 the budget changes nothing (its floor is 3 too); it matters once a policy raises
``httpMaxRetries``: with ``httpMaxRetries: 100`` and 50 requests in flight, 10 retries may run.
"""

from __future__ import annotations

import math

BUDGET_PERCENT = 20.0  # Envoy RetryBudget.budget_percent default: 20 %
MIN_RETRY_CONCURRENCY = 3  # Envoy RetryBudget.min_retry_concurrency default: 3


class RetryBudget:
    """The budget's parameters; :meth:`limit` is the number of concurrent retries allowed."""

    __slots__ = ("percent", "min_concurrency")

    def __init__(self, percent: float = BUDGET_PERCENT,
                 min_concurrency: int = MIN_RETRY_CONCURRENCY) -> None:
        if not 0.0 <= percent <= 100.0:
            raise ValueError(f"retry budget percent must be within 0..100, got {percent!r}")
        if min_concurrency < 0:
            raise ValueError(f"min retry concurrency must be >= 0, got {min_concurrency!r}")
        self.percent = float(percent)
        self.min_concurrency = int(min_concurrency)

    def limit(self, outstanding: int, max_retries: int | None = None) -> int:
        """Concurrent retries allowed while ``outstanding`` requests are active or pending,
        under the ceiling ``max_retries`` (``None``: no ceiling)."""
        budget = max(self.min_concurrency, math.floor(outstanding * self.percent / 100.0))
        return budget if max_retries is None else min(max_retries, budget)

    def __repr__(self) -> str:
        return f"<RetryBudget {self.percent:g}% min={self.min_concurrency}>"
