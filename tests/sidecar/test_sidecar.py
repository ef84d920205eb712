"""serve_sidecar in process: two sidecars and an app, admin endpoints, file reloads, the control's
long poll, drain."""

from __future__ import annotations

import json
import os

import pytest
import trio
import yaml

from tests.proxy.conftest import http_request
from trimesh.errors import ConfigError
from trimesh.sidecar import SidecarConfig, load_registry_text, serve_sidecar
from trimesh.testing import FakeUpstream, serve_upstream

RULE_V2 = """apiVersion: config.istio.io/v1alpha2
kind: RouteRule
metadata: {name: reviews-v2-only}
spec:
  destination: {name: reviews}
  route:
  - labels: {version: v2}
"""


def _write(path, text):
    tmp = str(path) + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


@pytest.fixture
async def two_hops(nursery, tmp_path):
    """reviews-v1 (app behind its own sidecar) and reviews-v2 (bare app); productpage's sidecar
    routes to them from a registry file."""
    app1 = FakeUpstream(name="reviews-v1-app", service="reviews", version="v1")
    app1_port = await nursery.start(serve_upstream, app1, "127.0.8.11", 0)
    app2 = FakeUpstream(name="reviews-v2-app", service="reviews", version="v2")
    app2_port = await nursery.start(serve_upstream, app2, "127.0.8.12", 0)
    reviews = await nursery.start(serve_sidecar, SidecarConfig(
        service="reviews", labels={"version": "v1"}, port=0, app_port=app1_port,
        app_address="127.0.8.11", address="127.0.8.21", proxy_port=0, admin_port=0,
        control=None, drain_timeout=2))
    inbound = reviews.addresses["inbound"]
    registry = tmp_path / "registry.yaml"
    config = tmp_path / "config.yaml"
    _write(registry, yaml.safe_dump([
        {"service": "reviews", "address": inbound[0], "port": inbound[1],
         "labels": {"version": "v1"}},
        {"service": "reviews", "address": "127.0.8.12", "port": app2_port,
         "labels": {"version": "v2"}, "serviceAccount": "bookinfo-reviews"},
    ]))
    _write(config, "")
    product = await nursery.start(serve_sidecar, SidecarConfig(
        service="productpage", labels={"version": "v1"}, port=0, app_port=1,
        address="127.0.8.22", proxy_port=0, admin_port=0, control=None,
        registry=str(registry), config_files=[str(config)], drain_timeout=2))
    return {"product": product, "reviews": reviews, "config": config, "registry": registry,
            "apps": (app1, app2)}


async def test_two_hops_and_admin_endpoints(two_hops):
    product = two_hops["product"]
    out = product.addresses["outbound"]
    _write(two_hops["config"], RULE_V2.replace("v2}", "v1}").replace("v2-only", "v1-only"))
    product.files.poll()
    product._rebuild()
    r = await http_request(out, "GET", "/reviews/1", host="reviews:9080")
    assert r.status == 200 and r.headers["x-upstream-name"] == "reviews-v1-app"
    # the destination sidecar's inbound saw it and forwarded to its app
    assert two_hops["reviews"].inbound.statistics()["requests"] == 1
    admin = product.addresses["admin"]
    assert (await http_request(admin, "GET", "/ready", host="x")).status == 200
    stats = json.loads((await http_request(admin, "GET", "/stats", host="x")).body)
    assert stats["outbound"]["requests"] == 1 and stats["upstream_pool"]["connects"] == 1
    dump = json.loads((await http_request(admin, "GET", "/config_dump", host="x")).body)
    assert [o["metadata"]["name"] for o in dump["objects"]] == ["reviews-v1-only"]
    own = [i for i in dump["instances"] if i["service"] == "productpage"]
    assert own and own[0]["labels"] == {"app": "productpage", "version": "v1"}
    assert {i["service_account"] for i in dump["instances"] if i["service"] == "reviews"} == {
        "default", "bookinfo-reviews"}
    clusters = json.loads((await http_request(admin, "GET", "/clusters", host="x")).body)
    assert any(name.startswith("reviews.default.svc.cluster.local") for name in clusters)
    metrics = (await http_request(admin, "GET", "/metrics", host="x")).body.decode()
    assert 'trimesh_proxy_requests_total{direction="outbound"} 1.0' in metrics
    assert (await http_request(admin, "GET", "/nope", host="x")).status == 404


async def test_file_changes_apply_within_a_poll(two_hops, autojump_clock):
    product = two_hops["product"]
    out = product.addresses["outbound"]
    _write(two_hops["config"], RULE_V2)
    await trio.sleep(1.01)
    names = {(await http_request(out, "GET", "/", host="reviews:9080")).headers["x-upstream-name"]
             for _ in range(4)}
    assert names == {"reviews-v2-app"}
    # a broken file keeps the last good config and is reported
    _write(two_hops["config"], "kind: RouteRule\nmetadata: {name: x}\nspec: {precedence: nope}\n")
    await trio.sleep(1.01)
    assert product.files.statistics()["errors"] == 1
    r = await http_request(out, "GET", "/", host="reviews:9080")
    assert r.headers["x-upstream-name"] == "reviews-v2-app"
    # registry changes too: drop v2 → UH for the v2-only rule
    _write(two_hops["registry"], yaml.safe_dump([]))
    await trio.sleep(1.01)
    r = await http_request(out, "GET", "/", host="reviews:9080")
    assert (r.status, r.headers.get("x-trimesh-response-flags")) == (503, "UH")


