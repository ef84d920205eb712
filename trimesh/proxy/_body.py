"""Moving bodies: the request body to the upstream (buffered for replay up to a bound, streamed
beyond it) and the upstream's response back to the client (head rewritten, body re-framed).

Request side (:func:`read_and_frame`): up to the retry buffer limit (Envoy's retry buffer, 64 KiB)
is read before the first try, so the request can be replayed — retries, a mirror copy, a stale
pooled connection. A larger body gets exactly one try: the part read so far goes out with the head
and the rest streams from the client as the upstream reads it.

Response side (:func:`relay_response`): hop-by-hop fields are dropped (RFC 9110 §7.6.1) together
with any ``x-trimesh-attempts`` a downstream sidecar added (the caller's side reports its own, so
a response carries one), the body is re-framed for the client (Content-Length kept, chunked for
HTTP/1.1 otherwise, close-delimited for HTTP/1.0), and head + the body bytes already parsed go out
in one ``send``. (An HTTP/2 client's response is written by ``_h2.H2Stream.relay`` instead.)
"""

from __future__ import annotations

from ..errors import UpstreamError
from ._exchange import connection_tokens
from ._http1 import (CONTINUE_100, DATA, END, HOP_BY_HOP, LAST_CHUNK, encode_chunk,
                     render_request_head, render_response_head)

ATTEMPTS_HEADER = "x-trimesh-attempts"
_RESPONSE_DROP = HOP_BY_HOP | {ATTEMPTS_HEADER}


async def read_request_body(down, head, limit: int) -> tuple[bytes, bool]:
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


def _body_streamer(down, chunked: bool):
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


def _frame_request(headers: list, head, body: bytes, complete: bool) -> bool:
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


async def read_and_frame(ex, hdrs: list, path: str, limit: int) -> bytes:
    """Set ``ex.payload`` / ``ex.complete`` / ``ex.streamer`` for the upstream request with
    head fields ``hdrs`` and target ``path``; returns the body buffered (b"" if none). The
    common case — no body, its END already parsed — costs no await."""
    down = ex.down
    head = ex.head
    events = down.parser.events
    if not head.has_body and events and events[0][0] == END:
        events.popleft()
        ex.payload = render_request_head(head.method, path, hdrs)
        return b""
    body, complete = await read_request_body(down, head, limit)
    chunked_up = _frame_request(hdrs, head, body, complete)
    payload = render_request_head(head.method, path, hdrs)
    if body:
        payload += body if (complete or not chunked_up) else encode_chunk(body)
    ex.payload = payload
    ex.complete = complete
    if not complete:
        ex.streamer = _body_streamer(down, chunked_up)
    return body


def response_headers(rh, extra) -> list[tuple[str, str]]:
    """The upstream's response fields the client gets, plus ``extra``."""
    if rh.connection is None:
        headers = [(n, v) for n, v in rh.headers if n not in _RESPONSE_DROP]
    else:
        named = connection_tokens(rh.connection)
        headers = [(n, v) for n, v in rh.headers if n not in _RESPONSE_DROP and n not in named]
    headers.extend(extra)
    return headers


async def relay_response(ex, pool, conn, rh, extra, reuse: bool = True) -> bool:
    """Send the response to ``ex``'s request (head rewritten, body re-framed) to the client;
    release or discard the upstream connection. Returns whether the client connection may stay
    open."""
    down = ex.down
    req = ex.head
    headers = response_headers(rh, extra)
    keep = req.keep_alive and not down.server.draining
    chunked_out = False
    if rh.no_body:
        # (HEAD, 304 — and an HTTP/2 upstream's trailers-only answer, content-length 0)
        if rh.content_length is not None and (req.method == "HEAD" or rh.status != 204):
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
    except UpstreamError:
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
