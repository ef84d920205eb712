"""The public surface of trimesh.proxy, trimesh.telemetry and trimesh.sidecar, and the access-log
line format (read from the one per-request record)."""

from __future__ import annotations

import json
import logging

import trimesh.proxy
import trimesh.sidecar
import trimesh.telemetry
from trimesh.telemetry import AccessLog, RequestRecord

PROXY = {"ATTEMPTS_HEADER", "Exchange", "Pipeline", "OUTCOMES", "render_reply", "FLAGS_HEADER", "RETRY_BUFFER_LIMIT", "InboundProxy",
         "OutboundProxy", "shadow_authority", "split_target", "HEADER_READ_TIMEOUT",
         "MAX_HEADER_BYTES", "MAX_HEADERS", "HTTPError", "RequestHead", "RequestParser",
         "ResponseHead", "ResponseParser", "forwardable_headers", "FastStream", "UpstreamPool",
         "HttpServer", "Http1Answers"}
SIDECAR = {"AdminApp", "DEFAULT_ADMIN_PORT", "DEFAULT_CONTROL_URL", "DEFAULT_DRAIN_TIMEOUT",
           "DEFAULT_PROXY_PORT", "Sidecar", "SidecarConfig", "serve_sidecar", "ControlSource",
           "FileSource", "load_registry_text"}


def _public(mod):
    return {n for n in vars(mod) if not n.startswith("_")} - {"annotations"}


def test_public_names():
    assert {"AccessLog", "RequestRecord", "ATTRIBUTES"} <= _public(trimesh.telemetry)
    assert PROXY <= _public(trimesh.proxy)
    assert SIDECAR <= _public(trimesh.sidecar)
    for name in PROXY:
        obj = getattr(trimesh.proxy, name)
        if callable(obj):
            assert obj.__module__.startswith("trimesh.proxy."), name


def test_access_log_lines_are_json_and_batched(caplog):
    logger = logging.getLogger("trimesh.test-access")
    log = AccessLog(logger)
    with caplog.at_level(logging.INFO, logger="trimesh.test-access"):
        for i in range(3):
            log.log(RequestRecord(1.0, "outbound", "GET", "reviews:9080", f"/r/{i}", 503, "UF",
                                  "127.0.0.2:9080", "reviews.default.svc.cluster.local",
                                  "reviews-default", 0.0123, 2, "rid"))
        assert not caplog.records  # buffered
        log.flush()
    (record,) = caplog.records
    lines = [json.loads(line) for line in record.getMessage().splitlines()]
    assert [ln["path"] for ln in lines] == ["/r/0", "/r/1", "/r/2"]
    assert lines[0] | {"time": 0} == {
        "time": 0, "direction": "outbound", "method": "GET", "authority": "reviews:9080",
        "path": "/r/0", "status": 503, "flags": "UF", "upstream": "127.0.0.2:9080",
        "cluster": "reviews.default.svc.cluster.local", "rule": "reviews-default",
        "duration_ms": 12.3, "attempts": 2, "request_id": "rid"}
    assert log.statistics()["records"] == 3


def test_the_record_speaks_mixer_attributes():
    r = RequestRecord(1.5, "inbound", "GET", "ratings:9080", "/ratings/0", 200, "",
                      "127.0.0.3:9080", "inbound|app", None, 0.25, 1, "rid", source_ip="127.0.0.2",
                      destination_service="ratings.default.svc.cluster.local", request_size=0)
    bag = r.attributes()
    assert bag["request.host"] == "ratings:9080" and bag["request.path"] == "/ratings/0"
    assert bag["response.code"] == 200 and bag["response.duration"] == 0.25
    assert bag["request.id"] == "rid" and bag["source.ip"] == "127.0.0.2"
    assert bag["destination.service"] == "ratings.default.svc.cluster.local"
    assert (bag["destination.ip"], bag["destination.port"]) == ("127.0.0.3", 9080)
    assert bag["request.size"] == 0 and "response.size" not in bag  # unknown sizes are absent
    assert "context.response_flags" not in bag
