"""The outbound and inbound request handlers: route, forward, retry, fault, mirror, relay.

Outbound (the app's side, ``HTTP_PROXY`` or ``Host: reviews:9080``), per request, inline in the
connection's task:

1. take the request target apart (absolute-form ``http://reviews:9080/x`` → authority + origin-form
   path, RFC 9112 §3.2.2), build a ``RequestInfo`` and ask ``table.decide`` (``trimesh.routing``,
   pure) — the table is read once per request, so a snapshot swap never changes a request in flight;
2. ``Reject`` / ``Redirect`` / CORS preflight / fault abort are answered here (mesh-generated
   responses carry ``x-trimesh-response-flags`` and a short text body); a fault delay sleeps first;
3. the body is buffered up to :data:`RETRY_BUFFER_LIMIT` so the request can be replayed (retries,
   mirror, a stale pooled connection); a larger body streams and gets exactly one try;
4. attempts: pick an instance from the cluster, exchange on a pooled connection under
   ``min(route deadline, per-try deadline)``; connect failures, resets and — when the route's
   RetryPolicy says so — 5xx responses are retried after a jittered backoff while attempts and time
   remain (Envoy router semantics: ``x-envoy-max-retries``, ``per_try_timeout``, 25 ms base backoff);
5. the response head is rewritten (hop-by-hop fields dropped, re-framed, ``x-trimesh-attempts``
   added — Envoy reports the same as ``x-envoy-attempt-count``) and the body relayed; head and the
   body bytes already parsed go out in one ``send``.

Mesh-generated outcomes (Envoy's flags): 404 NR no route, 503 UH no healthy upstream, 503 UF connect
failure / reset before headers (after retries), 504 UT "upstream request timeout", FI fault abort,
DI fault delay (the request continues). Mirroring is fire-and-forget in a separate nursery with a
bounded number of copies in flight; its outcome never touches the primary.

Inbound (the destination sidecar, in front of the app): strips ``x-envoy-*`` control headers,
forwards to the app on a pooled connection, 503 UF when the app cannot be reached.
"""

from __future__ import annotations

import math

import trio

from ._http1 import (CONTINUE_100, DATA, END, HOP_BY_HOP, LAST_CHUNK, HTTPError, RequestHead,
                     ResponseHead, encode_chunk, reason_phrase, render_request_head,
                     render_response_head)
from ._pool import UpstreamPool, exchange
from ._server import ClientGone, Downstream

RETRY_BUFFER_LIMIT = 64 * 1024  # bytes of request body buffered for replay (Envoy's retry buffer)
MIRROR_MAX_IN_FLIGHT = 64  # concurrent mirror copies; more are dropped (counted)
DEFAULT_ROUTE_TIMEOUT = 15.0  # seconds; Istio 0.x httpReqTimeout default
ATTEMPTS_HEADER = "x-trimesh-attempts"
FLAGS_HEADER = "x-trimesh-response-flags"
_ONE_ATTEMPT = ((ATTEMPTS_HEADER, "1"),)  # the usual extra response header (never mutated)

try:  # routing is a sibling subsystem; the proxy needs its decision types
    from ..routing import (OVERFLOW_BODY, OVERFLOW_FLAG, OVERFLOW_STATUS, OVERLOADED_HEADER,
                           Forward, Redirect, Reject, RequestInfo)
    from ..routing._balancers import PEAK_EWMA
except ImportError:  # pragma: no cover - only while the routing package is being built
    Forward = Redirect = Reject = RequestInfo = None  # type: ignore[assignment]


class _Counters(dict):
    def inc(self, key: str, n: int = 1) -> None:
        self[key] = self.get(key, 0) + n


def split_target(head: RequestHead) -> tuple[str, str, str]:
    """(scheme, authority, origin-form path) of a request; absolute-form targets (what HTTP_PROXY
    clients send) become origin-form, the authority taken from the target (RFC 9112 §3.2.2)."""
    target = head.target
    if target.startswith("/"):
        return "http", head.host or "", target
    low = target[:8].lower()
    if low.startswith("http://") or low.startswith("https://"):
        scheme = "https" if low.startswith("https") else "http"
        rest = target[len(scheme) + 3:]
        slash = rest.find("/")
        query = rest.find("?")
        if slash < 0 or (0 <= query < slash):
            cut = query if query >= 0 else len(rest)
            authority, path = rest[:cut], "/" + rest[cut:]
        else:
            authority, path = rest[:slash], rest[slash:]
        if "@" in authority:
            authority = authority.rsplit("@", 1)[1]
        return scheme, authority, path
    return "http", head.host or "", target  # "*" (OPTIONS) and other forms pass through


