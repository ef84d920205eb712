"""The one place a mesh-generated response is put into bytes.

Every answer the mesh makes itself — a routing reject (NR), a redirect, a CORS preflight, a fault
abort (FI), an overflow (UO), a give-up after the attempts (UF, UT, UH), a codec error on the
listener (400/408/431/505, flag DPE) — is a :class:`~trimesh.routing.MeshReply` value (or a
routing ``Reject``, which has the same fields) rendered by :func:`render_reply`: the status, a
``text/plain`` one-line body, ``x-trimesh-response-flags`` with the request's flags, and
``x-trimesh-attempts`` when tries were made. A new protocol changes this module, not the stages.
"""

from __future__ import annotations

from ._body import ATTEMPTS_HEADER
from ._http1 import render_response_head

FLAGS_HEADER = "x-trimesh-response-flags"


def render_reply(reply, *, flags: str, attempts: int = 0, extra=(), keep_alive: bool = True,
                 head_request: bool = False) -> bytes:
    """The whole response (head and body) of a mesh reply."""
    body = (reply.body + "\n").encode() if reply.body else b""
    hdrs = [("content-type", "text/plain"), ("content-length", str(len(body)))]
    if flags:
        hdrs.append((FLAGS_HEADER, flags))
    if attempts:
        hdrs.append((ATTEMPTS_HEADER, str(attempts)))
    hdrs.extend(getattr(reply, "headers", ()))
    hdrs.extend(extra)
    if not keep_alive:
        hdrs.append(("connection", "close"))
    head = render_response_head(reply.status, hdrs)
    return head if head_request else head + body
