"""Spans to Zipkin: each sampled record becomes one Zipkin v2 span, sent in batches.

A record with a span (``sampled`` and a ``span_id``, trimesh/telemetry/_b3.py) is one hop's span:
``kind`` ``CLIENT`` for the caller's outbound, ``SERVER`` for the callee's inbound; ``traceId``,
``id`` and ``parentId`` from the record's B3 context; ``timestamp`` the request's start and
``duration`` its length, both in **microseconds** (Zipkin v2, openzipkin ``zipkin2-api.yaml``;
``../shared/spec/telemetry-security.md`` §2.4); ``localEndpoint.serviceName`` the proxy's service
cluster (:data:`SERVICE_CLUSTER`, ``istio-proxy`` as every Envoy span of Istio 0.x was labelled,
§2.2, §16.5 #33), the other side in ``remoteEndpoint``; tags for the method, URL, status code,
destination service, cluster, response flags and ``x-request-id`` (``guid:x-request-id``, Envoy's
tag name).

:class:`ZipkinExporter` is a record sink: ``log_batch`` turns a batch's sampled records into span
dicts on a bounded queue (:data:`QUEUE_SPANS`; beyond it spans are dropped and counted) and
:meth:`ZipkinExporter.serve` POSTs them, :data:`MAX_BATCH_SPANS` at a time, as a JSON array to
``http://HOST:PORT/api/v2/spans`` every :data:`FLUSH_INTERVAL` seconds. A collector that is down,
slow or refuses costs at most :data:`SEND_TIMEOUT` per batch in this task, never a request: the
batch is dropped (counted as ``failed``).
"""

from __future__ import annotations

from typing import Iterable

import msgspec
import trio

from ..errors import ProtocolError
from ..service import http_request
from ._record import RequestRecord

SERVICE_CLUSTER = "istio-proxy"  # Istio 0.x MeshConfig serviceCluster (§2.4)
ZIPKIN_PATH = "/api/v2/spans"
ZIPKIN_PORT = 9411  # Zipkin's default port
QUEUE_SPANS = 8192  # spans waiting to be sent; more are dropped (counted)
MAX_BATCH_SPANS = 512  # spans per POST
FLUSH_INTERVAL = 1.0  # seconds between sends (Envoy's zipkin flush interval was 5 s)
SEND_TIMEOUT = 2.0  # seconds for one POST, connect included

_encode = msgspec.json.Encoder().encode


def parse_address(text: str) -> tuple[str, int]:
    """``host:port`` (``--zipkin-address``; the port defaults to 9411)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, ZIPKIN_PORT
    if not port.isdigit() or not host:
        raise ValueError(f"expected HOST:PORT for the Zipkin address, got {text!r}")
    return host.strip("[]"), int(port)


class Span(msgspec.Struct, omit_defaults=True, gc=False):
    """A Zipkin v2 span (``zipkin2-api.yaml``); encoded straight to JSON, unset fields left out."""

    traceId: str
    id: str
    name: str
    kind: str
    timestamp: int  # epoch µs
    duration: int  # µs
    localEndpoint: dict
    tags: dict
    parentId: str | None = None
    remoteEndpoint: dict | None = None


_ENDPOINTS: dict[str, dict | None] = {}  # "ip:port" -> Zipkin endpoint (a few distinct peers)


def _endpoint(address: str, with_port: bool = True) -> dict | None:
    found = _ENDPOINTS.get(address, False)
    if found is not False:
        return found
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        found = None
    else:
        found = {"ipv6" if ":" in host else "ipv4": host.strip("[]")}
        if with_port:
            found["port"] = int(port)
    if len(_ENDPOINTS) > 1024:
        _ENDPOINTS.clear()
    _ENDPOINTS[address] = found
    return found


def zipkin_span(r: RequestRecord, local: dict | None = None) -> Span:
    """The Zipkin v2 span of one record (module docstring); ``local`` its localEndpoint."""
    path = r.path
    q = path.find("?")
    tags = {"http.method": r.method, "http.url": r.scheme + "://" + r.authority + path,
            "http.status_code": str(r.status), "component": "proxy",
            "destination.service": r.destination_service or "unknown"}
    if r.cluster:
        tags["upstream_cluster"] = r.cluster
    if r.flags:
        tags["response_flags"] = r.flags
    if r.request_id:
        tags["guid:x-request-id"] = r.request_id
    if r.status == 0 or r.status >= 500:
        tags["error"] = "true"
    if r.direction == "outbound":
        kind, remote = "CLIENT", _endpoint(r.upstream)
    else:
        kind, remote = "SERVER", _endpoint(r.source_ip + ":0", False) if r.source_ip else None
    return Span(r.trace_id, r.span_id, r.authority + (path if q < 0 else path[:q]), kind,
                int((r.time - r.duration) * 1e6), int(r.duration * 1e6) or 1,
                local if local is not None else {"serviceName": SERVICE_CLUSTER}, tags,
                r.parent_id or None, remote)


class ZipkinExporter:
    """Sends the spans of sampled records to a Zipkin v2 collector (module docstring)."""

    def __init__(self, address: str, *, service_name: str = SERVICE_CLUSTER,
                 capacity: int = QUEUE_SPANS) -> None:
        self.address = address
        self.host, self.port = parse_address(address)
        self.service_name = service_name
        self._local = {"serviceName": service_name}
        self.capacity = capacity
        self._queue: list[Span] = []
        self.queued = 0
        self.sent = 0
        self.dropped = 0
        self.failed = 0
        self.posts = 0

    def log_batch(self, records: Iterable[RequestRecord]) -> None:
        queue = self._queue
        for r in records:
            if not r.sampled or not r.span_id:
                continue
            if len(queue) >= self.capacity:
                self.dropped += 1
                continue
            queue.append(zipkin_span(r, self._local))
            self.queued += 1

    async def send_pending(self) -> None:
        """POST everything queued, :data:`MAX_BATCH_SPANS` at a time."""
        while self._queue:
            batch = self._queue[:MAX_BATCH_SPANS]
            del self._queue[:MAX_BATCH_SPANS]
            ok = False
            with trio.move_on_after(SEND_TIMEOUT):
                try:
                    stream = await trio.open_tcp_stream(self.host, self.port)
                    async with stream:
                        answer = await http_request(
                            stream, "POST", ZIPKIN_PATH, host=f"{self.host}:{self.port}",
                            headers=[("content-type", "application/json")],
                            body=_encode(batch))
                    ok = 200 <= answer.status < 300
                except (OSError, trio.BrokenResourceError, ProtocolError):
                    ok = False
            self.posts += 1
            if ok:
                self.sent += len(batch)
            else:
                self.failed += len(batch)

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Send every :data:`FLUSH_INTERVAL` until cancelled."""
        task_status.started()
        while True:
            await trio.sleep(FLUSH_INTERVAL)
            await self.send_pending()

    def statistics(self) -> dict[str, object]:
        return {"queued": self.queued, "pending": len(self._queue), "sent": self.sent,
                "dropped": self.dropped, "failed": self.failed, "posts": self.posts}

    def __repr__(self) -> str:
        return (f"<ZipkinExporter {self.address} sent={self.sent} pending={len(self._queue)} "
                f"dropped={self.dropped}>")
