"""HTTP/1.1 codec for the proxy's hot path: httptools (llhttp) parsing plus the rules a proxy adds.

Theory of operation
-------------------
:class:`RequestParser` and :class:`ResponseParser` are sans-IO: ``feed(data)`` takes whatever bytes the
socket produced (a whole pipeline of requests, or one byte) and appends *events* to ``events``
(a deque the caller pops from):

- ``(HEAD, RequestHead | ResponseHead)`` once a head is complete and validated,
- ``(DATA, bytes)`` for each piece of body (de-chunked),
- ``(END, None)`` at the end of a message,
- ``(INFO, ResponseHead)`` for a 1xx interim response (responses only; not 101).

llhttp does the byte-level work (request line, header tokens, chunk sizes, Content-Length digits) in
C for 2–3 µs a request; this module adds what llhttp leaves to its user (RFC 9112):

- framing defences — Content-Length together with Transfer-Encoding, a duplicated Content-Length
  (even with equal values), a Transfer-Encoding other than ``chunked`` (§6.1), a Transfer-Encoding in
  an HTTP/1.0 message, an invalid chunk size → 400; a version other than 1.0/1.1 → 505; an HTTP/1.1
  request without exactly one Host (§3.2) → 400;
- limits — a header block over :data:`MAX_HEADER_BYTES` or with more than :data:`MAX_HEADERS` fields →
  431 (Envoy's ``max_request_headers_kb`` is 60 and ``max_headers_count`` 100);
- header values are stripped of surrounding whitespace (llhttp keeps trailing OWS); names lower-cased
  (HTTP/1 names are case-insensitive; Envoy lower-cases them too);
- responses to HEAD: llhttp would wait for the body a Content-Length announces, so for those we feed
  only the head and end the message ourselves;
- close-delimited response bodies end at EOF: :meth:`ResponseParser.feed_eof`.

Chunk extensions and trailers are parsed and dropped (trailers are hop-by-hop when re-framing).
The serialisers at the bottom build whole heads as one ``bytes`` so the shell can coalesce a head and
a small body into one ``send``. Hop-by-hop handling (RFC 9110 §7.6.1) is :func:`forwardable_headers`.

h11 is the reference: tests/proxy/test_http1_differential.py feeds both the same corpus and
hypothesis-generated requests, whole and one byte at a time. Intentional differences are listed in
docs/http.md.
"""

from __future__ import annotations

from collections import deque

import httptools

from ..errors import ProtocolError

MAX_HEADER_BYTES = 60 * 1024  # Envoy http_connection_manager max_request_headers_kb default (60 KiB)
MAX_HEADERS = 100  # Envoy common_http_protocol_options.max_headers_count default
HEADER_READ_TIMEOUT = 10.0  # seconds a client gets to send a complete head (slowloris defence)

HEAD = 0
DATA = 1
END = 2
INFO = 3

# RFC 9110 §7.6.1 hop-by-hop fields plus the legacy ones proxies drop (Envoy's list).
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
    "upgrade", "content-length",  # content-length is re-emitted by the serialiser from the framing
})

# Fields the codec itself interprets; collected while parsing so heads are scanned only once.
_SPECIAL = frozenset({"content-length", "transfer-encoding", "host", "upgrade", "connection",
                      "expect"})

_STATUS_REASONS = {
    100: "Continue", 101: "Switching Protocols", 200: "OK", 201: "Created", 204: "No Content",
    301: "Moved Permanently", 302: "Found", 303: "See Other", 304: "Not Modified",
    307: "Temporary Redirect", 308: "Permanent Redirect", 400: "Bad Request", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout", 413: "Payload Too Large",
    429: "Too Many Requests", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
    501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Gateway Timeout", 505: "HTTP Version Not Supported",
}


def reason_phrase(status: int) -> str:
    return _STATUS_REASONS.get(status, "Unknown")