_TOKENS: dict[str, frozenset[str]] = {}


def _tokens(value: str) -> frozenset[str]:
    """The field names a Connection header lists (lower-case); the few distinct values peers send
    (``keep-alive``, ``close``) are parsed once."""
    tokens = _TOKENS.get(value)
    if tokens is None:
        if len(_TOKENS) > 256:
            _TOKENS.clear()
        tokens = _TOKENS[value] = frozenset(t.strip().lower() for t in value.split(","))
    return tokens


def shadow_authority(authority: str) -> str:
    """Envoy's mirror host: ``-shadow`` appended to the host, before any port."""
    if authority.startswith("["):
        return authority + "-shadow"
    host, sep, port = authority.rpartition(":")
    if sep and port.isdigit():
        return f"{host}-shadow:{port}"
    return authority + "-shadow"


class RequestIds:
    """``x-request-id`` values shaped like UUID4s: a random 74-bit prefix drawn once per proxy,
    then a counter in the last group — unique without drawing 128 random bits per request."""

    __slots__ = ("_prefix", "_n")

    def __init__(self, rng) -> None:
        h = "%020x" % rng.getrandbits(80)
        self._prefix = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-"
        self._n = rng.getrandbits(32)

    def next(self) -> str:
        self._n += 1
        return f"{self._prefix}{self._n & 0xFFFFFFFFFFFF:012x}"


async def read_request_body(down: Downstream, head: RequestHead, limit: int) -> tuple[bytes, bool]:
    """Read the request body up to ``limit`` bytes: ``(body, True)`` when complete, or
    ``(prefix, False)`` when it is longer (the rest is still to be read from ``down``)."""
    if not head.has_body:
        await down.next_event()  # the END event queued right after the head
        return b"", True
    if head.expect_continue:
        await down.stream.send_all(CONTINUE_100)
    chunks = []
    size = 0
    while True:
        kind, ev = await down.next_event()
        if kind == DATA:
            chunks.append(ev)
            size += len(ev)
            if size > limit:
                return b"".join(chunks), False
        elif kind == END:
            return (chunks[0] if len(chunks) == 1 else b"".join(chunks)), True


def _body_streamer(down: Downstream, chunked: bool):
    async def stream_rest(conn) -> None:
        send = conn.stream.send_all
        while True:
            kind, ev = await down.next_event()
            if kind == DATA:
                await send(encode_chunk(ev) if chunked else ev)
            elif kind == END:
                if chunked:
                    await send(LAST_CHUNK)
                return
    return stream_rest


def _frame_request(headers: list, head: RequestHead, body: bytes, complete: bool) -> bool:
    """Append the framing header; True when the upstream body is chunked."""
    if complete:
        if body or head.has_body:
            headers.append(("content-length", str(len(body))))
        return False
    if head.content_length is not None:
        headers.append(("content-length", str(head.content_length)))
        return False
    headers.append(("transfer-encoding", "chunked"))
    return True


async def _read_and_frame(down: Downstream, head: RequestHead, hdrs: list, path: str,
                         limit: int) -> tuple[bytes, bytes, bool, object]:
    """The upstream request for a request with a body (or whose END is not parsed yet):
    ``(payload, body, complete, streamer)``. Reads up to ``limit`` bytes (read_request_body),
    appends the framing header to ``hdrs`` and renders the head; ``payload`` carries the body
    read so far (as one chunk when the upstream body is chunked); ``streamer`` sends the rest
    when the body did not fit, else None."""
    body, complete = await read_request_body(down, head, limit)
    chunked_up = _frame_request(hdrs, head, body, complete)
    payload = render_request_head(head.method, path, hdrs)
    if body:
        payload += body if (complete or not chunked_up) else encode_chunk(body)
    return payload, body, complete, (None if complete else _body_streamer(down, chunked_up))


