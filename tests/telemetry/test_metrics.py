"""Istio's request metrics from records and the runtime statistics: names, labels, buckets,
cumulative counts, and promtool's verdict on the exposition."""

from __future__ import annotations

import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import require_tool
from trimesh.telemetry import (
    DURATION_BUCKETS,
    LABELS,
    SIZE_BUCKETS,
    MeshMetrics,
    RuntimeCollector,
    metrics_registry,
    render_metrics,
)

from .records import record


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def find(text: str, name: str, **labels) -> list[float]:
    return [v for (n, ls), v in samples(text).items()
            if n == name and all(dict(ls).get(k) == w for k, w in labels.items())]


def promtool_ok(text: str) -> None:
    tool = require_tool("promtool")
    out = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr


def test_request_metrics_labels_and_buckets():
    m = MeshMetrics()
    m.log_batch([record(source_service="productpage.default.svc.cluster.local",
                        source_version="v1", destination_version="v3", duration=0.02,
                        request_size=0, response_size=178) for _ in range(3)])
    m.log_batch([record("inbound", status=503, duration=12.0, destination_version="v1")])
    text = render_metrics(metrics_registry(m)).decode()
    v3 = dict(destination_service="reviews.default.svc.cluster.local", destination_version="v3",
              response_code="200", reporter="source", source_version="v1",
              source_service="productpage.default.svc.cluster.local", connection_mtls="false")
    assert find(text, "istio_request_count_total", **v3) == [3.0]
    assert find(text, "istio_request_count_total", reporter="destination", response_code="503",
                source_service="unknown", source_version="unknown") == [1.0]
    les = [le for (n, ls), _ in samples(text).items() if n == "istio_request_duration_bucket"
           and dict(ls)["destination_version"] == "v3" for le in [dict(ls)["le"]]]
    assert les == [str(b) for b in DURATION_BUCKETS] + ["+Inf"]
    assert find(text, "istio_request_duration_bucket", le="0.01", **v3) == [0.0]
    assert find(text, "istio_request_duration_bucket", le="0.025", **v3) == [3.0]
    assert find(text, "istio_request_duration_bucket", le="+Inf", **v3) == \
        find(text, "istio_request_duration_count", **v3) == [3.0]
    assert find(text, "istio_request_duration_sum", **v3) == [pytest.approx(0.06)]
    # 12 s is beyond the last bound: only +Inf holds it
    assert find(text, "istio_request_duration_bucket", le="10.0", response_code="503") == [0.0]
    assert find(text, "istio_request_duration_bucket", le="+Inf", response_code="503") == [1.0]
    assert find(text, "istio_response_size_bucket", le="100.0", **v3) == [0.0]
    assert find(text, "istio_response_size_bucket", le="1000.0", **v3) == [3.0]
    assert find(text, "istio_request_size_bucket", le="1.0", **v3) == [3.0]  # 0 bytes
    size_les = {dict(ls)["le"] for (n, ls), _ in samples(text).items()
                if n == "istio_request_size_bucket"}
    assert size_les == {str(b) for b in SIZE_BUCKETS} | {"+Inf"}
    assert {k for (n, ls), _ in samples(text).items() if n == "istio_request_count_total"
            for k, _ in ls} == set(LABELS)
    promtool_ok(text)


STATS = {
    "name": "productpage-v1", "ready": True, "draining": False,
    "tree": {"phase": "running", "children": {"inbound": {"state": "running", "restarts": 2}}},
    "outbound": {"requests": 7, "status_2xx": 6, "status_5xx": 1, "flag_UF": 1, "retries": 2,
                 "mirrors_in_flight": 0,
                 "clusters": {"cluster.out.reviews.upstream_rq_total": 7}},
    "inbound": {"requests": 3, "status_2xx": 3},
    "upstream_pool": {"connects": 2, "idle": 1},
    "clusters": {"reviews.default.svc.cluster.local|version=v1": {
        "name": "reviews", "picks": 7, "upstream_rq_pending_overflow": 0, "healthy": 2,
        "upstream_rq_total": 7, "membership_total": 2,
        "panic": False}},
    "telemetry": {"records": 10, "dropped": 0, "MeshMetrics": {"records": 10, "series": 2}},
}


def test_runtime_statistics_are_typed_and_labelled():
    text = render_metrics(metrics_registry(RuntimeCollector(lambda: STATS))).decode()
    assert "# TYPE trimesh_proxy_requests_total counter" in text
    assert find(text, "trimesh_proxy_requests_total", direction="outbound") == [7.0]
    assert find(text, "trimesh_proxy_responses_total", direction="outbound",
                code_class="5xx") == [1.0]
    assert find(text, "trimesh_proxy_events_total", direction="outbound", event="flag_UF") == [1]
    cluster = "reviews.default.svc.cluster.local|version=v1"
    assert find(text, "trimesh_cluster_picks", cluster=cluster) == [7.0]
    assert find(text, "trimesh_cluster_upstream_rq_pending_overflow", cluster=cluster) == [0.0]
    assert find(text, "trimesh_cluster_upstream_rq_total", cluster=cluster) == [7.0]
    assert "# TYPE trimesh_cluster_upstream_rq_total counter" in text
    assert find(text, "trimesh_cluster_membership", cluster=cluster) == [2.0]
    assert find(text, "trimesh_sidecar_stat", path="upstream_pool.connects") == [2.0]
    assert find(text, "trimesh_sidecar_stat", path="telemetry.MeshMetrics.series") == [2.0]
    assert find(text, "trimesh_child_restarts", child="inbound") == [2.0]
    assert "trimesh_sidecar_outbound" not in text  # no flattened names any more
    promtool_ok(text)


def test_records_that_differ_only_in_defaults_share_one_series():
    """A missing version and an explicit "unknown" are the same label value; status 0 (no
    response) counts as Istio's default 200; sizes of -1 (unknown), 0 and 1 all fall in the first
    bucket and add what they know to the sum."""
    m = MeshMetrics()
    m.log_batch([record(destination_version="", request_size=-1, response_size=1),
                 record(destination_version="unknown", status=0, request_size=0,
                        response_size=1000)])
    text = render_metrics(metrics_registry(m)).decode()
    labels = dict(destination_version="unknown", response_code="200", reporter="source")
    assert find(text, "istio_request_count_total", **labels) == [2.0]
    assert find(text, "istio_request_size_bucket", le="1.0", **labels) == [2.0]
    assert find(text, "istio_request_size_sum", **labels) == [0.0]
    assert find(text, "istio_response_size_bucket", le="1.0", **labels) == [1.0]
    assert find(text, "istio_response_size_bucket", le="1000.0", **labels) == [2.0]
    assert find(text, "istio_response_size_sum", **labels) == [1001.0]
    assert m.statistics() == {"records": 2, "series": 1}
