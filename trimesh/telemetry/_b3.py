"""B3 trace context: what a sidecar reads from a request's ``x-b3-*`` headers and what it sends on.
PURE: ids come from an injected ``rng``; no clock, no I/O.

Zipkin's B3 propagation (openzipkin/b3-propagation; ``../shared/spec/telemetry-security.md``
§2.3–2.4, §16.5): ``x-b3-traceid`` (16 or 32 lower-hex), ``x-b3-spanid`` (16 hex),
``x-b3-parentspanid``, ``x-b3-sampled`` (``1``/``0``; ``true``/``false`` accepted) and
``x-b3-flags: 1`` (debug: always sampled). Envoy also sends ``x-ot-span-context``
(``<traceid>;<spanid>;<parentspanid>``, an all-zero parent for a root span); it is regenerated
with the new span so an app that copies the seven headers (BookInfo's ``getForwardHeaders``)
carries a consistent context.

Every sidecar hop makes one span — a CLIENT span on the caller's outbound, a SERVER span on the
callee's inbound — with a fresh span id whose parent is the span id the request arrived with, and
passes the new span's context on (the outbound to the upstream, the inbound to its app). A request
with no (valid) trace id starts a trace: the root's span id is its trace id, as Envoy's were
(``X-B3-Spanid == X-B3-Traceid`` in §2.4's example). The sampling decision is made once, by the
sidecar that starts the trace (or the first that sees no ``x-b3-sampled``), and then travels in
``x-b3-sampled``: **100 %** by default (§16.5 #31; Istio 0.x's Envoy traced every request),
:data:`DEFAULT_SAMPLING`.
"""

from __future__ import annotations

DEFAULT_SAMPLING = 1.0  # fraction of new traces sampled; Istio 0.x: every request (§16.5 #31)
ZERO_SPAN = "0" * 16
TRACE_ID = "x-b3-traceid"
SPAN_ID = "x-b3-spanid"
PARENT_ID = "x-b3-parentspanid"
SAMPLED = "x-b3-sampled"
FLAGS = "x-b3-flags"
OT_CONTEXT = "x-ot-span-context"
# The context headers a sidecar replaces with its own span's (the app's copies are dropped).
B3_HEADERS = frozenset({TRACE_ID, SPAN_ID, PARENT_ID, SAMPLED, FLAGS, OT_CONTEXT})
_HEX = frozenset("0123456789abcdef")
_TRACE_LENGTHS = (16, 32)  # a trace id is 64 or 128 bits
ID_BATCH = 64  # span ids per rng draw
_TRUE = {"1": True, "true": True, "d": True, "0": False, "false": False}


class SpanContext(tuple):
    """``(trace_id, span_id, parent_id, sampled, debug, headers)`` of one hop's span (a tuple:
    cheap)."""

    __slots__ = ()

    @property
    def trace_id(self) -> str:
        return self[0]

    @property
    def span_id(self) -> str:
        return self[1]

    @property
    def parent_id(self) -> str:
        return self[2]

    @property
    def sampled(self) -> bool:
        return self[3]

    def headers(self) -> list[tuple[str, str]]:
        """The B3 fields (and ``x-ot-span-context``) that carry this span to the next hop (made
        with the context: one list per request)."""
        return self[5]


class Tracer:
    """Makes each hop's :class:`SpanContext` (module docstring). ``rng`` is a ``random.Random``;
    ``sampling`` the fraction of new traces sampled (0..1). Span ids are cut from one
    ``rng.randbytes`` draw per :data:`ID_BATCH` spans (the request path's cheapest random hex)."""

    __slots__ = ("rng", "sampling", "started", "joined", "_ids", "_at")

    def __init__(self, rng, sampling: float = DEFAULT_SAMPLING) -> None:
        if not 0.0 <= sampling <= 1.0:
            raise ValueError(f"sampling must be within 0..1, got {sampling}")
        self.rng = rng
        self.sampling = sampling
        self.started = 0  # traces started here
        self.joined = 0  # requests that arrived with a trace
        self._ids = ""  # hex of the current batch of ids
        self._at = 0  # where the next id starts in it

    def span(self, headers) -> SpanContext:
        """The span of a request whose (lower-case) header fields ``headers.get`` reads."""
        at = self._at
        if at >= len(self._ids):
            self._ids = self.rng.randbytes(8 * ID_BATCH).hex()
            at = 0
        self._at = at + 16
        span = self._ids[at:at + 16]
        if span == ZERO_SPAN:  # not a valid id (B3): one in 2**64
            span = "0" * 15 + "1"
        get = headers.get
        trace = get(TRACE_ID)
        if trace is not None and len(trace) in _TRACE_LENGTHS and _HEX.issuperset(trace):
            self.joined += 1
            parent = get(SPAN_ID)
            if parent is None or len(parent) != 16 or not _HEX.issuperset(parent):
                parent = ""
        else:
            self.started += 1
            trace, parent = span, ""
        debug = get(FLAGS) == "1"
        if debug:
            sampled = True
        else:
            said = get(SAMPLED)
            sampled = _TRUE.get(said.lower()) if said is not None else None
            if sampled is None:
                sampled = self.sampling >= 1.0 or self.rng.random() < self.sampling
        flag = "1" if sampled else "0"
        if parent:
            out = [(TRACE_ID, trace), (SPAN_ID, span), (PARENT_ID, parent), (SAMPLED, flag),
                   (OT_CONTEXT, f"{trace};{span};{parent}")]
        else:
            out = [(TRACE_ID, trace), (SPAN_ID, span), (SAMPLED, flag),
                   (OT_CONTEXT, f"{trace};{span};{ZERO_SPAN}")]
        if debug:
            out.append((FLAGS, "1"))
        return SpanContext((trace, span, parent, sampled, debug, out))

    def statistics(self) -> dict[str, object]:
        return {"started": self.started, "joined": self.joined, "sampling": self.sampling}

    def __repr__(self) -> str:
        return f"<Tracer sampling={self.sampling} started={self.started} joined={self.joined}>"
