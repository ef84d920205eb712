"""The Zipkin exporter: span fields, the bounded queue, a collector that is down, the address
flag."""

from __future__ import annotations

import msgspec
import pytest
from click.testing import CliRunner

from procs import free_port
from trimesh.cli._main import cli
from trimesh.telemetry import ZipkinExporter, zipkin_span

from .records import record
from .zipkin_collector import ZipkinCollector

TRACE = dict(trace_id="463ac35c9f6413ad", span_id="a2fb4a1d1a96d312", sampled=True)


def test_span_fields():
    out = msgspec.to_builtins(zipkin_span(record(duration=0.25, parent_id="0020000000000001",
                                                 **TRACE)))
    assert out == {
        "traceId": TRACE["trace_id"], "id": TRACE["span_id"], "parentId": "0020000000000001",
        "name": "reviews:9080/reviews/1", "kind": "CLIENT", "timestamp": 999_750_000,
        "duration": 250_000, "localEndpoint": {"serviceName": "istio-proxy"},
        "remoteEndpoint": {"ipv4": "127.0.0.9", "port": 9080},
        "tags": {"http.method": "GET", "http.url": "http://reviews:9080/reviews/1?x=1",
                 "http.status_code": "200", "component": "proxy",
                 "destination.service": "reviews.default.svc.cluster.local",
                 "upstream_cluster": "reviews.default.svc.cluster.local|version=v1",
                 "guid:x-request-id": "rid-1"}}
    server = msgspec.to_builtins(zipkin_span(record("inbound", status=503, source_ip="10.0.0.1",
                                                    **TRACE)))
    assert server["kind"] == "SERVER" and "parentId" not in server
    assert server["remoteEndpoint"] == {"ipv4": "10.0.0.1"} and server["tags"]["error"] == "true"


def test_unsampled_records_make_no_span_and_the_queue_is_bounded():
    z = ZipkinExporter("127.0.0.1:9411", capacity=2)
    z.log_batch([record(), record(**{**TRACE, "sampled": False})])
    assert z.statistics()["queued"] == 0
    z.log_batch([record(**TRACE) for _ in range(5)])
    assert (z.statistics()["pending"], z.statistics()["dropped"]) == (2, 3)


async def test_sends_batches_and_survives_a_down_collector(nursery):
    collector = ZipkinCollector()
    await nursery.start(collector.serve, "127.0.180.29")
    z = ZipkinExporter(collector.address)
    z.log_batch([record(**TRACE) for _ in range(600)])  # two POSTs (512 + 88)
    await z.send_pending()
    assert len(collector.spans) == 600 and collector.posts == 2
    assert z.statistics()["sent"] == 600
    down = ZipkinExporter(f"127.0.180.28:{free_port('127.0.180.28')}")
    down.log_batch([record(**TRACE)])
    await down.send_pending()  # refused: counted, not raised
    assert (down.statistics()["failed"], down.statistics()["pending"]) == (1, 0)


@pytest.mark.parametrize("text, expected", [("zipkin:9411", ("zipkin", 9411)),
                                            ("127.0.0.1:1234", ("127.0.0.1", 1234)),
                                            ("zipkin", ("zipkin", 9411))])
def test_address(text, expected):
    z = ZipkinExporter(text)
    assert (z.host, z.port) == expected


def test_bad_zipkin_address_is_a_usage_error():
    out = CliRunner().invoke(cli, ["run", "sidecar", "--service", "a", "--port", "0",
                                    "--app-port", "1", "--zipkin-address", "zipkin:http"])
    assert out.exit_code == 2 and "--zipkin-address" in out.output
