"""Per-request policy numbers: the overall timeout, the retry policy and the fault rolls.

Everything here is a decision, not an action: the proxy's Trio loop sleeps, cancels and retries;
this module only says for how long and how often.

Timeout (concepts.md §8.7, anchors.md "Route timeout"): a route's ``httpReqTimeout.simpleTimeout
.timeout``, default :data:`DEFAULT_TIMEOUT` (15 s), *including* retries. The request header
``x-envoy-upstream-rq-timeout-ms`` (an integer of milliseconds, Envoy's router filter) replaces it
for one request; a value that is not a positive integer is ignored (the route's timeout stays).

Retries (concepts.md §8.8 and §16 item 8): ``simpleRetry.attempts`` is the number of *retries* after
the first try, as in Envoy's ``num_retries`` and Istio's route_rule.proto ("Number of retries for a
given request") — docs/routing.md explains the choice. ``x-envoy-max-retries`` replaces it for one
request (a non-negative integer; anything else is ignored). What is retried: connection failures,
resets and 5xx responses (Istio 0.x generated ``retry_on: 5xx,connect-failure,refused-stream``).

Back-off between tries: jittered exponential with a floor. Envoy draws retry N's delay uniformly
from ``[0, (2^N - 1) * 25 ms)`` capped at 10 x 25 ms = 250 ms (router_filter.rst, anchors.md); Istio's
proto promises an interval of "25ms+", and acceptance test D.59 wants non-zero delays. trimesh keeps
Envoy's base and cap and raises the floor to the base: the delay before retry ``i`` (0 for the first
retry) is uniform in ``[25 ms, min(250 ms, 25 ms * 2^(i+1))]``: 25–50 ms, 25–100 ms, 25–200 ms,
then 25–250 ms.

Faults (concepts.md §8.9): ``delay`` and ``abort`` are rolled independently against their
``percent`` (a float 0–100; absent = every request) with the shell's ``rng``.
"""

from __future__ import annotations

import msgspec

DEFAULT_TIMEOUT = 15.0  # concepts.md §8.7: default HTTP request timeout
TIMEOUT_HEADER = "x-envoy-upstream-rq-timeout-ms"  # Envoy router filter, milliseconds
RETRIES_HEADER = "x-envoy-max-retries"  # Envoy router filter, retry count
BASE_RETRY_INTERVAL = 0.025  # Envoy upstream.base_retry_backoff_ms default (25 ms); Istio "25ms+"
MAX_RETRY_INTERVAL = 0.250  # Envoy BackoffStrategy.max_interval default: 10 x base
MAX_HEADER_RETRIES = 1000  # sanity bound on a client-supplied x-envoy-max-retries

_DIGITS = frozenset("0123456789")


def parse_header_int(value: str | None, *, maximum: int) -> int | None:
    """A header's non-negative decimal integer, or ``None`` when absent or not a plain integer
    (signs, spaces inside, floats, empty) or above ``maximum``."""
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > 12 or not _DIGITS.issuperset(value):
        return None
    n = int(value)
    return n if n <= maximum else None


def timeout_override(headers: dict[str, str]) -> float | None:
    """Seconds from ``x-envoy-upstream-rq-timeout-ms``; ``None`` if absent, zero or invalid."""
    ms = parse_header_int(headers.get(TIMEOUT_HEADER), maximum=10**11)
    if not ms:
        return None
    return ms / 1000.0


def retries_override(headers: dict[str, str]) -> int | None:
    """The retry count from ``x-envoy-max-retries``; ``None`` if absent or invalid."""
    return parse_header_int(headers.get(RETRIES_HEADER), maximum=MAX_HEADER_RETRIES)


class RetryPolicy(msgspec.Struct, frozen=True):
    """How often and how to retry one request.

    ``attempts`` is the number of retries after the first try (so at most ``attempts + 1`` tries);
    ``per_try_timeout`` bounds each try (``None``: only the overall timeout applies). The overall
    timeout still bounds the whole loop: retries stop when it fires.
    """

    attempts: int
    per_try_timeout: float | None = None
    base_interval: float = BASE_RETRY_INTERVAL
    max_interval: float = MAX_RETRY_INTERVAL

    @property
    def max_tries(self) -> int:
        return self.attempts + 1

    def backoff(self, retry_index: int, rng) -> float:
        """Seconds to wait before retry ``retry_index`` (0 = the first retry): uniform in
        ``[base, min(max, base * 2**(retry_index + 1))]``."""
        i = retry_index if retry_index > 0 else 0
        ceiling = self.base_interval * (2.0 ** min(i + 1, 32))
        if ceiling > self.max_interval:
            ceiling = self.max_interval
        if ceiling <= self.base_interval:
            return self.base_interval
        return self.base_interval + rng.random() * (ceiling - self.base_interval)

    def should_retry_status(self, status: int) -> bool:
        """Whether an upstream response status is retryable (Envoy ``retry_on: 5xx``)."""
        return 500 <= status <= 599

    def with_attempts(self, attempts: int) -> "RetryPolicy":
        return msgspec.structs.replace(self, attempts=attempts)


class FaultRoll(msgspec.Struct, frozen=True):
    """A compiled ``httpFault``: the delay/abort and the probability (0..1) of each."""

    delay: float | None = None
    delay_probability: float = 0.0
    abort_status: int | None = None
    abort_probability: float = 0.0

    def roll(self, rng) -> tuple[float | None, int | None]:
        """Independent draws for the delay and the abort (at most one ``rng`` draw each; none when
        the probability is 0 or 1)."""
        delay = None
        if self.delay is not None:
            p = self.delay_probability
            if p >= 1.0 or (p > 0.0 and rng.random() < p):
                delay = self.delay
        abort = None
        if self.abort_status is not None:
            p = self.abort_probability
            if p >= 1.0 or (p > 0.0 and rng.random() < p):
                abort = self.abort_status
        return delay, abort


def percent_to_probability(percent: float | None) -> float:
    """``percent`` 0–100 (``None`` = 100) as a probability clamped to [0, 1]."""
    if percent is None:
        return 1.0
    p = float(percent) / 100.0
    return 0.0 if p <= 0.0 else 1.0 if p >= 1.0 else p


def compile_fault(fault) -> FaultRoll | None:
    """``HTTPFaultInjection`` → :class:`FaultRoll`; ``None`` when it injects nothing."""
    if fault is None:
        return None
    delay = fault.delay.fixed_delay if fault.delay is not None else None
    abort = fault.abort.http_status if fault.abort is not None else None
    if delay is None and abort is None:
        return None
    return FaultRoll(
        delay=float(delay) if delay is not None else None,
        delay_probability=percent_to_probability(fault.delay.percent) if delay is not None else 0.0,
        abort_status=abort,
        abort_probability=percent_to_probability(fault.abort.percent) if abort is not None else 0.0,
    )