async def relay_response(down: Downstream, pool: UpstreamPool, conn, rh: ResponseHead,
                         req: RequestHead, extra: list[tuple[str, str]], reuse: bool = True) -> bool:
    """Send the response (head rewritten, body re-framed) to the client; release or discard the
    upstream connection. Returns whether the client connection may stay open."""
    if rh.connection is None:
        headers = [(n, v) for n, v in rh.headers if n not in HOP_BY_HOP]
    else:
        named = _tokens(rh.connection)
        headers = [(n, v) for n, v in rh.headers if n not in HOP_BY_HOP and n not in named]
    headers.extend(extra)
    keep = req.keep_alive and not down.server.draining
    chunked_out = False
    if rh.no_body:
        if rh.content_length is not None and (req.method == "HEAD" or rh.status == 304):
            headers.append(("content-length", str(rh.content_length)))
    elif rh.content_length is not None:
        headers.append(("content-length", str(rh.content_length)))
    elif req.version == "1.1":
        headers.append(("transfer-encoding", "chunked"))
        chunked_out = True
    else:
        keep = False  # close-delimited body to an HTTP/1.0 client
    if not keep:
        headers.append(("connection", "close"))
    elif req.version == "1.0":
        headers.append(("connection", "keep-alive"))
    out = [render_response_head(rh.status, headers, rh.reason)]
    down.response_started = True
    events = conn.parser.events
    send = down.stream.send_all
    try:
        done = False
        while not done:
            while events:
                kind, ev = events.popleft()
                if kind == DATA:
                    out.append(encode_chunk(ev) if chunked_out else ev)
                elif kind == END:
                    if chunked_out:
                        out.append(LAST_CHUNK)
                    done = True
                    break
            if out:
                await send(out[0] if len(out) == 1 else b"".join(out))
                out = []
            if not done:
                kind, ev = await conn.next_event()
                events.appendleft((kind, ev))
    except HTTPError:
        pool.discard(conn)  # upstream broke mid-body: the client sees a truncated response
        return False
    except BaseException:
        pool.discard(conn)
        raise
    if reuse and rh.keep_alive and not events and not rh.close_delimited:
        pool.release(conn)
    else:
        pool.discard(conn)
    return keep


