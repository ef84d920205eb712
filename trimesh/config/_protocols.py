"""Port names decide protocols (Istio's convention). PURE.

A service port is named ``<protocol>[-<suffix>]`` (``setup.md`` §7 item 2, L316; acceptance 6):
``http``, ``http-web``, ``http2``, ``http2-foo``, ``grpc``, ``grpc-x``, ``mongo``, ``redis`` name
those protocols; ``http2foo`` (no dash), ``foo`` and unnamed ports are plain **TCP**. trimesh also
knows ``https``, ``tcp`` and ``mysql`` (later Istio versions accept them the same way).

How a sidecar proxies a port follows from its protocol: ``http``/``http2``/``grpc`` through the
HTTP pipeline; ``tcp``, ``mongo``, ``redis``, ``mysql`` as a byte relay (:data:`TCP_PROTOCOLS`,
trimesh/proxy/_tcp.py) — trimesh has no Mongo/Redis/MySQL codecs, so those are TCP with a label.
``https`` is TLS the mesh does not terminate; on egress it means TLS origination (docs/routing.md).

Two defaults differ, on purpose, from "unknown means TCP":

- ``trimesh run sidecar --protocol`` defaults to ``http`` (CLI.md), because most services behind
  a trimesh sidecar are HTTP and the flag is explicit anyway;
- ``trimesh register SERVICE IP PORT`` with a bare port number looks the number up in
  :data:`WELL_KNOWN_PORTS` (3306 → mysql, 6379 → redis, 27017 → mongo, 443 → https, 80/8080/9080
  → http) and otherwise keeps its historical default ``http``; it prints what it chose.
"""

from __future__ import annotations

# Every protocol name a port may carry, canonical spelling (lower case).
PORT_PROTOCOLS: tuple[str, ...] = ("http", "http2", "grpc", "https", "tcp", "mongo", "redis",
                                   "mysql")
HTTP_PROTOCOLS = frozenset({"http", "http2", "grpc"})  # served by the HTTP pipeline
TCP_PROTOCOLS = frozenset({"tcp", "mongo", "redis", "mysql"})  # served as a byte relay
UNKNOWN_PORT_PROTOCOL = "tcp"  # Istio: unrecognised or unnamed ports are plain TCP (setup.md §7)
DEFAULT_REGISTER_PROTOCOL = "http"  # `trimesh register` with a bare, not well-known port number

# IANA / de-facto ports of the protocols above (used only when no name is given).
WELL_KNOWN_PORTS: dict[int, str] = {
    80: "http", 8080: "http", 9080: "http",  # 9080: the docs' BookInfo port
    443: "https",
    3306: "mysql",
    6379: "redis",
    27017: "mongo",
}


def port_protocol(name: str | None) -> str:
    """The protocol a port name gives, by Istio's ``<protocol>[-<suffix>]`` rule: ``http-web`` →
    ``http``, ``grpc`` → ``grpc``, ``http2foo`` / ``foo`` / ``""`` / ``None`` → ``tcp``."""
    if not name:
        return UNKNOWN_PORT_PROTOCOL
    low = name.lower()
    if low in PORT_PROTOCOLS:
        return low
    head, dash, suffix = low.partition("-")
    if dash and suffix and head in PORT_PROTOCOLS:
        return head
    return UNKNOWN_PORT_PROTOCOL


def is_tcp_protocol(protocol: str) -> bool:
    """Whether a port of ``protocol`` (a name or a canonical protocol) is relayed as bytes."""
    return port_protocol(protocol) in TCP_PROTOCOLS


def register_port_protocol(name: str | None, port: int) -> tuple[str, str]:
    """``(protocol, why)`` for a ``trimesh register`` port argument ``[NAME:]PORT``: a given
    name by :func:`port_protocol`; a bare number by :data:`WELL_KNOWN_PORTS`, else
    :data:`DEFAULT_REGISTER_PROTOCOL`. ``why`` is a few words for the command's output."""
    if name:
        protocol = port_protocol(name)
        if protocol == name.lower():
            return protocol, "named"
        return protocol, f"port name {name!r}"
    known = WELL_KNOWN_PORTS.get(port)
    if known is not None:
        return known, f"well-known port {port}"
    return DEFAULT_REGISTER_PROTOCOL, "default"