class HTTPError(ProtocolError):
    """The peer sent a message the codec refuses; ``status`` is what to answer (400, 431, 505...)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Head:
    """What request and response heads share: ``headers``, a list of ``(lower-case name, value)``."""

    __slots__ = ()
    headers: list[tuple[str, str]]

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of the lower-case field ``name``, else ``default``."""
        for n, v in self.headers:
            if n == name:
                return v
        return default


class RequestHead(_Head):
    """A parsed request head. ``headers`` is a list of ``(lower-case name, value)`` str pairs in
    arrival order (latin-1 decoded). ``content_length`` is None unless the request had one;
    ``chunked`` is True for ``Transfer-Encoding: chunked``. ``upgrade`` is the lower-cased Upgrade
    protocol when the request asks for one with ``Connection: upgrade``."""

    __slots__ = ("method", "target", "version", "headers", "keep_alive", "content_length",
                 "chunked", "upgrade", "expect_continue", "host", "connection")

    def __init__(self, method: str, target: str, version: str, headers: list[tuple[str, str]],
                 keep_alive: bool, content_length: int | None, chunked: bool, upgrade: str | None,
                 expect_continue: bool, host: str | None, connection: str | None = None) -> None:
        self.connection = connection  # the Connection field's value(s), comma-joined
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.keep_alive = keep_alive
        self.content_length = content_length
        self.chunked = chunked
        self.upgrade = upgrade
        self.expect_continue = expect_continue
        self.host = host

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)

    def __repr__(self) -> str:
        return f"<RequestHead {self.method} {self.target} HTTP/{self.version} {len(self.headers)} headers>"


class ResponseHead(_Head):
    """A parsed response head; ``close_delimited`` when the body runs to EOF (no framing)."""

    __slots__ = ("status", "reason", "version", "headers", "keep_alive", "content_length",
                 "chunked", "close_delimited", "no_body", "connection")

    def __init__(self, status: int, reason: str, version: str, headers: list[tuple[str, str]],
                 keep_alive: bool, content_length: int | None, chunked: bool,
                 close_delimited: bool, no_body: bool, connection: str | None = None) -> None:
        self.connection = connection  # the Connection field's value(s), comma-joined
        self.status = status
        self.reason = reason
        self.version = version
        self.headers = headers
        self.keep_alive = keep_alive
        self.content_length = content_length
        self.chunked = chunked
        self.close_delimited = close_delimited
        self.no_body = no_body

    def __repr__(self) -> str:
        return f"<ResponseHead {self.status} HTTP/{self.version} {len(self.headers)} headers>"


def _framing(headers: list[tuple[str, str]], version: str) -> tuple[int | None, bool]:
    """(content_length, chunked) from a validated header list; raise HTTPError on conflicts."""
    cl: int | None = None
    te: str | None = None
    for n, v in headers:
        if n == "content-length":
            if cl is not None:
                raise HTTPError(400, "duplicate Content-Length")
            if not v.isdigit() or not v.isascii() or len(v) > 18:
                raise HTTPError(400, f"invalid Content-Length {v!r}")
            cl = int(v)
        elif n == "transfer-encoding":
            if te is not None:
                raise HTTPError(400, "duplicate Transfer-Encoding")
            te = v.lower()
    if te is not None:
        if cl is not None:
            raise HTTPError(400, "Content-Length together with Transfer-Encoding")
        if version == "1.0":
            raise HTTPError(400, "Transfer-Encoding in an HTTP/1.0 message")
        if te != "chunked":
            raise HTTPError(501, f"unsupported Transfer-Encoding {te!r}")
        return None, True
    return cl, False


def _translate(exc: Exception) -> HTTPError:
    msg = str(exc) or type(exc).__name__
    if isinstance(exc, httptools.HttpParserInvalidMethodError):
        return HTTPError(400, "invalid method")
    return HTTPError(400, f"malformed HTTP: {msg}")


