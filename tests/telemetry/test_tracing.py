"""Tracing through real sidecars in process (127.0.180.x): a BookInfo-like page —
productpage → details, productpage → reviews → ratings, each app forwarding the seven headers
(the docs' getForwardHeaders) — is one trace at a Zipkin v2 collector, a CLIENT span at each
caller's sidecar and a SERVER span at each callee's, parents linked; ``x-b3-sampled: 0`` sends
none; the metrics of the same traffic carry Istio's labels."""

from __future__ import annotations

import os

import pytest
import trio
import yaml

from tests.proxy.conftest import http_request
from trimesh.service import HttpService, Request, Response
from trimesh.service import http_request as client_request
from trimesh.sidecar import SidecarConfig, serve_sidecar

from .test_metrics import find, promtool_ok
from .zipkin_collector import ZipkinCollector

FORWARD = ("x-request-id", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled",
           "x-b3-flags", "x-ot-span-context")
CALLS = {"productpage": ["details", "reviews"], "reviews": ["ratings"], "details": [],
         "ratings": []}
VERSIONS = {"productpage": "v1", "details": "v1", "reviews": "v3", "ratings": "v1"}
HOST = {name: f"127.0.180.{i + 1}" for i, name in enumerate(CALLS)}


def app(name: str, outbound: dict, seen: list):
    async def handle(request: Request) -> Response:
        if request.path == "/health":
            return Response(200, [], b"ok\n")
        seen.append((name, dict(request.headers)))
        fwd = [(h, v) for h, v in request.headers if h in FORWARD]
        for callee in CALLS[name]:
            stream = await trio.open_tcp_stream(*outbound[name])
            async with stream:
                r = await client_request(stream, "GET", f"/{callee}", host=f"{callee}:9080",
                                         headers=fwd)
            assert r.status == 200, (name, callee, r.status, r.body)
        return Response(200, [("content-type", "text/plain")], f"{name}\n".encode())
    return handle


@pytest.fixture
async def bookinfo(nursery, tmp_path):
    zipkin = ZipkinCollector()
    await nursery.start(zipkin.serve, "127.0.180.9")
    outbound: dict = {}
    seen: list = []
    registry = tmp_path / "registry.yaml"
    registry.write_text("[]\n")
    sidecars = {}
    for name in CALLS:
        service = HttpService(app(name, outbound, seen), name=f"{name} app")
        await nursery.start(service.serve, HOST[name], 0)
        sidecars[name] = await nursery.start(serve_sidecar, SidecarConfig(
            service=name, labels={"version": VERSIONS[name]}, port=0, app_port=service.port,
            app_address=HOST[name], address=HOST[name], proxy_port=0, admin_port=0,
            control=None, registry=str(registry), drain_timeout=1,
            zipkin_address=zipkin.address, health_checks="off"))
        outbound[name] = sidecars[name].addresses["outbound"]
    entries = [{"service": n, "address": sc.addresses["inbound"][0],
                "port": sc.addresses["inbound"][1], "labels": {"version": VERSIONS[n]}}
               for n, sc in sidecars.items()]
    tmp = str(registry) + ".tmp"
    with open(tmp, "w") as f:
        yaml.safe_dump(entries, f)
    os.replace(tmp, registry)
    for sc in sidecars.values():
        sc.files.poll()
        sc._rebuild()
    return {"zipkin": zipkin, "sidecars": sidecars, "seen": seen}


async def test_one_page_is_one_trace_with_linked_parents(bookinfo):
    zipkin = bookinfo["zipkin"]
    product = bookinfo["sidecars"]["productpage"]
    r = await http_request(product.addresses["inbound"], "GET", "/productpage",
                           host="productpage:9080")
    assert r.status == 200
    # SERVER at productpage; CLIENT+SERVER for details, reviews and ratings
    spans = await zipkin.wait_spans(7)
    assert len(spans) == 7, spans
    assert len({s["traceId"] for s in spans}) == 1
    by_id = {s["id"]: s for s in spans}
    assert len(by_id) == 7
    roots = [s for s in spans if "parentId" not in s]
    assert len(roots) == 1 and roots[0]["kind"] == "SERVER" and roots[0]["id"] == \
        roots[0]["traceId"]
    for s in spans:
        if s is not roots[0]:
            parent = by_id[s["parentId"]]  # every parent is a span of the trace
            assert parent["duration"] >= s["duration"] - 1000  # µs; clocks are one host's
            assert {parent["kind"], s["kind"]} == {"CLIENT", "SERVER"}
        assert s["localEndpoint"]["serviceName"] == "istio-proxy"
        assert isinstance(s["timestamp"], int) and s["timestamp"] > 1.6e15  # epoch µs
    kinds = sorted((s["kind"], s["tags"]["destination.service"].split(".")[0]) for s in spans)
    assert kinds == [("CLIENT", "details"), ("CLIENT", "ratings"), ("CLIENT", "reviews"),
                     ("SERVER", "details"), ("SERVER", "productpage"), ("SERVER", "ratings"),
                     ("SERVER", "reviews")]
    # the apps saw a consistent context: x-ot-span-context = trace;span;parent
    for name, headers in bookinfo["seen"]:
        trace, span, parent = headers["x-ot-span-context"].split(";")
        assert (trace, span) == (headers["x-b3-traceid"], headers["x-b3-spanid"])
        assert headers["x-b3-sampled"] == "1"
    # the same traffic in the sidecars' metrics, with Istio's labels
    reviews = bookinfo["sidecars"]["reviews"]
    reviews.telemetry.flush()
    text = (await http_request(reviews.addresses["admin"], "GET", "/metrics", host="x")
            ).body.decode()
    assert find(text, "istio_request_count_total", reporter="destination",
                destination_service="reviews.default.svc.cluster.local",
                destination_version="v3", response_code="200") == [1.0]
    assert find(text, "istio_request_count_total", reporter="source",
                source_service="reviews.default.svc.cluster.local", source_version="v3",
                destination_service="ratings.default.svc.cluster.local",
                destination_version="v1") == [1.0]
    promtool_ok(text)


@pytest.mark.parametrize("headers, spans", [
    ([("x-b3-sampled", "0")], 0),
    ([("x-b3-sampled", "0"), ("x-b3-flags", "1")], 7),
])
async def test_sampled_zero_sends_nothing_and_debug_forces(bookinfo, headers, spans):
    zipkin = bookinfo["zipkin"]
    product = bookinfo["sidecars"]["productpage"]
    r = await http_request(product.addresses["inbound"], "GET", "/productpage",
                           host="productpage:9080", headers=headers)
    assert r.status == 200
    await zipkin.wait_spans(spans or 1, timeout=3.0 if not spans else 10.0)
    assert len(zipkin.spans) == spans
    # the context still travels: every app saw one trace id
    assert len({h["x-b3-traceid"] for _, h in bookinfo["seen"]}) == 1
    assert {h["x-b3-sampled"] for _, h in bookinfo["seen"]} == {"1" if spans else "0"}
