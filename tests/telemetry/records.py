"""RequestRecords for the telemetry tests."""

from __future__ import annotations

from trimesh.telemetry import RequestRecord


def record(direction="outbound", status=200, duration=0.02, upstream="127.0.0.9:9080",
           **kw) -> RequestRecord:
    kw.setdefault("destination_service", "reviews.default.svc.cluster.local")
    return RequestRecord(1000.0, direction, "GET", "reviews:9080", "/reviews/1?x=1", status, "",
                         upstream, "reviews.default.svc.cluster.local|version=v1", None,
                         duration, 1, "rid-1", **kw)