class RequestParser:
    """Sans-IO request parser (server side): ``feed(data)`` then pop ``events``.

    After a request with ``Connection: upgrade`` for websocket, ``upgraded`` is True and
    ``leftover`` holds the bytes after the head (the start of the tunnel); the parser stops.
    After a request that does not keep the connection alive, further bytes are ignored.
    """

    __slots__ = ("events", "upgraded", "leftover", "closed", "_p", "_url", "_headers", "_hbytes",
                 "_in_head", "_pending_head", "_error", "_head", "messages", "_special")

    def __init__(self) -> None:
        self.events: deque = deque()
        self.upgraded = False
        self.closed = False
        self.leftover = b""
        self.messages = 0
        self._p = httptools.HttpRequestParser(self)
        self._url: list[bytes] = []
        self._headers: list[tuple[str, str]] = []
        self._special: list[tuple[str, str]] = []
        self._hbytes = 0
        self._in_head = False
        self._pending_head = 0
        self._error: HTTPError | None = None
        self._head: RequestHead | None = None

    @property
    def in_head(self) -> bool:
        """True while a head has started (or bytes are buffered) but is not complete: the span the
        header read timeout covers."""
        return self._in_head

    # -- httptools callbacks -------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._in_head = True
        self._url = []
        self._headers = []
        self._special = []
        self._hbytes = 0

    def on_url(self, url: bytes) -> None:
        self._url.append(url)
        self._hbytes += len(url)
        if self._hbytes > MAX_HEADER_BYTES:
            self._error = HTTPError(431, "request head larger than %d bytes" % MAX_HEADER_BYTES)
            raise self._error

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._in_head:
            return  # a trailer field: dropped
        headers = self._headers
        self._hbytes += len(name) + len(value) + 4
        if len(headers) >= MAX_HEADERS:
            self._error = HTTPError(431, "more than %d header fields" % MAX_HEADERS)
            raise self._error
        if self._hbytes > MAX_HEADER_BYTES:
            self._error = HTTPError(431, "request head larger than %d bytes" % MAX_HEADER_BYTES)
            raise self._error
        field = (name.decode("latin-1").lower(), value.decode("latin-1").rstrip(" \t"))
        headers.append(field)
        if field[0] in _SPECIAL:
            self._special.append(field)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._pending_head = 0
        p = self._p
        version = p.get_http_version()
        if version != "1.1" and version != "1.0":
            self._error = HTTPError(505, f"HTTP version {version} not supported")
            raise self._error
        headers = self._headers
        special = self._special
        try:
            cl, chunked = _framing(special, version)
        except HTTPError as exc:
            self._error = exc
            raise
        host = None
        upgrade = None
        expect = False
        conn_upgrade = False
        connection = None
        nhost = 0
        for n, v in special:
            if n == "host":
                host = v
                nhost += 1
            elif n == "upgrade":
                upgrade = v.lower()
            elif n == "connection":
                connection = v if connection is None else f"{connection}, {v}"
                if "upgrade" in v.lower():
                    conn_upgrade = True
            elif n == "expect":
                expect = v.lower() == "100-continue"
        if nhost > 1 or (version == "1.1" and nhost == 0):
            self._error = HTTPError(400, "an HTTP/1.1 request needs exactly one Host header")
            raise self._error
        self._head = RequestHead(p.get_method().decode("ascii"), b"".join(self._url).decode("latin-1"),
                                 version, headers, p.should_keep_alive(), cl, chunked,
                                 upgrade if conn_upgrade else None, expect and version == "1.1", host,
                                 connection)
        self.events.append((HEAD, self._head))

    def on_body(self, body: bytes) -> None:
        self.events.append((DATA, body))

    def on_message_complete(self) -> None:
        self.events.append((END, None))
        self.messages += 1
        head = self._head
        if head is not None and not head.keep_alive:
            self.closed = True

    # -- feeding -------------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        """Parse ``data``; raise :class:`HTTPError` (with the status to answer) on a bad message."""
        if self.closed or self.upgraded:
            return
        try:
            self._p.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._on_upgrade(data, exc.args[0] if exc.args else len(data))
        except httptools.HttpParserError as exc:
            if self._error is not None:
                raise self._error from None
            if self.closed:
                return  # bytes after a Connection: close request: ignored
            raise _translate(exc) from None
        if self._in_head:
            self._pending_head += len(data)
            if self._pending_head > MAX_HEADER_BYTES + 8192:
                raise HTTPError(431, "request head larger than %d bytes" % MAX_HEADER_BYTES)

    def _on_upgrade(self, data: bytes, offset: int) -> None:
        head = self._head
        if head is not None and head.method == "CONNECT":
            self.upgraded = True
            self.leftover = data[offset:]
            return
        if head is not None and head.upgrade == "websocket":
            self.upgraded = True
            self.leftover = data[offset:]
            return
        # Upgrade to anything else (h2c, ...): the proxy drops the Upgrade header and carries on
        # with HTTP/1.1 on this connection, so parse the rest with a fresh parser.
        if head is not None:
            head.upgrade = None
        self._p = httptools.HttpRequestParser(self)
        rest = data[offset:]
        if rest:
            self.feed(rest)