async def test_drain_finishes_in_flight_requests(two_hops, autojump_clock):
    product = two_hops["product"]
    out = product.addresses["outbound"]
    admin = product.addresses["admin"]
    results = []

    async def slow():
        results.append(await http_request(out, "GET", "/", host="reviews:9080",
                                          headers=[("x-upstream-delay", "1.5")]))

    async with trio.open_nursery() as n:
        n.start_soon(slow)
        await trio.sleep(0.5)
        product.shutdown()
        await trio.sleep(0.1)
        assert (await http_request(admin, "GET", "/ready", host="x")).status == 503
        with pytest.raises(OSError):
            await trio.open_tcp_stream(*out)
    assert results[0].status == 200


async def test_control_long_poll_updates_routing(nursery, tmp_path):
    from trimesh.control import serve_control

    app2 = FakeUpstream(name="reviews-v2-app", service="reviews", version="v2")
    app2_port = await nursery.start(serve_upstream, app2, "127.0.8.32", 0)
    app1 = FakeUpstream(name="reviews-v1-app", service="reviews", version="v1")
    app1_port = await nursery.start(serve_upstream, app1, "127.0.8.31", 0)
    url = await nursery.start(lambda task_status: serve_control(
        state_dir=tmp_path / "state", address="127.0.8.30", config_port=0,
        task_status=task_status))
    registry = tmp_path / "registry.yaml"
    _write(registry, yaml.safe_dump([
        {"service": "reviews", "address": "127.0.8.31", "port": app1_port, "labels": {"version": "v1"}},
        {"service": "reviews", "address": "127.0.8.32", "port": app2_port, "labels": {"version": "v2"}},
    ]))
    sc = await nursery.start(serve_sidecar, SidecarConfig(
        service="productpage", port=0, app_port=1, address="127.0.8.33", proxy_port=0,
        admin_port=0, control=url, registry=str(registry)))
    assert sc.control.statistics()["connected"]
    out = sc.addresses["outbound"]
    host, port = url.split("//")[1].split(":")
    body = json.dumps(yaml.safe_load(RULE_V2)).encode()
    created = await http_request((host, int(port)), "POST", "/v1/objects", body=body, host=host,
                                 headers=[("content-type", "application/json")])
    assert created.status == 201
    with trio.fail_after(2):  # the long poll answers as soon as the revision moves
        while not sc.snapshot.objects:
            await trio.sleep(0.01)
    for _ in range(3):
        r = await http_request(out, "GET", "/", host="reviews:9080")
        assert r.headers["x-upstream-name"] == "reviews-v2-app"
    dump = sc.config_dump()
    assert dump["control_revision"] >= 1
    assert dump["objects"][0]["metadata"]["resourceVersion"] == str(dump["control_revision"])
    nursery.cancel_scope.cancel()


async def test_unreachable_control_keeps_serving(nursery):
    sc = await nursery.start(serve_sidecar, SidecarConfig(
        service="productpage", port=0, app_port=1, address="127.0.8.40", proxy_port=0,
        admin_port=0, control="http://127.0.8.40:1"))
    stats = sc.control.statistics()
    assert not stats["connected"] and stats["failures"] >= 1
    assert sc.ready
    r = await http_request(sc.addresses["outbound"], "GET", "/", host="reviews:9080")
    assert (r.status, r.headers["x-trimesh-response-flags"]) == (404, "NR")
    nursery.cancel_scope.cancel()


@pytest.mark.parametrize("text,where", [
    ("- {service: a, address: 1.2.3.4}", "$[0].port"),
    ("- {service: a, address: 1.2.3.4, port: 0}", "$[0].port"),
    ("- {service: a, address: 1.2.3.4, port: 80, colour: red}", "$[0].colour"),
    ("- {service: a, address: 1.2.3.4, port: 80, protocol: smtp}", "$[0].protocol"),
    ("service: a", "$"),
])
def test_registry_errors_name_the_field(text, where):
    with pytest.raises(ConfigError) as info:
        load_registry_text(text, source="reg.yaml")
    assert where in str(info.value) and "reg.yaml" in str(info.value)


def test_registry_entries():
    insts = load_registry_text("- {service: reviews, namespace: ns, address: 10.0.0.1, port: 9080,"
                               " labels: {version: v2}, serviceAccount: sa, protocol: http2}")
    (i,) = insts
    assert (i.fqdn, i.labels, i.service_account, i.protocol) == (
        "reviews.ns.svc.cluster.local", {"app": "reviews", "version": "v2"}, "sa", "http2")


async def test_route_table_problems_are_logged_once_and_dumped(two_hops, caplog):
    """A rule the table cannot use (here an unvalidated object with a broken subnet, as an older
    peer could gossip) is logged once and listed in /config_dump's ``problems``."""
    import logging

    from tests.routing.routing_helpers import unvalidated

    product = two_hops["product"]
    bad = unvalidated("RouteRule", "broken-subnet", {
        "destination": {"name": "reviews"}, "precedence": 5,
        "match": {"tcp": {"sourceSubnet": ["10.0.0.0/33"]}},
        "route": [{"labels": {"version": "v2"}}]})

    class Source:
        objects = [bad]

    with caplog.at_level(logging.WARNING, logger="trimesh.sidecar"):
        product.add_source(Source())
        product._rebuild()
        out = product.addresses["outbound"]
        r = await http_request(out, "GET", "/reviews/1", host="reviews:9080")  # compiles reviews
        assert r.status == 200
        product._rebuild()
        product._rebuild()
    logged = [rec.getMessage() for rec in caplog.records if "broken-subnet" in rec.getMessage()]
    assert len(logged) == 1 and "match.tcp" in logged[0]
    assert any("broken-subnet" in p for p in product.config_dump()["problems"])
