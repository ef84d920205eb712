"""Every reply the mesh makes itself, as values: status, response flag, short body.

A client that gets an answer no upstream wrote must be able to tell why (DESIGN.md §2): the status
Istio/Envoy use, a one-line body, and the response flag (Envoy's vocabulary) in the
``x-trimesh-response-flags`` header and the access log. The proxy renders these in one function
(``trimesh/proxy/_replies.py``); this module only names them, so routing decisions, the attempt
policy (``_attempts.py``) and future stages (Mixer denials, rate limits) return the same values.

| reply | status | flag | when |
|---|---|---|---|
| :data:`NO_ROUTE` | 404 | NR | no route to the host (``RouteTable.decide`` builds it with the host) |
| :data:`NO_HEALTHY_UPSTREAM` | 503 | UH | the cluster has no available instance |
| :data:`UPSTREAM_FAILURE` | 503 | UF | connect failure or reset before the response head |
| :data:`SECURE_NAMING_FAILURE` | 503 | UF | mutual TLS: the upstream's identity is not the one the registry names |
| :data:`UPSTREAM_TIMEOUT` | 504 | UT | the route or per-try timeout passed |
| :data:`OVERFLOW` | 503 | UO | the circuit breaker refused the request (``x-envoy-overloaded``) |
| :func:`fault_abort` | the fault's | FI | a RouteRule ``httpFault.abort`` |
"""

from __future__ import annotations

from ._breaker import OVERFLOW_BODY, OVERFLOW_FLAG, OVERFLOW_STATUS, OVERLOADED_HEADER


class MeshReply:
    """A mesh-generated answer. ``headers`` are extra response fields (``x-envoy-overloaded``).
    The body goes out with a final newline, unless ``exact``: a body another service wrote (a
    Mixer denial, ``PERMISSION_DENIED:<handler>:<message>``) is sent byte for byte, as Envoy
    does."""

    __slots__ = ("status", "flag", "body", "headers", "exact")

    def __init__(self, status: int, flag: str, body: str,
                 headers: tuple[tuple[str, str], ...] = (), *, exact: bool = False) -> None:
        self.status = status
        self.flag = flag
        self.body = body
        self.headers = headers
        self.exact = exact

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, MeshReply) and self.status == other.status
                and self.flag == other.flag and self.body == other.body
                and self.headers == other.headers)

    def __hash__(self) -> int:
        return hash((self.status, self.flag, self.body))

    def __repr__(self) -> str:
        return f"<MeshReply {self.status} {self.flag or '-'} {self.body!r}>"


NO_HEALTHY_UPSTREAM = MeshReply(503, "UH", "no healthy upstream")
UPSTREAM_FAILURE = MeshReply(503, "UF", "upstream connect error or disconnect/reset before headers")
SECURE_NAMING_FAILURE = MeshReply(
    503, "UF", "upstream identity check failed: not the service account the registry names")
UPSTREAM_TIMEOUT = MeshReply(504, "UT", "upstream request timeout")
OVERFLOW = MeshReply(OVERFLOW_STATUS, OVERFLOW_FLAG, OVERFLOW_BODY, (OVERLOADED_HEADER,))

_ABORTS: dict[int, MeshReply] = {}


def fault_abort(status: int) -> MeshReply:
    """The reply of a fault abort with ``status`` (one value per status, made once)."""
    reply = _ABORTS.get(status)
    if reply is None:
        reply = _ABORTS[status] = MeshReply(status, "FI", "fault filter abort")
    return reply


def no_route(message: str) -> MeshReply:
    return MeshReply(404, "NR", message)
