"""One record per request: the seam every telemetry consumer reads.

The proxy's pipeline (trimesh/proxy/_pipeline.py) ends every request — relayed, answered by the
mesh, or cut short by the client — by building one :class:`RequestRecord`. The access log reads
it; metrics, Mixer reports and trace spans read the same record and nothing else, so a request is
described once, in one vocabulary: Mixer's attributes (``../shared/spec/concepts.md`` §11.4).

The record is a flat, slotted msgspec struct (cheap to build on the hot path: no dict, no
formatting); :meth:`RequestRecord.attributes` renders it as a Mixer attribute bag when a consumer
needs one. The field ↔ attribute table is :data:`ATTRIBUTES` — one place:

| field | Mixer attribute |
|---|---|
| ``time`` | ``request.time`` (Unix seconds, float) |
| ``direction`` | ``context.reporter.kind`` (``outbound``/``inbound``; ``ingress`` later) |
| ``protocol`` | ``context.protocol`` (``http``, ``tcp`` for a relayed connection; ``http2``/``grpc`` with those codecs) |
| ``method`` / ``scheme`` / ``authority`` / ``path`` | ``request.method`` / ``request.scheme`` / ``request.host`` / ``request.path`` |
| ``request_id`` | ``request.id`` (``x-request-id``) |
| ``user_agent`` | ``request.useragent`` |
| ``request_size`` / ``response_size`` | ``request.size`` / ``response.size`` (body bytes; -1 unknown) |
| ``status`` | ``response.code`` (0: no response, the client went away) |
| ``duration`` | ``response.duration`` (seconds) |
| ``source_ip`` / ``source_service`` / ``source_user`` | ``source.ip`` / ``source.service`` / ``source.user`` |
| ``destination_service`` / ``destination_ip``:``destination_port`` | ``destination.service`` / ``destination.ip`` / ``destination.port`` |
| ``received_bytes`` / ``sent_bytes`` | ``connection.received.bytes`` / ``connection.sent.bytes`` (TCP: bytes from the client toward the destination / from the destination back to the client; -1 for HTTP requests) |
| ``source_version`` / ``destination_version`` | ``source.labels["version"]`` / ``destination.labels["version"]`` |
| ``connection_mtls`` | ``connection.mtls`` (the hop used mutual TLS: the inbound verified the caller's certificate, or the outbound's try went to a secure endpoint) |
| ``trace_id`` / ``span_id`` / ``parent_id`` / ``sampled`` | the B3 context of this hop's span (``x-b3-*``; empty when tracing is off) |
| ``upstream`` | the instance that answered, ``address:port`` (Envoy's ``%UPSTREAM_HOST%``) |
| ``cluster`` / ``rule`` / ``attempts`` / ``flags`` | trimesh's: the cluster, the RouteRule, tries made, Envoy response flags (comma-separated) |
"""

from __future__ import annotations

from typing import Any

import msgspec


class RequestRecord(msgspec.Struct, gc=False):
    """What happened to one request (module docstring: the fields and their attributes)."""

    time: float
    direction: str
    method: str
    authority: str
    path: str
    status: int
    flags: str
    upstream: str
    cluster: str
    rule: str | None
    duration: float
    attempts: int
    request_id: str | None
    scheme: str = "http"
    protocol: str = "http"
    source_ip: str = ""
    source_service: str = ""
    source_user: str = ""
    destination_service: str = ""
    user_agent: str = ""
    request_size: int = -1
    response_size: int = -1
    received_bytes: int = -1
    sent_bytes: int = -1
    source_version: str = ""
    destination_version: str = ""
    trace_id: str = ""
    span_id: str = ""
    parent_id: str = ""
    sampled: bool = False
    connection_mtls: bool = False  # the hop used mutual TLS (connection.mtls)

    def attributes(self) -> dict[str, Any]:
        """The record as a Mixer attribute bag (only the attributes that are known)."""
        bag: dict[str, Any] = {}
        for field, name in ATTRIBUTES:
            value = getattr(self, field)
            if value is None or value == "" or (isinstance(value, int) and value < 0
                                                and (field.endswith("size") or field.endswith("_bytes"))):
                continue
            bag[name] = value
        host, sep, port = self.upstream.rpartition(":")
        if sep and port.isdigit():
            bag["destination.ip"] = host
            bag["destination.port"] = int(port)
        if self.flags:
            bag["context.response_flags"] = self.flags
        # labels: the version, and app=<service> (every trimesh instance carries it, CLI.md)
        for prefix, service, version in (("source", self.source_service, self.source_version),
                                         ("destination", self.destination_service,
                                          self.destination_version)):
            labels = {"app": service.split(".", 1)[0]} if service else {}
            if version:
                labels["version"] = version
            if labels:
                bag[f"{prefix}.labels"] = labels
        bag["connection.mtls"] = self.connection_mtls
        return bag


ATTRIBUTES: tuple[tuple[str, str], ...] = (
    ("time", "request.time"),
    ("direction", "context.reporter.kind"),
    ("protocol", "context.protocol"),
    ("method", "request.method"),
    ("scheme", "request.scheme"),
    ("authority", "request.host"),
    ("path", "request.path"),
    ("request_id", "request.id"),
    ("user_agent", "request.useragent"),
    ("request_size", "request.size"),
    ("response_size", "response.size"),
    ("received_bytes", "connection.received.bytes"),
    ("sent_bytes", "connection.sent.bytes"),
    ("status", "response.code"),
    ("duration", "response.duration"),
    ("source_ip", "source.ip"),
    ("source_service", "source.service"),
    ("source_user", "source.user"),
    ("destination_service", "destination.service"),
)
