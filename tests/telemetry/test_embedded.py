"""An app that embeds the mesh (trimesh.open_mesh) emits the sidecar's records, metrics and
spans: B3 headers upstream, Istio's labels on its metrics, a CLIENT span at the collector."""

from __future__ import annotations

import json

import trimesh
from trimesh.config import make_instance
from trimesh.telemetry import render_metrics
from trimesh.testing import FakeUpstream, serve_upstream

from .test_metrics import find, promtool_ok
from .zipkin_collector import ZipkinCollector


async def test_open_mesh_records_metrics_and_spans(nursery):
    zipkin = ZipkinCollector()
    await nursery.start(zipkin.serve, "127.0.180.19")
    up = FakeUpstream(name="reviews-v2", service="reviews", version="v2")
    port = await nursery.start(serve_upstream, up, "127.0.180.18", 0)
    inst = make_instance("reviews", "127.0.180.18", port, labels={"version": "v2"})
    async with trimesh.open_mesh(service="productpage", version="v1", instances=[inst],
                                 zipkin_address=zipkin.address) as mesh:
        r = await mesh.request("GET", "http://reviews:9080/reviews/1")
        assert r.status == 200
        seen = json.loads(r.text)["headers"]
        assert len(seen["x-b3-traceid"]) == 16 and seen["x-b3-sampled"] == "1"
        sidecar = mesh.sidecar
        sidecar.telemetry.flush()
        text = render_metrics(sidecar.metrics_registry).decode()
        assert find(text, "istio_request_count_total", reporter="source",
                    source_service="productpage.default.svc.cluster.local", source_version="v1",
                    destination_service="reviews.default.svc.cluster.local",
                    destination_version="v2", response_code="200") == [1.0]
        promtool_ok(text)
        spans = await zipkin.wait_spans(1)
    assert [(s["kind"], s["traceId"], s["id"]) for s in spans] == [
        ("CLIENT", seen["x-b3-traceid"], seen["x-b3-spanid"])]
    assert spans[0]["tags"]["http.status_code"] == "200"
    assert spans[0]["remoteEndpoint"] == {"ipv4": "127.0.180.18", "port": port}
