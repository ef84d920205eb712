"""The ingress side in one process (trimesh/proxy/_ingress.py), in virtual time: the docs'
simple-ingress and status-route (traffic-tasks.md IN1, IN2, IN8, IN9)."""

from __future__ import annotations

import random
from pathlib import Path

import trio

from trimesh.config import Snapshot, load_text
from trimesh.proxy import HttpServer, IngressProxy, UpstreamPool
from trimesh.proxy._ingress import INGRESS_LABELS, INGRESS_SERVICE
from trimesh.routing import SourceIdentity, compile_routes
from trimesh.telemetry import AccessLog

from .conftest import http_request

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
DOCS = ((FIXTURES / "simple-ingress.yaml").read_text() + "\n---\n"
        + (FIXTURES / "ingress-status-route.yaml").read_text())


async def ingress_for(mesh, nursery, text=DOCS):
    snapshot = Snapshot(load_text(text), mesh.instances())
    table = compile_routes(snapshot, source=SourceIdentity(service=INGRESS_SERVICE,
                                                           labels=INGRESS_LABELS))
    log: list = []
    proxy = IngressProxy(table, snapshot=lambda: snapshot, rng=random.Random(5),
                         pool=UpstreamPool(), access_log=AccessLog(sink=log.append))
    addr = await nursery.start(HttpServer("ingress", proxy).serve, "127.0.9.110", 0)
    return addr, log, proxy


async def test_exposed_paths_reach_the_service_and_others_get_an_empty_404(mesh, nursery):
    addr, log, proxy = await ingress_for(mesh, nursery)
    r = await http_request(addr, target="/status/200", host="ingress.example")
    assert r.status == 200 and "x-envoy-upstream-service-time" in r.headers  # IN1
    assert log[-1]["direction"] == "ingress" and log[-1]["authority"] == "httpbin:8000"
    served = sum(u.statistics()["served"] for n, u in mesh.upstreams.items() if "httpbin" in n)
    r = await http_request(addr, target="/headers", host="ingress.example")
    assert (r.status, r.body, r.headers["content-length"]) == (404, b"", "0")  # IN2
    assert r.headers["x-trimesh-response-flags"] == "NR"
    assert sum(u.statistics()["served"] for n, u in mesh.upstreams.items()
               if "httpbin" in n) == served  # httpbin received nothing
    assert proxy.statistics()["ingresses"] == 1
    nursery.cancel_scope.cancel()


async def test_route_rules_match_the_ingress_as_source(mesh, nursery, autojump_clock):
    addr, _, _ = await ingress_for(mesh, nursery)
    start = trio.current_time()
    r = await http_request(addr, target="/delay/10", host="ingress.example",
                           headers=[("x-upstream-delay", "10")])
    assert r.status == 504 and trio.current_time() - start == 4.0  # IN8: status-route's 4 s
    # the same request from inside the mesh (source productpage) is not matched by the rule
    mesh.apply(DOCS)
    start = trio.current_time()
    r = await mesh.get("/delay/10", host="httpbin:8000", headers=[("x-upstream-delay", "10")])
    assert r.status == 200 and trio.current_time() - start >= 10.0
    nursery.cancel_scope.cancel()


async def test_an_unknown_backend_is_logged_once_and_its_paths_answer_404_nr(mesh, nursery,
                                                                            caplog):
    text = DOCS.replace("serviceName: httpbin", "serviceName: nosuch", 1)  # /status/ only
    assert "nosuch" in text
    addr, log, proxy = await ingress_for(mesh, nursery, text)
    with caplog.at_level("WARNING", logger="trimesh.ingress"):
        r = await http_request(addr, target="/status/200", host="ingress.example")
        assert r.status == 404 and r.headers["x-trimesh-response-flags"] == "NR"
        assert (await http_request(addr, target="/delay/1", host="ingress.example")).status == 200
    warned = [m.getMessage() for m in caplog.records if m.name == "trimesh.ingress"]
    assert len(warned) == 1, warned  # once for the snapshot, not per request
    assert "spec.rules[0].http.paths[0].backend.serviceName" in warned[0]
    assert "'nosuch'" in warned[0]
    nursery.cancel_scope.cancel()


async def test_a_backend_that_appears_later_is_logged_as_resolved(mesh, caplog):
    """The ingress starts before gossip finds its backend: the warning at start is followed by
    a "resolved" line once a snapshot has the instance."""
    snapshots = [Snapshot(load_text(DOCS), [i for i in mesh.instances()
                                            if i.service != "httpbin"])]
    proxy = IngressProxy(None, snapshot=lambda: snapshots[-1], rng=random.Random(5),
                         pool=UpstreamPool(), access_log=AccessLog(sink=[].append))
    with caplog.at_level("INFO", logger="trimesh.ingress"):
        proxy.ingress_table()
        snapshots.append(Snapshot(load_text(DOCS), mesh.instances()))
        proxy.ingress_table()
    lines = [m.getMessage() for m in caplog.records if m.name == "trimesh.ingress"]
    warned = [line for line in lines if "resolved" not in line]
    resolved = [line for line in lines if line.startswith("ingress: resolved: ")]
    assert warned and len(resolved) == len(warned)
    assert all("httpbin" in line for line in resolved)
