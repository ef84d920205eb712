"""The exchange: one request's state as it passes the pipeline's stages (``_pipeline.py``).

Every stage reads and writes this one object instead of passing a dozen values along: the
downstream connection and the parsed head (accept, parse), the request's attributes (scheme,
authority, path, headers, id), the route decision, the attempt state, the timings and the response
flags. The same object serves every codec: an HTTP/1.1 request or an HTTP/2 stream. When
the request is over, :meth:`Exchange.record` turns it into the one
:class:`~trimesh.telemetry.RequestRecord` the access log (and later metrics, Mixer reports and
spans) read.

Also here: the request-target helpers the attribute stage uses (:func:`split_target`, RFC 9112
§3.2.2) and the ``x-request-id`` generator.
"""

from __future__ import annotations

import time

from ..telemetry import RequestRecord


class Exchange:
    """One request (module docstring). Built per request by the pipeline; slotted and cheap."""

    __slots__ = ("direction", "down", "head", "start", "now", "scheme", "authority", "path",
                 "headers", "request_id", "fwd", "rule", "cluster_name", "upstream", "flags", "attempts",
                 "extra", "token", "holds_cx", "payload", "head_request", "complete",
                 "streamer", "response_size", "protocol", "received_bytes", "sent_bytes",
                 "trace", "up", "mtls", "source")

    def __init__(self, direction: str, down, head, start: float) -> None:
        self.direction = direction
        self.down = down  # the downstream connection (peer address, later its identity)
        self.head = head  # the parsed request head
        self.start = start  # trio time the head was handed over
        self.now = start  # trio time the attempts start (after a fault delay / the body read)
        self.scheme = "http"
        self.authority = ""
        self.path = "/"
        self.headers: dict[str, str] | None = None  # lower-case name -> first value, if built
        self.request_id: str | None = None
        self.fwd = None  # the routing Forward (outbound) or the app route (inbound)
        self.rule: str | None = None  # the RouteRule that decided (access log's "rule")
        self.cluster_name = ""
        self.upstream = ""  # "address:port" of the last instance tried
        self.flags = ""  # Envoy response flags, comma-separated
        self.attempts = 0
        self.extra: list[tuple[str, str]] = []  # response headers a stage adds (CORS)
        self.token = None  # the circuit breaker's admission, released when the request ends
        self.holds_cx = False  # the current try holds a maxConnections slot
        self.payload = b""  # the upstream request: head (+ the buffered body)
        self.head_request = head.method == "HEAD"  # no response body will follow
        self.complete = True  # the whole body is in payload (the request can be replayed)
        self.streamer = None  # sends the rest of a body too large to buffer
        self.response_size = -1
        self.protocol = "http"  # "tcp" once a CONNECT tunnel relays bytes (trimesh/proxy/_tcp.py)
        self.received_bytes = -1  # tunnel bytes client -> upstream (connection.received.bytes)
        self.sent_bytes = -1  # tunnel bytes upstream -> client (connection.sent.bytes)
        self.trace = None  # this hop's B3 SpanContext (trimesh.telemetry.Tracer), when tracing
        self.up = None  # (fields, path, buffered body) for an HTTP/2 upstream (_h2up.py)
        self.mtls = False  # a try went to a secure endpoint (mutual TLS, trimesh/routing/_mtls.py)
        self.source = None  # inbound: the believed caller (service FQDN, version), policy stage

    def add_flag(self, flag: str) -> str:
        if flag:
            self.flags = flag if not self.flags else f"{self.flags},{flag}"
        return self.flags

    def record(self, status: int, now: float) -> RequestRecord:
        """The request's one record (trimesh/telemetry/_record.py), finished at ``now``."""
        head = self.head
        fwd = self.fwd
        record = RequestRecord(
            time.time(), self.direction, head.method, self.authority, self.path, status,
            self.flags, self.upstream, self.cluster_name, self.rule,
            now - self.start, self.attempts, self.request_id, self.scheme,
            source_ip=self.down.client,
            source_service=src[0] if (src := self.source) is not None else "",
            source_version=src[1] if src is not None else "",
            source_user=(peer.principal or "") if (peer := self.down.peer) is not None else "",
            connection_mtls=self.mtls or peer is not None,
            destination_service=fwd.fqdn if fwd is not None else "",
            request_size=head.content_length if head.content_length is not None else (
                0 if not head.has_body else -1),
            response_size=self.response_size, protocol=self.protocol,
            received_bytes=self.received_bytes, sent_bytes=self.sent_bytes)
        trace = self.trace
        if trace is not None:
            record.trace_id, record.span_id, record.parent_id, record.sampled = trace[:4]
        return record

    def __repr__(self) -> str:
        return (f"<Exchange {self.direction} {self.head.method} {self.authority}{self.path} "
                f"attempts={self.attempts} flags={self.flags or '-'}>")


def split_target(head) -> tuple[str, str, str]:
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


def connection_tokens(value: str) -> frozenset[str]:
    """The field names a Connection header lists (lower-case); the few distinct values peers send
    (``keep-alive``, ``close``) are parsed once."""
    tokens = _TOKENS.get(value)
    if tokens is None:
        if len(_TOKENS) > 256:
            _TOKENS.clear()
        tokens = _TOKENS[value] = frozenset(t.strip().lower() for t in value.split(","))
    return tokens


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
