"""The pipeline's issue-10 behaviours in one process, in virtual time: retries route around a
failed host, failure accrual without a DestinationPolicy, request ids on the inbound, one
x-trimesh-attempts per response, the Upgrade handshake under the route timeout."""

from __future__ import annotations

import functools
import json
import random

import trio

from trimesh.config import make_instance
from trimesh.proxy import HttpServer, InboundProxy, UpstreamPool
from trimesh.telemetry import AccessLog

from .conftest import http_request, raw_exchange, rule

DEAD = ("127.0.9.201", 1)  # nothing listens there: connect refused


def with_instances(mesh, *extra):
    orig = mesh.instances
    mesh.instances = lambda: orig() + list(extra)


async def test_retries_go_to_another_host_and_accrual_ejects_the_dead_one(mesh, autojump_clock):
    with_instances(mesh, make_instance("reviews", *DEAD, labels={"version": "v1"}))
    mesh.apply(rule("r", "reviews", """
route:
- labels: {version: v1}
httpReqRetries: {simpleRetry: {attempts: 3}}
"""))
    results = [await mesh.get(f"/{i}") for i in range(40)]
    assert [r.status for r in results] == [200] * 40
    tries = [int(r.headers["x-trimesh-attempts"]) for r in results]
    assert max(tries) == 2  # a retry never goes back to the host that just failed
    # Failure accrual (no DestinationPolicy): 5 consecutive connect failures eject the host,
    # so after at most 5 retried requests every request needs one try.
    assert tries.count(2) == 5 and tries[-20:] == [1] * 20
    stats = mesh.proxy.table.clusters()["reviews.default.svc.cluster.local|version=v1"]
    assert stats.statistics()["outlier_detection.ejections_active"] == 1
    assert mesh.pool.statistics()["connect_failures"] == 5
    # the ejection ends after the accrual's 5 s: the host is tried again (and fails again)
    await trio.sleep(15.0)
    tries = [int((await mesh.get(f"/b{i}")).headers["x-trimesh-attempts"]) for i in range(4)]
    assert tries.count(2) >= 1


async def test_a_lone_failing_host_is_never_ejected_by_accrual(mesh, autojump_clock):
    mesh.apply(rule("r", "reviews", "route:\n- labels: {version: v1}"))
    for _ in range(8):
        r = await mesh.get("/", headers=[("x-upstream-status", "503")])
        assert r.status == 503 and "x-trimesh-response-flags" not in r.headers  # relayed
    assert (await mesh.get("/")).status == 200  # still routed: not 503 UH


async def inbound_in_front_of(nursery, app_endpoint, address):
    log: list = []
    proxy = InboundProxy(app_endpoint, rng=random.Random(3), pool=UpstreamPool(),
                         access_log=AccessLog(sink=log.append), service="ratings")
    server = HttpServer("inbound", proxy)
    addr = await nursery.start(server.serve, address, 0)
    return addr, log


async def test_inbound_generates_a_request_id_the_app_sees_and_keeps_one_given(mesh, nursery):
    app = mesh.addrs["reviews-v1"]
    addr, log = await inbound_in_front_of(nursery, app, "127.0.9.52")
    r = await http_request(addr)
    rid = json.loads(r.body)["headers"]["x-request-id"]
    assert len(rid) == 36 and rid.count("-") == 4
    assert log[-1]["request_id"] == rid and log[-1]["direction"] == "inbound"
    r = await http_request(addr, headers=[("x-request-id", "given")])
    assert json.loads(r.body)["headers"]["x-request-id"] == "given"
    assert "x-trimesh-attempts" not in r.headers  # the caller's side reports tries
    nursery.cancel_scope.cancel()


async def test_a_reply_made_by_the_callees_sidecar_carries_one_attempts_header(mesh, nursery):
    addr, _ = await inbound_in_front_of(nursery, DEAD, "127.0.9.53")
    with_instances(mesh, make_instance("ratings", *addr, labels={"version": "v1"}))
    mesh.apply("")
    raw = await raw_exchange(mesh.outbound, b"GET / HTTP/1.1\r\nHost: ratings:9080\r\n"
                                            b"Connection: close\r\n\r\n")
    head = raw.split(b"\r\n\r\n", 1)[0].lower()
    assert head.startswith(b"http/1.1 503")
    assert head.count(b"x-trimesh-attempts:") == 1
    assert b"x-trimesh-response-flags: uf" in head  # the callee's reason is kept
    nursery.cancel_scope.cancel()


async def test_an_upgrade_that_is_never_answered_gets_504_at_the_route_timeout(
        mesh, nursery, autojump_clock):
    async def accept_and_hang(stream):
        await trio.sleep_forever()

    listeners = await nursery.start(functools.partial(trio.serve_tcp, accept_and_hang, 0,
                                                      host="127.0.9.81"))
    port = listeners[0].socket.getsockname()[1]
    with_instances(mesh, make_instance("chat", "127.0.9.81", port, labels={"version": "v1"}))
    mesh.apply(rule("chat-ws", "chat", """
route:
- labels: {version: v1}
websocketUpgrade: true
httpReqTimeout: {simpleTimeout: {timeout: 1s}}
"""))
    start = trio.current_time()
    upgrade = (b"GET /ws HTTP/1.1\r\nHost: chat:9080\r\nConnection: Upgrade\r\n"
               b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
               b"Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n\r\n")
    raw = await raw_exchange(mesh.outbound, upgrade, timeout=30)
    assert raw.startswith(b"HTTP/1.1 504") and b"upstream request timeout" in raw
    assert trio.current_time() - start == 1.0
    assert mesh.log[-1]["flags"] == "UT"
    nursery.cancel_scope.cancel()


async def test_the_policy_stage_can_answer_for_the_inbound(mesh, nursery):
    from trimesh.routing import MeshReply

    class DenyV3:
        calls = 0

        async def check(self, ex):
            DenyV3.calls += 1
            if ex.path.startswith("/v3"):
                return MeshReply(403, "UAEX", "PERMISSION_DENIED:deny.denier.default:Not allowed")
            return None

    log: list = []
    proxy = InboundProxy(mesh.addrs["reviews-v1"], rng=random.Random(3), pool=UpstreamPool(),
                         access_log=AccessLog(sink=log.append), service="reviews")
    proxy.policy = DenyV3()
    addr = await nursery.start(HttpServer("inbound", proxy).serve, "127.0.9.54", 0)
    assert (await http_request(addr, target="/v1")).status == 200
    r = await http_request(addr, target="/v3/x")
    assert (r.status, r.body) == (403, b"PERMISSION_DENIED:deny.denier.default:Not allowed\n")
    assert r.headers["x-trimesh-response-flags"] == "UAEX"
    assert DenyV3.calls == 2 and [e["status"] for e in log] == [200, 403]
    assert log[-1]["flags"] == "UAEX" and mesh.upstreams["reviews-v1"].statistics()["served"] == 1
    nursery.cancel_scope.cancel()
