"""Upgrade (WebSocket) requests: the handshake under the route's deadlines, then a byte tunnel.

The handshake is an attempt like any other — one try, on a fresh connection (an upgraded
connection can never go back to a pool) — bounded by the pool's connect timeout and the route
timeout, which runs from the request until the upstream's response head (the tunnel afterwards
lives as long as both sides want); the response head is bounded like a request head
(:data:`~._http1.MAX_HEADER_BYTES`). The outcomes are the pipeline's: 503 UF when the upstream
cannot be reached or resets, 504 UT when no head arrives in time, both through
:meth:`Pipeline.reply`. On ``101`` the bytes already read past the head are passed on and two
pumps relay both ways until either side closes (the one place the proxy runs two tasks for one
request).
"""

from __future__ import annotations

import math

import trio

from ..errors import UpstreamError, UpstreamResetError
from ..routing import NO_HEALTHY_UPSTREAM, UPSTREAM_FAILURE, UPSTREAM_TIMEOUT
from ._http1 import HEAD, MAX_HEADER_BYTES, HTTPError, render_request_head, render_response_head
from ._server import ClientGone

_TUNNEL_DROP = frozenset({"keep-alive", "proxy-connection"})


async def _handshake(conn, payload: bytes):
    """Send the upgrade request; return ``(response head, bytes after it)``."""
    await conn.stream.send_all(payload)
    buf = b""
    try:
        while True:
            data = await conn.stream.receive_some()
            if not data:
                raise UpstreamResetError("upstream closed during the upgrade handshake")
            buf += data
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(buf) > MAX_HEADER_BYTES:
                raise UpstreamResetError("upgrade response head too large")
        parser = conn.parser
        parser.expect()
        parser.feed(buf[: end + 4])
    except (trio.BrokenResourceError, trio.ClosedResourceError, HTTPError) as exc:
        raise UpstreamResetError(f"upgrade handshake: {exc}") from exc
    for kind, ev in parser.events:
        if kind == HEAD:
            return ev, buf[end + 4:]
    raise UpstreamResetError("upgrade response without a head")


async def _pump(src, dst, nursery) -> None:
    try:
        while True:
            data = await src.receive_some()
            if not data:
                break
            await dst.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    nursery.cancel_scope.cancel()


async def relay_upgrade(pipeline, ex, hdrs: list, path: str) -> bool:
    """Forward an Upgrade request for ``ex`` (routed to ``ex.fwd``) and tunnel on 101."""
    state_deadline = ex.start + ex.fwd.timeout if ex.fwd.timeout else math.inf
    inst, endpoint = pipeline._pick(ex, _NoRetry, ex.start)
    if endpoint is None:
        return await pipeline.reply(ex, NO_HEALTHY_UPSTREAM)
    ex.upstream = f"{endpoint[0]}:{endpoint[1]}"
    ex.attempts = 1
    conn = rh = None
    with trio.move_on_at(state_deadline):
        try:
            conn = await pipeline.pool.connect(endpoint)
            rh, rest = await _handshake(conn, render_request_head(ex.head.method, path, hdrs))
        except UpstreamError:
            if conn is not None:
                pipeline.pool.discard(conn)
            return await pipeline.reply(ex, UPSTREAM_FAILURE)
    if rh is None:
        if conn is not None:
            pipeline.pool.discard(conn)
        return await pipeline.reply(ex, UPSTREAM_TIMEOUT)
    try:
        return await _tunnel(pipeline, ex, conn, rh, rest)
    finally:
        pipeline.pool.discard(conn)


async def _tunnel(pipeline, ex, conn, rh, rest: bytes) -> bool:
    down = ex.down
    headers = [(n, v) for n, v in rh.headers if n not in _TUNNEL_DROP]
    down.response_started = True
    await down.stream.send_all(render_response_head(rh.status, headers, rh.reason) + rest)
    pipeline._finish(ex, rh.status)
    if rh.status != 101:
        return False
    try:
        if down.parser.leftover:
            await conn.stream.send_all(down.parser.leftover)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_pump, down.stream, conn.stream, nursery)
            nursery.start_soon(_pump, conn.stream, down.stream, nursery)
    except (trio.BrokenResourceError, ClientGone):
        pass
    return False


class _NoRetry:
    """The attempt state of an upgrade: one try, nothing to avoid."""

    tried = ()
