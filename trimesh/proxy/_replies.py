"""The one place a mesh-generated response is put into bytes (or HTTP/2 fields).

Every answer the mesh makes itself — a routing reject (NR), a redirect, a CORS preflight, a fault
abort (FI), an overflow (UO), a give-up after the attempts (UF, UT, UH), a codec error on the
listener (400/408/431/505, flag DPE) — is a :class:`~trimesh.routing.MeshReply` value (or a
routing ``Reject``, which has the same fields) made into fields by :func:`reply_parts`: the
status, a ``text/plain`` one-line body, ``x-trimesh-response-flags`` with the request's flags, and
``x-trimesh-attempts`` when tries were made. :func:`render_reply` puts them into HTTP/1.1 bytes;
the HTTP/2 codec (``_h2.py``) sends the same fields as frames.

Toward a gRPC caller (a request whose ``content-type`` is ``application/grpc*``) a mesh reply is a
*trailers-only* gRPC response instead (:func:`grpc_reply_headers`): HTTP status 200,
``content-type: application/grpc``, ``grpc-status`` from :data:`GRPC_STATUS_FOR_HTTP` and the
reply's body as ``grpc-message`` — what gRPC clients understand (an HTTP 503 would reach the
application as ``UNAVAILABLE`` with a message about the HTTP status at best). The table follows
Envoy's ``Grpc::Utility::httpToGrpcStatus`` (itself gRPC's doc/http-grpc-status-mapping.md:
400 → INTERNAL, 401 → UNAUTHENTICATED, 403 → PERMISSION_DENIED, 404 → UNIMPLEMENTED,
429/502/503/504 → UNAVAILABLE, anything else UNKNOWN) with one deliberate difference: **504 → DEADLINE_EXCEEDED** (Envoy's table says
UNAVAILABLE), because the mesh answers 504 only when a route deadline — which for gRPC includes
the caller's ``grpc-timeout`` — ran out, and gRPC clients report exactly that as
DEADLINE_EXCEEDED.
"""

from __future__ import annotations

from ._body import ATTEMPTS_HEADER
from ._http1 import render_response_head

FLAGS_HEADER = "x-trimesh-response-flags"

# gRPC status codes (grpc/doc/statuscodes.md)
GRPC_OK = 0
GRPC_UNKNOWN = 2
GRPC_DEADLINE_EXCEEDED = 4
GRPC_PERMISSION_DENIED = 7
GRPC_UNIMPLEMENTED = 12
GRPC_INTERNAL = 13
GRPC_UNAVAILABLE = 14
GRPC_UNAUTHENTICATED = 16

# HTTP status of a mesh reply -> grpc-status (module docstring; Envoy's httpToGrpcStatus but 504).
GRPC_STATUS_FOR_HTTP = {
    400: GRPC_INTERNAL,
    401: GRPC_UNAUTHENTICATED,
    403: GRPC_PERMISSION_DENIED,
    404: GRPC_UNIMPLEMENTED,
    429: GRPC_UNAVAILABLE,
    502: GRPC_UNAVAILABLE,
    503: GRPC_UNAVAILABLE,
    504: GRPC_DEADLINE_EXCEEDED,
}


def grpc_status_for_http(status: int) -> int:
    """The grpc-status a mesh reply of HTTP ``status`` becomes toward a gRPC caller."""
    if 200 <= status < 300:
        return GRPC_OK
    return GRPC_STATUS_FOR_HTTP.get(status, GRPC_UNKNOWN)


def _percent_encode(message: str) -> str:
    """grpc-message is percent-encoded UTF-8 outside printable ASCII (gRPC over HTTP/2 spec)."""
    out = []
    for b in message.encode():
        out.append(chr(b) if 0x20 <= b <= 0x7e and b != 0x25 else "%%%02X" % b)
    return "".join(out)


def reply_parts(reply, *, flags: str, attempts: int = 0, extra=()):
    """``(status, fields, body)`` of a mesh reply; fields without framing (content-length is the
    codec's)."""
    if not reply.body:
        body = b""
    elif getattr(reply, "exact", False):
        body = reply.body.encode()
    else:
        body = (reply.body + "\n").encode()
    hdrs = [("content-type", "text/plain")]
    if flags:
        hdrs.append((FLAGS_HEADER, flags))
    if attempts:
        hdrs.append((ATTEMPTS_HEADER, str(attempts)))
    hdrs.extend(getattr(reply, "headers", ()))
    hdrs.extend(extra)
    return reply.status, hdrs, body


def grpc_reply_headers(reply, *, flags: str, attempts: int = 0, extra=()) -> list:
    """The one HEADERS block (with END_STREAM) of a trailers-only gRPC answer to a mesh reply."""
    hdrs = [(":status", "200"), ("content-type", "application/grpc"),
            ("grpc-status", str(grpc_status_for_http(reply.status)))]
    if reply.body:
        hdrs.append(("grpc-message", _percent_encode(reply.body)))
    if flags:
        hdrs.append((FLAGS_HEADER, flags))
    if attempts:
        hdrs.append((ATTEMPTS_HEADER, str(attempts)))
    hdrs.extend(extra)
    return hdrs


def render_reply(reply, *, flags: str, attempts: int = 0, extra=(), keep_alive: bool = True,
                 head_request: bool = False) -> bytes:
    """The whole HTTP/1.1 response (head and body) of a mesh reply."""
    status, hdrs, body = reply_parts(reply, flags=flags, attempts=attempts, extra=extra)
    hdrs.insert(1, ("content-length", str(len(body))))
    if not keep_alive:
        hdrs.append(("connection", "close"))
    head = render_response_head(status, hdrs)
    return head if head_request else head + body