class OutboundProxy:
    """The outbound handler. ``table`` is the current ``RouteTable`` (swap it to change config);
    ``rng`` a ``random.Random``; ``mirror_nursery`` where mirror copies run."""

    direction = "outbound"

    def __init__(self, table, *, rng, pool: UpstreamPool, access_log, mirror_nursery=None,
                 retry_buffer_limit: int = RETRY_BUFFER_LIMIT,
                 mirror_max_in_flight: int = MIRROR_MAX_IN_FLIGHT) -> None:
        self.table = table
        self.rng = rng
        self.pool = pool
        self.access_log = access_log
        self.mirror_nursery = mirror_nursery
        self.retry_buffer_limit = retry_buffer_limit
        self.mirror_max_in_flight = mirror_max_in_flight
        self.mirrors_in_flight = 0
        self.counters = _Counters()
        self.requests = 0
        self._by_class = [0] * 10  # responses by status class (index: status // 100)
        self._cx_waiters: dict[str, trio.Event] = {}
        self._ids = RequestIds(rng)

    # -- mesh-generated responses ---------------------------------------------------------------
    async def _local_reply(self, down, head, status, flag, body, start, authority, path, rule=None,
                           cluster="", upstream="", attempts=0, extra=(), request_id=None,
                           pending=True) -> bool:
        keep = head.keep_alive and not down.server.draining
        if keep and pending and not down.parser.upgraded:
            # Whatever body is left must be read before the next request.
            if down.parser.events or head.has_body:
                try:
                    keep = await down.discard_body()
                except HTTPError:
                    keep = False
        hdrs = [(FLAGS_HEADER, flag)] if flag else []
        if attempts:
            hdrs.append((ATTEMPTS_HEADER, str(attempts)))
        hdrs.extend(extra)
        await down.send_simple(status, body + "\n" if body else "", hdrs, keep_alive=keep,
                               head_request=head.method == "HEAD")
        self._done(status, flag, start, head, authority, path, upstream, cluster, rule, attempts,
                   request_id)
        return keep

    def _done(self, status, flags, start, head, authority, path, upstream, cluster, rule, attempts,
              request_id) -> None:
        self.requests += 1
        self._by_class[status // 100] += 1
        if flags:
            c = self.counters
            for f in flags.split(","):
                c.inc(f"flag_{f}")
        self.access_log.log(self.direction, head.method, authority, path, status, flags, upstream,
                            cluster, rule, trio.current_time() - start, attempts, request_id)

    # -- the handler ---------------------------------------------------------------------------
    async def __call__(self, down: Downstream, head: RequestHead) -> bool:
        start = trio.current_time()
        table = self.table
        rng = self.rng
        scheme, authority, path = split_target(head)
        if head.method == "CONNECT":
            return await self._local_reply(down, head, 405, "", "CONNECT is not supported", start,
                                           authority, path)
        hdict = dict(head.headers)
        decision = table.decide(RequestInfo(method=head.method, authority=authority, path=path,
                                            scheme=scheme, headers=hdict), rng)
        dtype = type(decision)
        if dtype is Reject:
            return await self._local_reply(down, head, decision.status, decision.flag,
                                           decision.body, start, authority, path)
        if dtype is Redirect:
            return await self._local_reply(down, head, decision.status, "", "", start, authority,
                                           path, rule=decision.rule,
                                           extra=[("location", decision.location)])
        fwd = decision
        flags = ""
        request_id = hdict.get("x-request-id")
        cluster = fwd.cluster
        cluster_name = cluster.name if cluster is not None else (fwd.external_host or "")
        # CORS (Envoy cors filter semantics: preflight answered here, simple requests annotated).
        cors_extra: list[tuple[str, str]] = []
        cors = fwd.cors
        if cors is not None:
            origin = hdict.get("origin")
            if origin and ("*" in cors.allow_origin or origin in cors.allow_origin):
                if head.method == "OPTIONS" and "access-control-request-method" in hdict:
                    pre = [("access-control-allow-origin", origin)]
                    if cors.allow_methods:
                        pre.append(("access-control-allow-methods", ",".join(cors.allow_methods)))
                    if cors.allow_headers:
                        pre.append(("access-control-allow-headers", ",".join(cors.allow_headers)))
                    if cors.max_age is not None:
                        pre.append(("access-control-max-age", str(int(cors.max_age))))
                    if cors.allow_credentials:
                        pre.append(("access-control-allow-credentials", "true"))
                    return await self._local_reply(down, head, 200, "", "", start, authority, path,
                                                   rule=fwd.rule, extra=pre)
                cors_extra.append(("access-control-allow-origin", origin))
                if cors.expose_headers:
                    cors_extra.append(("access-control-expose-headers",
                                       ",".join(cors.expose_headers)))
                if cors.allow_credentials:
                    cors_extra.append(("access-control-allow-credentials", "true"))
        if fwd.delay:
            flags = "DI"
            await trio.sleep(fwd.delay)
        if fwd.abort_status is not None:
            return await self._local_reply(down, head, fwd.abort_status,
                                           "FI" if not flags else flags + ",FI",
                                           "fault filter abort", start, authority, path,
                                           rule=fwd.rule, cluster=cluster_name)
        # Request head for upstream.
        out_authority = fwd.rewrite_authority or authority
        out_path = fwd.rewrite_path or path
        # Istio's websocketUpgrade (default false): without it the Upgrade header is dropped and
        # the request is plain HTTP (the connection closes after the response).
        websocket = head.upgrade == "websocket" and fwd.websocket_upgrade
        hdrs = [("host", out_authority)]
        named = _tokens(head.connection) if head.connection is not None else None
        xff = None
        for n, v in head.headers:
            if n in HOP_BY_HOP:
                if websocket and n == "upgrade":
                    hdrs.append((n, v))
                continue
            if named is not None and n in named:
                continue
            if n == "host" or n == "expect" or n.startswith("x-envoy-"):
                continue
            if n == "x-forwarded-for":
                xff = v
                continue
            hdrs.append((n, v))
        hdrs.append(("x-forwarded-for", f"{xff}, {down.client}" if xff else down.client))
        if request_id is None:
            request_id = self._ids.next()
            hdrs.append(("x-request-id", request_id))
        if fwd.append_headers:
            hdrs.extend(fwd.append_headers)
        if websocket:
            hdrs.append(("connection", "upgrade"))
            return await self._websocket(down, head, fwd, hdrs, out_path, start, authority, path,
                                         request_id)
        events = down.parser.events
        if not head.has_body and events and events[0][0] == END:
            events.popleft()  # the common case: no body, its END already parsed
            payload = render_request_head(head.method, out_path, hdrs)
            body, complete, streamer = b"", True, None
        else:
            payload, body, complete, streamer = await _read_and_frame(
                down, head, hdrs, out_path, self.retry_buffer_limit)
        if fwd.mirror is not None and complete:
            self._start_mirror(fwd, head, hdrs, out_path, out_authority, body)
        # Attempts, under the cluster's circuit breaker (docs/resilience.md §1).
        now = trio.current_time() if (fwd.delay or head.has_body) else start
        token = None
        if cluster is not None:
            token = cluster.admit_request(now)
            if token is None:
                return await self._local_reply(
                    down, head, OVERFLOW_STATUS, OVERFLOW_FLAG, OVERFLOW_BODY, start, authority,
                    path, rule=fwd.rule, cluster=cluster_name, extra=[OVERLOADED_HEADER],
                    request_id=request_id, pending=not complete)
        try:
            return await self._attempts(down, head, fwd, cluster, cluster_name, token, payload,
                                        complete, streamer, cors_extra, flags, start, now,
                                        authority, path, request_id)
        finally:
            if token is not None:
                cluster.release_request(token)

    async def _attempts(self, down, head, fwd, cluster, cluster_name, token, payload, complete,
                        streamer, cors_extra, flags, start, now, authority, path,
                        request_id) -> bool:
        rng = self.rng
        retry = fwd.retry
        max_tries = 1 + retry.attempts if (retry is not None and complete) else 1
        per_try = retry.per_try_timeout if retry is not None else None
        attempts = 0
        pool = self.pool
        head_request = head.method == "HEAD"
        fail_flag = ""
        fail_status = 0
        fail_body = ""
        upstream = ""
        per_conn = cluster.limits.max_requests_per_connection if cluster is not None else 0
        ewma = cluster is not None and cluster.balancer.name == PEAK_EWMA
        server = down.server
        # The route timeout runs from the end of the request until the response is complete
        # (Envoy's route timeout). It is enforced by the server's deadline timer (no cancel scope
        # per request, see HttpServer.arm); a per-try timeout gets a cancel scope per attempt.
        timeout = fwd.timeout
        if timeout:
            deadline = now + timeout
            server.arm(down, timeout, deadline, complete and not fwd.egress_tls)
        else:
            deadline = math.inf
        try:
            while True:
                if fwd.external_host is not None:
                    endpoint = ((fwd.external_host, fwd.external_port or 443, "tls")
                                if fwd.egress_tls else (fwd.external_host, fwd.external_port or 80))
                    inst = None
                else:
                    inst = cluster.pick(rng, now)
                    if inst is None:
                        if attempts == 0:
                            server.disarm(down)
                            return await self._local_reply(
                                down, head, 503, "UH", "no healthy upstream", start, authority,
                                path, rule=fwd.rule, cluster=cluster_name, request_id=request_id,
                                pending=not complete)
                        break  # keep the previous attempt's failure
                    endpoint = (inst.address, inst.port)
                    cluster.on_request_start(inst)
                attempts += 1
                upstream = f"{endpoint[0]}:{endpoint[1]}"
                conn = rh = None
                holds_cx = False
                try:
                    if per_try is None:
                        if cluster is not None:
                            if not cluster.admit_connection():
                                await self._wait_connection(cluster, deadline)
                            holds_cx = True
                            cluster.connection_ready(token)
                        conn, rh = await exchange(pool, endpoint, payload,
                                                  head_request=head_request, replayable=complete,
                                                  body_source=streamer, owner=down)
                    else:
                        with trio.move_on_at(min(deadline, now + per_try)):
                            if cluster is not None:
                                if not cluster.admit_connection():
                                    await self._wait_connection(cluster, deadline)
                                holds_cx = True
                                cluster.connection_ready(token)
                            conn, rh = await exchange(pool, endpoint, payload,
                                                      head_request=head_request,
                                                      replayable=complete, body_source=streamer,
                                                      owner=down)
                except (OSError, trio.BrokenResourceError, trio.ClosedResourceError, HTTPError):
                    fail_flag, fail_status = "UF", 503
                    fail_body = "upstream connect error or disconnect/reset before headers"
                finally:
                    if inst is not None:
                        t = trio.current_time()
                        # RTT feeds only PEAK_EWMA. Every attempt's outcome feeds outlier
                        # detection (a timeout or reset as None), except one the client ended.
                        cluster.on_request_end(inst, t - now if ewma else None, t)
                        if cluster.outlier_config is not None and not down.client_gone:
                            cluster.record_result(inst, rh.status if rh is not None else None, t)
                    if holds_cx and rh is None:
                        self._release_connection(cluster)
                if down.expired or (rh is None and trio.current_time() >= deadline):
                    if rh is not None:
                        pool.discard(conn)
                        if holds_cx:
                            self._release_connection(cluster)
                    fail_flag, fail_status, fail_body = "UT", 504, "upstream request timeout"
                    break
                if rh is None and not fail_flag:  # the per-try timeout
                    fail_flag, fail_status, fail_body = "UT", 504, "upstream request timeout"
                if rh is not None:
                    if (attempts < max_tries and retry.should_retry_status(rh.status)
                            and trio.current_time() < deadline and self._admit_retry(cluster)):
                        pool.discard(conn)
                        if holds_cx:
                            self._release_connection(cluster)
                        try:
                            await self._backoff(retry, attempts, deadline)
                        finally:
                            if cluster is not None:
                                cluster.release_retry()
                        now = trio.current_time()
                        if now < deadline and not down.expired:
                            continue
                        fail_flag, fail_status, fail_body = "UT", 504, "upstream request timeout"
                        break
                    if attempts == 1 and not cors_extra:
                        extra = _ONE_ATTEMPT
                    else:
                        extra = [(ATTEMPTS_HEADER, str(attempts))]
                        extra.extend(cors_extra)
                    try:
                        keep = await relay_response(down, pool, conn, rh, head, extra,
                                                    reuse=per_conn == 0 or conn.requests < per_conn)
                    finally:
                        server.disarm(down)  # the route timeout spans the response body too
                        if holds_cx:
                            self._release_connection(cluster)
                    self._done(rh.status, flags, start, head, authority, path, upstream,
                               cluster_name, fwd.rule, attempts, request_id)
                    return keep and not down.parser.upgraded
                # Failed attempt.
                if (attempts < max_tries and trio.current_time() < deadline
                        and self._admit_retry(cluster)):
                    try:
                        await self._backoff(retry, attempts, deadline)
                    finally:
                        if cluster is not None:
                            cluster.release_retry()
                    now = trio.current_time()
                    if now < deadline and not down.expired:
                        fail_flag = ""
                        continue
                    fail_flag, fail_status, fail_body = "UT", 504, "upstream request timeout"
                break
            server.disarm(down)
            if not complete:
                # The body was streaming when the attempt failed: the connection cannot be reused.
                head.keep_alive = False
            flags = fail_flag if not flags else f"{flags},{fail_flag}"
            return await self._local_reply(down, head, fail_status, flags, fail_body, start,
                                           authority, path, rule=fwd.rule, cluster=cluster_name,
                                           upstream=upstream, attempts=attempts,
                                           request_id=request_id, pending=False)
        except trio.Cancelled:
            if down.client_gone:  # the client went away: nothing to answer (Envoy's DC)
                flags = "DC" if not flags else f"{flags},DC"
                self._done(0, flags, start, head, authority, path, upstream, cluster_name,
                           fwd.rule, attempts, request_id)
            elif down.expired:  # the deadline timer cancelled us: answer without awaiting
                self._expired_reply(down, head, flags, start, authority, path, upstream,
                                    cluster_name, fwd.rule, attempts, request_id)
            raise
        finally:
            server.disarm(down)

    def _expired_reply(self, down, head, flags, start, authority, path, upstream, cluster_name,
                       rule, attempts, request_id) -> None:
        """504 UT written straight to the socket (the connection's scope is cancelled, so no
        await is possible); the connection closes afterwards."""
        flags = "UT" if not flags else f"{flags},UT"
        if not down.response_started:
            body = b"upstream request timeout\n"
            hdrs = [("content-type", "text/plain"), ("content-length", str(len(body))),
                    (FLAGS_HEADER, flags), (ATTEMPTS_HEADER, str(attempts)),
                    ("connection", "close")]
            data = render_response_head(504, hdrs)
            if head.method != "HEAD":
                data += body
            down.response_started = True
            try:
                down.stream.sock.send(data)
            except OSError:
                pass
        self._done(504, flags, start, head, authority, path, upstream, cluster_name, rule,
                   attempts, request_id)

    # -- circuit-breaker plumbing ---------------------------------------------------------------
    def _admit_retry(self, cluster) -> bool:
        if cluster is None:
            return True
        if cluster.admit_retry():
            self.counters.inc("retries")
            return True
        self.counters.inc("retry_overflow")
        return False

    async def _wait_connection(self, cluster, deadline: float) -> None:
        """Wait (pending) until ``cluster`` may use one more connection; OSError (a connect
        failure, like Envoy's pending timeout) when the route deadline passes first."""
        key = cluster.name
        with trio.move_on_at(deadline):
            while not cluster.admit_connection():
                event = self._cx_waiters.get(key)
                if event is None:
                    event = self._cx_waiters[key] = trio.Event()
                await event.wait()
            return
        raise OSError("no connection before the route deadline")

    def _release_connection(self, cluster) -> None:
        cluster.release_connection()
        event = self._cx_waiters.pop(cluster.name, None)
        if event is not None:
            event.set()

    async def _backoff(self, retry, attempts: int, deadline: float) -> None:
        delay = retry.backoff(attempts - 1, self.rng)
        await trio.sleep_until(min(deadline, trio.current_time() + delay))

    # -- mirroring -----------------------------------------------------------------------------
    def _start_mirror(self, fwd, head, hdrs, out_path, out_authority, body) -> None:
        if self.mirror_nursery is None:
            return
        if self.mirrors_in_flight >= self.mirror_max_in_flight:
            self.counters.inc("mirror_dropped")
            return
        inst = fwd.mirror.pick(self.rng, trio.current_time())
        if inst is None:
            self.counters.inc("mirror_no_upstream")
            return
        mh = [("host", shadow_authority(out_authority))]
        mh.extend(h for h in hdrs[1:])
        payload = render_request_head(head.method, out_path, mh) + body
        self.mirrors_in_flight += 1
        self.counters.inc("mirror_started")
        self.mirror_nursery.start_soon(self._mirror, (inst.address, inst.port), payload,
                                       head.method == "HEAD", fwd.timeout or DEFAULT_ROUTE_TIMEOUT)

    async def _mirror(self, endpoint, payload: bytes, head_request: bool, timeout: float) -> None:
        try:
            with trio.move_on_after(timeout) as scope:
                conn, rh = await exchange(self.pool, endpoint, payload, head_request=head_request,
                                          replayable=True)
                try:
                    while True:
                        kind, _ = await conn.next_event()
                        if kind == END:
                            break
                except BaseException:
                    self.pool.discard(conn)
                    raise
                if rh.keep_alive and not rh.close_delimited:
                    self.pool.release(conn)
                else:
                    self.pool.discard(conn)
                self.counters.inc("mirror_ok")
            if scope.cancelled_caught:
                self.counters.inc("mirror_timeout")
        except (OSError, trio.BrokenResourceError, HTTPError):
            self.counters.inc("mirror_failed")
        finally:
            self.mirrors_in_flight -= 1

    # -- websocket -----------------------------------------------------------------------------
    async def _websocket(self, down, head, fwd, hdrs, out_path, start, authority, path,
                         request_id) -> bool:
        if fwd.external_host is not None:
            endpoint = (fwd.external_host, fwd.external_port or 80)
        else:
            inst = fwd.cluster.pick(self.rng, trio.current_time())
            if inst is None:
                return await self._local_reply(down, head, 503, "UH", "no healthy upstream",
                                               start, authority, path, rule=fwd.rule)
            endpoint = (inst.address, inst.port)
        return await relay_upgrade(self, down, head, endpoint, hdrs, out_path, start, authority,
                                   path, fwd.rule, request_id)

    def statistics(self) -> dict[str, object]:
        s: dict[str, object] = {"requests": self.requests}
        s.update((f"status_{i}xx", n) for i, n in enumerate(self._by_class) if n)
        s.update(self.counters)
        s["mirrors_in_flight"] = self.mirrors_in_flight
        clusters = getattr(self.table, "clusters", None)
        if clusters is not None:
            # Envoy's names, as its admin /stats prints them (traffic-tasks.md §8.5 greps
            # ``cluster.out.<name>.upstream_rq_pending_overflow``), numeric entries only.
            s["clusters"] = {
                f"cluster.out.{name}.{key}": value
                for name, cluster in clusters().items()
                for key, value in cluster.statistics().items()
                if isinstance(value, (int, float)) and not isinstance(value, bool)}
        return s

    def __repr__(self) -> str:
        return f"<{type(self).__name__} requests={self.requests}>"


async def relay_upgrade(proxy, down: Downstream, head: RequestHead, endpoint, hdrs, out_path, start,
                        authority, path, rule, request_id) -> bool:
    """Forward an Upgrade (websocket) request; on 101 relay bytes both ways until either side
    closes (the one place the proxy runs two tasks for one request)."""
    from . import _io
    upstream = f"{endpoint[0]}:{endpoint[1]}"
    try:
        stream = await _io.connect(*endpoint)
    except OSError:
        return await proxy._local_reply(down, head, 503, "UF", "upstream connect error", start,
                                        authority, path, rule=rule, upstream=upstream,
                                        attempts=1)
    try:
        await stream.send_all(render_request_head(head.method, out_path, hdrs))
        from ._http1 import ResponseParser, HEAD as _HEAD
        rp = ResponseParser()
        rp.expect()
        buf = b""
        while True:
            data = await stream.receive_some()
            if not data:
                raise trio.BrokenResourceError("upstream closed during upgrade")
            buf += data
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                break
        rp.feed(buf[: end + 4])
        rest = buf[end + 4:]
        rh = None
        for kind, ev in rp.events:
            if kind == _HEAD:
                rh = ev
        if rh is None:
            raise HTTPError(502, "bad upgrade response")
        headers = [(n, v) for n, v in rh.headers if n not in ("keep-alive", "proxy-connection")]
        down.response_started = True
        await down.stream.send_all(render_response_head(rh.status, headers, rh.reason) + rest)
        proxy._done(rh.status, "", start, head, authority, path, upstream, "", rule, 1,
                    request_id)
        if rh.status != 101:
            return False
        if down.parser.leftover:
            await stream.send_all(down.parser.leftover)

        async def pump(src, dst, nursery):
            try:
                while True:
                    data = await src.receive_some()
                    if not data:
                        break
                    await dst.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            nursery.cancel_scope.cancel()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump, down.stream, stream, nursery)
            nursery.start_soon(pump, stream, down.stream, nursery)
        return False
    except (trio.BrokenResourceError, HTTPError, ClientGone):
        if not down.response_started:
            return await proxy._local_reply(down, head, 503, "UF", "upstream reset during upgrade",
                                            start, authority, path, rule=rule, upstream=upstream,
                                            attempts=1)
        return False
    finally:
        stream.close()