class ResponseParser:
    """Sans-IO response parser (client side). Call :meth:`expect` before each request's response
    with ``head_request=True`` when the request was HEAD; call :meth:`feed_eof` when the peer
    closes (ends a close-delimited body, or raises if a message was cut short)."""

    __slots__ = ("events", "_p", "_headers", "_reason", "_head_request", "_buf", "_in_msg",
                 "_head", "_body_to_eof", "_hbytes", "_done_head_request", "_error", "_special")

    def __init__(self) -> None:
        self.events: deque = deque()
        self._p = httptools.HttpResponseParser(self)
        self._headers: list[tuple[str, str]] = []
        self._reason: list[bytes] = []
        self._head_request = False
        self._buf = b""
        self._in_msg = False
        self._head: ResponseHead | None = None
        self._body_to_eof = False
        self._hbytes = 0
        self._done_head_request = False
        self._error: HTTPError | None = None
        self._special: list[tuple[str, str]] = []

    def expect(self, *, head_request: bool = False) -> None:
        self._head_request = head_request
        self._done_head_request = False

    # -- httptools callbacks -------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._in_msg = True
        self._headers = []
        self._special = []
        self._reason = []
        self._hbytes = 0
        self._head = None

    def on_status(self, status: bytes) -> None:
        self._reason.append(status)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._head is not None:
            return  # trailer
        self._hbytes += len(name) + len(value) + 4
        if len(self._headers) >= MAX_HEADERS or self._hbytes > MAX_HEADER_BYTES:
            self._error = HTTPError(502, "upstream response head too large")
            raise self._error
        field = (name.decode("latin-1").lower(), value.decode("latin-1").rstrip(" \t"))
        self._headers.append(field)
        if field[0] in _SPECIAL:
            self._special.append(field)

    def on_headers_complete(self) -> None:
        p = self._p
        status = p.get_status_code()
        version = p.get_http_version()
        headers = self._headers
        try:
            cl, chunked = _framing(self._special, version)
        except HTTPError as exc:
            self._error = HTTPError(502, f"malformed upstream response: {exc.message}")
            raise
        no_body = (self._head_request or status < 200 or status == 204 or status == 304)
        close_delimited = not no_body and not chunked and cl is None
        connection = None
        for n, v in self._special:
            if n == "connection":
                connection = v if connection is None else f"{connection}, {v}"
        head = ResponseHead(status, b"".join(self._reason).decode("latin-1"), version, headers,
                            p.should_keep_alive() and not close_delimited, cl, chunked,
                            close_delimited, no_body, connection)
        self._head = head
        self._body_to_eof = close_delimited
        if 100 <= status < 200 and status != 101:
            self.events.append((INFO, head))
        else:
            self.events.append((HEAD, head))

    def on_body(self, body: bytes) -> None:
        self.events.append((DATA, body))

    def on_message_complete(self) -> None:
        head = self._head
        self._in_msg = False
        if head is not None and 100 <= head.status < 200 and head.status != 101:
            return  # interim response: the real one follows
        self._body_to_eof = False
        self.events.append((END, None))

    # -- feeding -------------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        if self._head_request:
            self._feed_head_only(data)
            return
        try:
            self._p.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # 101 Switching Protocols: the caller relays bytes from here on
        except httptools.HttpParserError as exc:
            if self._error is not None:
                raise self._error from None
            raise HTTPError(502, f"malformed upstream response: {exc}") from None

    def _feed_head_only(self, data: bytes) -> None:
        # Responses to HEAD carry Content-Length but no body: feed llhttp only the head, then
        # finish the message ourselves and start a fresh parser for the next response.
        if self._done_head_request:
            self._buf += data
            return
        buf = self._buf + data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEADER_BYTES:
                    raise HTTPError(502, "upstream response head too large")
                self._buf = buf
                return
            chunk, buf = buf[: end + 4], buf[end + 4:]
            try:
                self._p.feed_data(chunk)
            except httptools.HttpParserError as exc:
                if self._error is not None:
                    raise self._error from None
                raise HTTPError(502, f"malformed upstream response: {exc}") from None
            head = self._head
            if head is not None and (head.status >= 200 or head.status == 101):
                if self._in_msg:
                    self.events.append((END, None))
                self._p = httptools.HttpResponseParser(self)
                self._in_msg = False
                self._done_head_request = True
                self._buf = buf
                return

    def feed_eof(self) -> None:
        """The upstream closed its side. Ends a close-delimited body; raises if a message was
        incomplete."""
        if self._body_to_eof:
            self._body_to_eof = False
            self._in_msg = False
            self.events.append((END, None))
            return
        if self._in_msg or self._buf:
            raise HTTPError(502, "upstream closed the connection mid-response")
        raise HTTPError(502, "upstream closed the connection without a response")

    @property
    def mid_message(self) -> bool:
        return self._in_msg


