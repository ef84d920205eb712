"""What the BookInfo services share: header propagation and how an upstream service URL is found.

Header propagation: the mesh can only join the spans of one request (and match a route rule on the
caller's ``Cookie``) if every service copies the request-scoped headers from its incoming request to
its outgoing calls. The Istio sample's productpage and reviews forward ``x-request-id``, the B3 headers
and ``x-ot-span-context`` (Istio 0.x distributed-tracing task; traffic-tasks.md §11). trimesh's
BookInfo forwards the incoming ``Cookie`` header as it came, so the docs' rule
``cookie: {regex: "^(.*?;)?(user=jason)(;.*)?$"}`` matches on every hop.

Service URLs: ``http://<name>:9080`` by default, the mesh name the sidecar resolves. As in the
upstream sample, ``SERVICES_DOMAIN``, ``<NAME>_HOSTNAME`` and ``<NAME>_PORT`` (or
``<NAME>_SERVICE_PORT``) change it, so the services can also run without a mesh.
"""

from __future__ import annotations

from collections.abc import Mapping

from .._server import DEFAULT_PORT, Request, cookie_header

# Headers copied from the incoming request to upstream calls, in this order.
FORWARDED_HEADERS = (
    "cookie",
    "x-request-id",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "x-ot-span-context",
)


def forwarded_headers(request: Request) -> list[tuple[str, str]]:
    """The subset of ``request``'s headers that must travel with its upstream calls."""
    out = []
    for name in FORWARDED_HEADERS:
        value = cookie_header(request) if name == "cookie" else request.header(name)
        if value is not None:
            out.append((name, value))
    return out


def service_url(name: str, environ: Mapping[str, str]) -> str:
    """``http://details:9080`` unless the environment says otherwise (see module docstring)."""
    prefix = name.upper()
    host = environ.get(f"{prefix}_HOSTNAME") or name
    domain = environ.get("SERVICES_DOMAIN")
    if domain:
        host = f"{host}.{domain}"
    port = environ.get(f"{prefix}_PORT") or environ.get(f"{prefix}_SERVICE_PORT") or str(DEFAULT_PORT)
    return f"http://{host}:{port}"


def numeric_id(raw: str) -> int | None:
    """A product id from a path segment, or None when it is not a (non-negative) integer."""
    return int(raw) if raw.isascii() and raw.isdigit() else None