class InboundProxy(OutboundProxy):
    """The inbound handler: strip ``x-envoy-*`` and hop-by-hop fields, forward to the app."""

    direction = "inbound"

    def __init__(self, app_endpoint: tuple[str, int], *, rng, pool: UpstreamPool, access_log,
                 retry_buffer_limit: int = RETRY_BUFFER_LIMIT) -> None:
        super().__init__(None, rng=rng, pool=pool, access_log=access_log,
                         retry_buffer_limit=retry_buffer_limit)
        self.app_endpoint = app_endpoint
        self.upstream = f"{app_endpoint[0]}:{app_endpoint[1]}"

    async def __call__(self, down: Downstream, head: RequestHead) -> bool:
        start = trio.current_time()
        _, authority, path = split_target(head)
        websocket = head.upgrade == "websocket"
        hdrs = []
        named = _tokens(head.connection) if head.connection is not None else None
        request_id = None
        for n, v in head.headers:
            if n in HOP_BY_HOP:
                if websocket and n == "upgrade":
                    hdrs.append((n, v))
                continue
            if (named is not None and n in named) or n == "expect" or n.startswith("x-envoy-"):
                continue
            if n == "x-request-id":
                request_id = v
            hdrs.append((n, v))
        if websocket:
            hdrs.append(("connection", "upgrade"))
            return await relay_upgrade(self, down, head, self.app_endpoint, hdrs, path, start,
                                       authority, path, None, request_id)
        events = down.parser.events
        if not head.has_body and events and events[0][0] == END:
            events.popleft()  # the common case: no body, its END already parsed
            payload = render_request_head(head.method, path, hdrs)
            complete, streamer = True, None
        else:
            payload, _, complete, streamer = await _read_and_frame(
                down, head, hdrs, path, self.retry_buffer_limit)
        try:
            conn, rh = await exchange(self.pool, self.app_endpoint, payload,
                                      head_request=head.method == "HEAD", replayable=complete,
                                      body_source=streamer, owner=down)
        except trio.Cancelled:
            if down.client_gone:  # Envoy's DC: the caller left; the app connection is closed
                self._done(0, "DC", start, head, authority, path, self.upstream, "inbound|app",
                           None, 1, request_id)
            raise
        except (OSError, trio.BrokenResourceError, HTTPError):
            if not complete:
                head.keep_alive = False
            return await self._local_reply(
                down, head, 503, "UF", "upstream connect error or disconnect/reset before headers",
                start, authority, path, upstream=self.upstream, attempts=1, request_id=request_id,
                pending=False)
        keep = await relay_response(down, self.pool, conn, rh, head, [])
        self._done(rh.status, "", start, head, authority, path, self.upstream, "inbound|app", None,
                   1, request_id)
        return keep and not down.parser.upgraded


__all__ = ["OutboundProxy", "InboundProxy", "split_target", "shadow_authority", "reason_phrase",
           "RETRY_BUFFER_LIMIT"]