# -- serialisation -----------------------------------------------------------------------------

def forwardable_headers(headers: list[tuple[str, str]], *, keep_upgrade: bool = False
                        ) -> list[tuple[str, str]]:
    """``headers`` without hop-by-hop fields: Connection and every field it names, Keep-Alive,
    Proxy-Connection, TE, Trailer, Transfer-Encoding, Content-Length (the serialiser re-frames), and
    Upgrade unless ``keep_upgrade`` (websocket)."""
    named: tuple[str, ...] = ()
    for n, v in headers:
        if n == "connection":
            named += tuple(t.strip().lower() for t in v.split(","))
    out = []
    for n, v in headers:
        if n in HOP_BY_HOP:
            if keep_upgrade and n == "upgrade":
                out.append((n, v))
            continue
        if named and n in named:
            continue
        out.append((n, v))
    return out


def render_request_head(method: str, target: str, headers: list[tuple[str, str]]) -> bytes:
    parts = [f"{method} {target} HTTP/1.1\r\n"]
    parts.extend([f"{n}: {v}\r\n" for n, v in headers])
    parts.append("\r\n")
    return "".join(parts).encode("latin-1")


def render_response_head(status: int, headers: list[tuple[str, str]], reason: str | None = None,
                         version: str = "1.1") -> bytes:
    parts = [f"HTTP/{version} {status} {reason or reason_phrase(status)}\r\n"]
    parts.extend([f"{n}: {v}\r\n" for n, v in headers])
    parts.append("\r\n")
    return "".join(parts).encode("latin-1")


def encode_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"
CONTINUE_100 = b"HTTP/1.1 100 Continue\r\n\r\n"
