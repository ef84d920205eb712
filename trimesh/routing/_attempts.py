"""The attempt policy: after each try of a request, retry, give up, or relay — a pure decision.

The proxy's attempt loop (trimesh/proxy/_pipeline.py) reports each try's :class:`Outcome`; this module
answers what happens next. Nothing here sleeps, reads a clock or draws a random number of its own:
``now``, the route ``deadline`` and ``rng`` come in, a :data:`Step` goes out.

Outcomes (what one try produced):

``RESPONSE``
    A final response head arrived (``status``).
``CONNECT_FAILURE``
    No connection could be made (refused, unreachable, the 1 s connect timeout): Envoy's
    ``connect-failure``; nothing reached the upstream, so a retry is always safe.
``RESET``
    The connection broke (or the upstream sent garbage) before the response head: Envoy's
    ``reset`` / ``refused-stream``.
``PER_TRY_TIMEOUT``
    The route's ``perTryTimeout`` passed before the head.
``ROUTE_TIMEOUT``
    The route's overall timeout passed (``httpReqTimeout``, including retries).
``NO_HOST``
    The cluster had no available instance to try.
``SECURE_NAMING``
    Mutual TLS: the server's certificate does not carry the identity the registry names for the
    instance (or this sidecar holds no certificate to connect with). Nothing was sent; another
    instance may be tried.

Steps:

* :class:`Relay` — send the response to the client (a final answer, or a retryable status when
  no try is left: the client sees the upstream's own 5xx, as with Envoy).
* :class:`Retry` — wait ``backoff`` seconds, then try again on another host: ``avoid`` lists the
  endpoints already tried (Envoy's ``previous_hosts`` retry predicate, which Istio turns on for
  every route); :meth:`Retry.refused` is what to do instead when the circuit breaker refuses the
  retry (``httpMaxRetries`` / the retry budget).
* :class:`GiveUp` — answer with a mesh reply (:mod:`trimesh.routing._replies`): 503 UF after
  connect failures or resets, 504 UT when time ran out, 503 UH when there was no host at all.

What is retried is Istio 0.x's generated ``retry_on: 5xx,connect-failure,refused-stream``:
:meth:`RetryPolicy.should_retry_status` decides for responses; connect failures, resets and
per-try timeouts are retried while tries remain. ``max_tries`` is 1 for a request whose body was
too large to buffer (it cannot be replayed).
"""

from __future__ import annotations

from typing import Any

from ._replies import (NO_HEALTHY_UPSTREAM, SECURE_NAMING_FAILURE, UPSTREAM_FAILURE,
                       UPSTREAM_TIMEOUT, MeshReply)

RESPONSE = "response"
CONNECT_FAILURE = "connect_failure"
RESET = "reset"
PER_TRY_TIMEOUT = "per_try_timeout"
ROUTE_TIMEOUT = "route_timeout"
NO_HOST = "no_host"
SECURE_NAMING = "secure_naming"

# What each failed outcome answers when no try is left (one table: the only place the proxy's
# give-up replies are chosen).
_GIVE_UP: dict[str, MeshReply] = {
    CONNECT_FAILURE: UPSTREAM_FAILURE,
    RESET: UPSTREAM_FAILURE,
    PER_TRY_TIMEOUT: UPSTREAM_TIMEOUT,
    ROUTE_TIMEOUT: UPSTREAM_TIMEOUT,
    NO_HOST: NO_HEALTHY_UPSTREAM,
    SECURE_NAMING: SECURE_NAMING_FAILURE,
}


class Relay:
    """Relay the response of the last try."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<Relay>"


RELAY = Relay()


class GiveUp:
    """Answer the client with ``reply`` (status, flag, body)."""

    __slots__ = ("reply",)

    def __init__(self, reply: MeshReply) -> None:
        self.reply = reply

    def __repr__(self) -> str:
        return f"<GiveUp {self.reply.status} {self.reply.flag}>"


class Retry:
    """Try again after ``backoff`` seconds, on a host not in ``avoid`` when one is available;
    ``refused`` is the step to take instead when the circuit breaker refuses the retry."""

    __slots__ = ("backoff", "avoid", "refused")

    def __init__(self, backoff: float, avoid: tuple, refused: "Relay | GiveUp") -> None:
        self.backoff = backoff
        self.avoid = avoid
        self.refused = refused

    def __repr__(self) -> str:
        return f"<Retry in {self.backoff:.3f}s avoid={len(self.avoid)} else {self.refused!r}>"


Step = Relay | Retry | GiveUp


class AttemptState:
    """One request's tries so far. ``deadline`` is absolute (``math.inf``: no route timeout);
    ``max_tries`` is 1 + the route's retries (1 when the body cannot be replayed)."""

    __slots__ = ("retry", "max_tries", "deadline", "tries", "tried", "last")

    def __init__(self, retry: Any, deadline: float, replayable: bool = True) -> None:
        self.retry = retry  # RetryPolicy | None
        self.max_tries = 1 + retry.attempts if (retry is not None and replayable) else 1
        self.deadline = deadline
        self.tries = 0
        self.tried: tuple = ()  # endpoints tried, in order
        self.last: str | None = None  # the last failed outcome

    def started(self, endpoint: Any) -> None:
        """A try begins on ``endpoint``."""
        self.tries += 1
        self.tried += (endpoint,)

    def after(self, outcome: str, status: int | None, now: float, rng) -> Step:
        """What to do after a try that ended with ``outcome`` (``status`` for RESPONSE)."""
        if outcome == RESPONSE:
            retry = self.retry
            if (self.tries < self.max_tries and retry.should_retry_status(status)
                    and now < self.deadline):
                return Retry(retry.backoff(self.tries - 1, rng), self.tried, RELAY)
            return RELAY
        if outcome == NO_HOST:  # nothing (left) to try: the previous failure, or 503 UH
            return GiveUp(_GIVE_UP[self.last] if self.last else NO_HEALTHY_UPSTREAM)
        self.last = outcome
        if outcome == ROUTE_TIMEOUT or now >= self.deadline:
            return GiveUp(UPSTREAM_TIMEOUT)
        give_up = GiveUp(_GIVE_UP[outcome])
        if self.tries >= self.max_tries:
            return give_up
        return Retry(self.retry.backoff(self.tries - 1, rng), self.tried, give_up)

    def after_backoff(self, now: float) -> GiveUp | None:
        """The backoff is over: give up with 504 UT when the route deadline has passed meanwhile."""
        return GiveUp(UPSTREAM_TIMEOUT) if now >= self.deadline else None

    def __repr__(self) -> str:
        return (f"<AttemptState tries={self.tries}/{self.max_tries} last={self.last} "
                f"deadline={self.deadline}>")
