"""The request pipeline: the stages every request passes, the same for both sides of a sidecar.

A listener hands each parsed request head to a handler (``async (down, head) -> keep_alive``,
trimesh/proxy/_server.py). Both handlers — :class:`~._outbound.OutboundProxy` (the app's calls
out) and :class:`~._inbound.InboundProxy` (calls into the app) — are :class:`Pipeline` s: peers
that share these stages and differ only in how they fill the exchange in. Per request, inline in
the connection's task (PERF.md: a task per request costs ~60 µs)::

    accept        the listener: downstream connection (peer address; peer identity with mTLS)
    parse         the codec: a RequestHead (HTTP/1.1) or an H2Head (an HTTP/2 stream)
    attributes    scheme, authority, path, headers, x-request-id          side.handle()
    policy        authentication, Mixer check, quota                       (empty today)
    route         outbound: RouteTable.decide; inbound: the app            side.handle()
    local replies redirect, CORS preflight, fault delay/abort              side.handle()
    body          buffer for replay up to a bound, else stream             forward()
    admission     the cluster's circuit breaker                            forward()
    attempts      pick a host (not one already tried), exchange on a      attempts()
                  pooled connection, ask the pure AttemptState what next
    relay         the response streamed back, re-framed                    _relay()
    record        one RequestRecord for the request                        _finish()

Decisions are pure and live in ``trimesh.routing``: the route (``decide``), the host (``Cluster
.pick``), what to do after a try (``AttemptState.after``), and the catalogue of mesh replies.
This module carries them out. Every error of the I/O layer arrives as one of the project's
``UpstreamError`` s, mapped to an attempt outcome by :data:`OUTCOMES` (one table); every mesh reply
leaves through :meth:`Pipeline.reply` (one function).

Deadlines: the route timeout is enforced by the listener's timer (``HttpServer.arm``: no cancel
scope per request); when it fires the handler sees ``down.expired`` and gives up with 504 UT — or,
when the connection's scope had to be cancelled (the response had started or the body was still
streaming), :meth:`Pipeline._cut_short` writes the 504 without awaiting. A per-try timeout is a
cancel scope around that one try.
"""

from __future__ import annotations

import math

import trio

from ..errors import (UpstreamConnectError, UpstreamError, UpstreamIdentityError,
                      UpstreamResetError, UpstreamTimeoutError)
from ..routing import (CONNECT_FAILURE, NO_HOST, OVERFLOW, PER_TRY_TIMEOUT, RELAY, RESET,
                       RESPONSE, ROUTE_TIMEOUT, SECURE_NAMING, UPSTREAM_TIMEOUT, AttemptState,
                       GiveUp, Retry)
from ._body import ATTEMPTS_HEADER, read_and_frame
from ._exchange import Exchange, RequestIds
from ._h2up import H2_PROTOCOLS, H2Pool, H2ResponseHead, h2_exchange, h2_request_fields
from ._pool import UpstreamPool, exchange

RETRY_BUFFER_LIMIT = 64 * 1024  # bytes of request body buffered for replay (Envoy's retry buffer)
_ONE_ATTEMPT = ((ATTEMPTS_HEADER, "1"),)  # the usual extra response header (never mutated)

# The one map from the I/O layer's errors to attempt outcomes (trimesh/routing/_attempts.py).
OUTCOMES: dict[type, str] = {
    UpstreamConnectError: CONNECT_FAILURE,
    UpstreamIdentityError: SECURE_NAMING,
    UpstreamResetError: RESET,
    UpstreamTimeoutError: PER_TRY_TIMEOUT,
}


def deadline_key(seconds: float) -> float:
    """``seconds`` rounded down to two significant digits (at least 1 ms). The listener's timer
    keeps one bucket per distinct timeout (``HttpServer.arm``); callers' gRPC deadlines take any
    value, so they are rounded to keep the buckets few (about 90 per decade)."""
    if seconds <= 0.001:
        return 0.001
    q = 10.0 ** (math.floor(math.log10(seconds)) - 1)
    return math.floor(seconds / q + 1e-9) * q


class _Counters(dict):
    def inc(self, key: str, n: int = 1) -> None:
        self[key] = self.get(key, 0) + n


class Pipeline:
    """The stages both handlers share (module docstring). Subclasses set :attr:`direction` and
    implement ``handle(ex)`` — the attribute, route and local-reply stages of their side."""

    direction = ""
    report_attempts = True  # relayed responses carry x-trimesh-attempts (the caller's side)
    report_service_time = False  # relayed responses carry x-envoy-upstream-service-time (edge)

    def __init__(self, *, rng, pool: UpstreamPool, access_log,
                 retry_buffer_limit: int = RETRY_BUFFER_LIMIT) -> None:
        self.rng = rng
        self.pool = pool
        self.access_log = access_log
        self.retry_buffer_limit = retry_buffer_limit
        # The policy stage: an object with ``async check(exchange) -> reply | None`` (Mixer
        # check and quota, authentication); None costs one attribute test per request.
        self.policy = None
        self.counters = _Counters()
        self.requests = 0
        self._by_class = [0] * 10  # responses by status class (index: status // 100)
        self._cx_waiters: dict[str, trio.Event] = {}
        self._ids = RequestIds(rng)
        self.h2_pool = H2Pool(connect_timeout=pool.connect_timeout)  # HTTP/2 upstreams
        self.h2_pool.mtls = pool.mtls  # mutual TLS to sidecars, as the HTTP/1.1 pool does
        self.app_h2 = False  # the inbound's app speaks HTTP/2 (--protocol http2/grpc)

    async def __call__(self, down, head) -> bool:
        ex = Exchange(self.direction, down, head, trio.current_time())
        try:
            return await self.handle(ex)
        except trio.Cancelled:
            self._cut_short(ex)
            raise
        finally:
            down.server.disarm(down)
            if ex.token is not None:
                ex.fwd.cluster.release_request(ex.token)

    async def handle(self, ex: Exchange) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- the shared stages -----------------------------------------------------------------------
    async def forward(self, ex: Exchange, hdrs: list, path: str) -> bool:
        """Body, admission and attempts for a request routed to ``ex.fwd``."""
        limit = self.retry_buffer_limit
        down = ex.down
        if down.grpc and not down.head.ended:  # (an HTTP/2 stream's gRPC call)
            limit = await down.streaming_limit(limit)  # a streaming call must not wait for its end
        body = await read_and_frame(ex, hdrs, path, limit)
        ex.up = (hdrs, path, body)
        fwd = ex.fwd
        if fwd.mirror is not None and ex.complete:
            self.start_mirror(ex, hdrs, path, body)
        if fwd.delay or ex.head.has_body:
            ex.now = trio.current_time()
        cluster = fwd.cluster
        if cluster is not None:
            ex.token = cluster.admit_request(ex.now)
            if ex.token is None:
                return await self.reply(ex, OVERFLOW, pending=not ex.complete)
        return await self.attempts(ex)

    def start_mirror(self, ex: Exchange, hdrs: list, path: str, body: bytes) -> None:
        """Copy the request to ``ex.fwd.mirror`` (outbound only)."""

    async def attempts(self, ex: Exchange) -> bool:
        """Try, and retry as the attempt policy says, then relay or give up."""
        fwd = ex.fwd
        state = AttemptState(fwd.retry, self._arm(ex), ex.complete)
        now = ex.now
        while True:
            inst, endpoint = self._pick(ex, state, now)
            conn = rh = None
            if endpoint is None:
                step = state.after(NO_HOST, None, now, self.rng)
            else:
                state.started(endpoint if inst is None else inst.endpoint)
                outcome, conn, rh = await self._try(ex, state, inst, endpoint)
                now = trio.current_time()
                status = rh.status if rh is not None else None
                if type(rh) is H2ResponseHead and rh.grpc_status == "14":
                    status = 503  # gRPC UNAVAILABLE is retried like a 503 (Istio retry_on grpc)
                step = state.after(outcome, status, now, self.rng)
            ex.attempts = state.tries
            if type(step) is Retry and not self._admit_retry(fwd.cluster):
                step = step.refused
            if step is RELAY:
                return await self._relay(ex, conn, rh)
            if conn is not None:
                self._drop(ex, conn)
            if type(step) is GiveUp:
                return await self._give_up(ex, step.reply)
            now = ex.now = await self._backoff(ex, step, state)
            late = state.after_backoff(now)
            if late is not None or ex.down.expired:
                return await self._give_up(ex, UPSTREAM_TIMEOUT)

    def _arm(self, ex: Exchange) -> float:
        """Start the route deadline (from the end of the request until the response is
        complete, Envoy's route timeout); ``math.inf`` without one."""
        fwd = ex.fwd
        timeout = fwd.timeout
        down = ex.down
        if down.grpc_timeout is not None:
            # the gRPC caller's deadline bounds the route's (grpc-timeout, _h2.py)
            cap = deadline_key(down.grpc_timeout)
            if not timeout or cap < timeout:
                timeout = cap
        if not timeout:
            return math.inf
        deadline = ex.now + timeout
        down.server.arm(down, timeout, deadline, ex.complete and not fwd.egress_tls)
        return deadline

    def _pick(self, ex: Exchange, state: AttemptState, now: float):
        """``(instance, endpoint)`` for the next try; ``(None, None)`` when no host is left."""
        fwd = ex.fwd
        host = fwd.external_host
        if host is not None:  # egress, or the inbound's app
            if fwd.egress_tls:
                return None, (host, fwd.external_port or 443, "tls")
            return None, (host, fwd.external_port or 80)
        cluster = fwd.cluster
        inst = cluster.pick(self.rng, now, state.tried)
        if inst is None:
            return None, None
        secure = cluster.secure  # mutual TLS: (address, port, "mtls", identity)
        if secure is not None:
            return inst, secure.get(inst.endpoint, inst.endpoint)
        return inst, inst.endpoint

    async def _try(self, ex: Exchange, state: AttemptState, inst, endpoint):
        """One try: ``(outcome, conn, response head)``; conn and head are None on failure."""
        cluster = ex.fwd.cluster
        down = ex.down
        ex.upstream = f"{endpoint[0]}:{endpoint[1]}"
        if len(endpoint) > 3:  # (address, port, "mtls", identity)
            ex.mtls = True
        conn = rh = None
        outcome = RESPONSE
        if inst is not None:
            cluster.on_request_start(inst)
        retry = ex.fwd.retry
        per_try = retry.per_try_timeout if retry is not None else None
        try:
            h2up = inst.protocol in H2_PROTOCOLS if inst is not None else self.app_h2
            if per_try is None:
                conn, rh = await self._exchange(ex, endpoint, state.deadline, h2up)
            else:
                with trio.move_on_at(min(state.deadline, trio.current_time() + per_try)):
                    conn, rh = await self._exchange(ex, endpoint, state.deadline, h2up)
                if rh is None:
                    outcome = PER_TRY_TIMEOUT
        except UpstreamError as exc:
            outcome = OUTCOMES[type(exc)]
        finally:
            if inst is not None:
                self._account(ex, inst, rh)
            if ex.holds_cx and rh is None:
                self._release_connection(ex)
        if down.expired or (rh is None and trio.current_time() >= state.deadline):
            if rh is not None:
                self._drop(ex, conn)
            return ROUTE_TIMEOUT, None, None
        return outcome, conn, rh

    async def _exchange(self, ex: Exchange, endpoint, deadline: float, h2up: bool = False):
        cluster = ex.fwd.cluster
        if cluster is not None:
            if not cluster.admit_connection():
                await self._wait_connection(cluster, deadline)
            ex.holds_cx = True
            cluster.connection_ready(ex.token)
        if h2up:
            hdrs, path, body = ex.up
            return await h2_exchange(self.h2_pool, endpoint, ex,
                                     h2_request_fields(ex.head.method, path, hdrs), body)
        return await exchange(self.pool, endpoint, ex)

    def _account(self, ex: Exchange, inst, rh) -> None:
        """A try on ``inst`` ended: load, latency (PEAK_EWMA) and outlier detection / failure
        accrual (a timeout or reset counts as no response), unless the client ended it."""
        cluster = ex.fwd.cluster
        t = trio.current_time()
        cluster.on_request_end(inst, t - ex.now if cluster.balancer.uses_rtt else None, t)
        if not ex.down.client_gone:
            cluster.record_result(inst, rh.status if rh is not None else None, t)

    async def _relay(self, ex: Exchange, conn, rh) -> bool:
        down = ex.down
        if not self.report_attempts:
            extra = ex.extra
        elif ex.attempts == 1 and not ex.extra:
            extra = _ONE_ATTEMPT
        else:
            extra = [(ATTEMPTS_HEADER, str(ex.attempts)), *ex.extra]
        if self.report_service_time:  # Envoy's: ms from the try's start to the response head
            ms = int((trio.current_time() - ex.now) * 1000)
            extra = [*extra, ("x-envoy-upstream-service-time", str(ms))]
        cluster = ex.fwd.cluster
        per_conn = cluster.limits.max_requests_per_connection if cluster is not None else 0
        ex.response_size = rh.content_length if rh.content_length is not None else -1
        reuse = per_conn == 0 or conn.requests < per_conn
        try:
            keep = await down.relay(ex, self.pool, conn, rh, extra, reuse)  # the codec's
        finally:
            down.server.disarm(down)  # the route timeout spans the response body too
            if ex.holds_cx:
                self._release_connection(ex)
        self._finish(ex, rh.status)
        return keep and not down.parser.upgraded

    def _drop(self, ex: Exchange, conn) -> None:
        """Close a try's connection that will not be relayed (a retried status, a timeout)."""
        self.pool.discard(conn)
        if ex.holds_cx:
            self._release_connection(ex)

    async def _give_up(self, ex: Exchange, reply) -> bool:
        ex.down.server.disarm(ex.down)
        if not ex.complete:
            ex.head.keep_alive = False  # the body was streaming: the connection cannot be reused
        return await self.reply(ex, reply, pending=False)

    async def _backoff(self, ex: Exchange, step: Retry, state: AttemptState) -> float:
        cluster = ex.fwd.cluster
        try:
            await trio.sleep_until(min(state.deadline, trio.current_time() + step.backoff))
        finally:
            if cluster is not None:
                cluster.release_retry()
        return trio.current_time()

    # -- mesh replies and the record -------------------------------------------------------------
    async def reply(self, ex: Exchange, reply, extra=(), *, pending: bool = True) -> bool:
        """Answer with a mesh reply (trimesh/proxy/_replies.py); ``pending``: the request body
        may still be unread (it is read and dropped so the connection can stay open)."""
        keep = await ex.down.send_reply(ex, reply, extra, pending)  # the codec's
        self._finish(ex, reply.status)
        return keep

    def _cut_short(self, ex: Exchange) -> None:
        """The request's task is being cancelled: the client went away (DC), or the route
        deadline had to cancel the connection (504 UT written without awaiting, then close)."""
        down = ex.down
        if down.client_gone:
            ex.add_flag("DC")
            self._finish(ex, 0)
        elif down.expired:
            down.time_out(ex)  # 504 UT without awaiting, or only the flag once it answered
            self._finish(ex, 504)

    def _finish(self, ex: Exchange, status: int) -> None:
        """The request is over: count it and hand its one record to the access log."""
        self.requests += 1
        self._by_class[status // 100] += 1
        flags = ex.flags
        if flags:
            c = self.counters
            for f in flags.split(","):
                c.inc(f"flag_{f}")
        self.access_log.log(ex.record(status, trio.current_time()))

    # -- circuit-breaker plumbing ----------------------------------------------------------------
    def _admit_retry(self, cluster) -> bool:
        if cluster is None:
            return True
        if cluster.admit_retry():
            self.counters.inc("retries")
            return True
        self.counters.inc("retry_overflow")
        return False

    async def _wait_connection(self, cluster, deadline: float) -> None:
        """Wait (pending) until ``cluster`` may use one more connection; a connect failure (like
        Envoy's pending timeout) when the route deadline passes first."""
        key = cluster.name
        with trio.move_on_at(deadline):
            while not cluster.admit_connection():
                event = self._cx_waiters.get(key)
                if event is None:
                    event = self._cx_waiters[key] = trio.Event()
                await event.wait()
            return
        raise UpstreamConnectError("no connection before the route deadline")

    def _release_connection(self, ex: Exchange) -> None:
        ex.holds_cx = False
        cluster = ex.fwd.cluster
        cluster.release_connection()
        event = self._cx_waiters.pop(cluster.name, None)
        if event is not None:
            event.set()

    def statistics(self) -> dict[str, object]:
        s: dict[str, object] = {"requests": self.requests}
        s.update((f"status_{i}xx", n) for i, n in enumerate(self._by_class) if n)
        s.update(self.counters)
        if self.h2_pool.connects:  # HTTP/2 upstreams in use: h2_connections, h2_streams …
            s.update(self.h2_pool.statistics())
        return s

    def __repr__(self) -> str:
        return f"<{type(self).__name__} requests={self.requests}>"
