"""open_mesh in process: routing by RouteRule, retries, timeouts, faults, streaming, telemetry,
all through the proxy's own handler with no socket between the app and the mesh."""

from __future__ import annotations

import pytest
import trio

import trimesh
from tests.docs_yaml import bookinfo
from tests.proxy.conftest import http_request
from trimesh.config import load_text, make_instance
from trimesh.errors import ConfigError
from trimesh.testing import FakeUpstream, serve_upstream

# the docs' request-routing task: every service to v1, jason to reviews v2
RULES = bookinfo("route-rule-all-v1.yaml", "route-rule-reviews-test-v2.yaml")


@pytest.fixture
async def reviews(nursery):
    v1 = FakeUpstream(name="reviews-v1", service="reviews", version="v1")
    v2 = FakeUpstream(name="reviews-v2", service="reviews", version="v2")
    p1 = await nursery.start(serve_upstream, v1, "127.0.11.1", 0)
    p2 = await nursery.start(serve_upstream, v2, "127.0.11.2", 0)
    return [make_instance("reviews", "127.0.11.1", p1, labels={"version": "v1"}),
            make_instance("reviews", "127.0.11.2", p2, labels={"version": "v2"})], (v1, v2)


async def test_requests_are_routed_by_route_rules(reviews):
    instances, (v1, _) = reviews
    async with trimesh.open_mesh(service="productpage", config=load_text(RULES),
                                 instances=instances, seed=1) as mesh:
        r = await mesh.request("GET", "http://reviews:9080/reviews/1")
        assert r.status == 200 and r.header("x-upstream-name") == "reviews-v1"
        r = await mesh.request("GET", "http://reviews:9080/reviews/1",
                               headers={"cookie": "user=jason"})
        assert r.header("x-upstream-name") == "reviews-v2"
        assert r.header("x-trimesh-attempts") == "1"
        r = await mesh.request("POST", "http://reviews:9080/echo", content=b"hello" * 1000)
        assert r.status == 200 and len(v1.requests) == 2
        assert v1.requests[-1]["body_size"] == 5000
        stats = mesh.statistics()
        assert stats["outbound"]["requests"] == 3 and mesh.requests == 3
        r = await mesh.request("GET", "http://nowhere:9080/")
        assert r.status == 404 and r.flags == "NR"


async def test_retries_timeouts_and_faults_come_from_the_proxy(reviews, autojump_clock):
    instances, _ = reviews
    rules = load_text("""apiVersion: config.istio.io/v1alpha2
kind: RouteRule
metadata: {name: reviews-resilient}
spec:
  destination: {name: reviews}
  route:
  - labels: {version: v1}
  httpReqTimeout: {simpleTimeout: {timeout: 1s}}
  httpReqRetries: {simpleRetry: {attempts: 3, perTryTimeout: 0.5s}}
---
apiVersion: config.istio.io/v1alpha2
kind: RouteRule
metadata: {name: ratings-abort}
spec:
  destination: {name: ratings}
  route:
  - labels: {}
  httpFault: {abort: {percent: 100, httpStatus: 418}}
""")
    ratings = make_instance("ratings", "127.0.11.3", 9)
    async with trimesh.open_mesh(service="productpage", config=rules,
                                 instances=[*instances, ratings]) as mesh:
        r = await mesh.request("GET", "http://reviews:9080/", headers={"x-upstream-fail": "2",
                                                                         "x-upstream-key": "k"})
        assert r.status == 200 and r.header("x-trimesh-attempts") == "3"
        r = await mesh.request("GET", "http://reviews:9080/", headers={"x-upstream-delay": "5"})
        assert r.status == 504 and "UT" in r.flags
        r = await mesh.request("GET", "http://ratings:9080/")
        assert r.status == 418 and r.flags == "FI"


async def test_route_timeout_without_per_try_is_a_504(reviews, autojump_clock):
    instances, _ = reviews
    rules = load_text("""apiVersion: config.istio.io/v1alpha2
kind: RouteRule
metadata: {name: reviews-timeout}
spec:
  destination: {name: reviews}
  route:
  - labels: {version: v1}
  httpReqTimeout: {simpleTimeout: {timeout: 0.5s}}
""")
    async with trimesh.open_mesh(service="productpage", config=rules,
                                 instances=instances) as mesh:
        start = trio.current_time()
        r = await mesh.request("GET", "http://reviews:9080/", headers={"x-upstream-delay": "3"})
        assert r.status == 504 and r.flags == "UT"
        assert trio.current_time() - start == pytest.approx(0.5, abs=0.01)
        r = await mesh.request("GET", "http://reviews:9080/")
        assert r.status == 200


async def _big_server(stream):
    """Answers every request with a 300 000-byte body written in 30 pieces."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += await stream.receive_some(65536)
    await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-length: 300000\r\n\r\n")
    try:
        for _ in range(30):
            await stream.send_all(b"y" * 10000)
            await trio.sleep(0.001)
    except trio.BrokenResourceError:
        pass  # the reader that leaves early (the test's last case) closed the connection
    await stream.aclose()


async def test_streaming_request_and_response(reviews, nursery):
    instances, (v1, _) = reviews
    listeners = await nursery.start(trio.serve_tcp, _big_server, 0, )
    big_port = listeners[0].socket.getsockname()[1]

    async def body():
        for _ in range(5):
            yield b"x" * 1000

    big = make_instance("big", "127.0.0.1", big_port)
    async with trimesh.open_mesh(service="productpage", instances=[instances[0], big]) as mesh:
        async with mesh.stream("POST", "http://reviews:9080/upload", content=body()) as resp:
            assert resp.status == 200
            data = await resp.aread()
        assert b"reviews-v1" in data and v1.requests[-1]["body_size"] == 5000
        sizes = []
        async with mesh.stream("GET", "http://big:80/") as resp:
            assert resp.header("content-length") == "300000"
            async for chunk in resp.aiter_bytes():
                sizes.append(len(chunk))
        assert sum(sizes) == 300000 and len(sizes) > 1  # it streamed, in pieces
        # a reader that leaves early abandons the rest without breaking the mesh
        async with mesh.stream("GET", "http://big:80/") as resp:
            async for chunk in resp.aiter_bytes():
                break
        r = await mesh.request("GET", "http://reviews:9080/after")
        assert r.status == 200


async def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="absolute URL"):
        async with trimesh.open_mesh(service="p") as mesh:
            await mesh.request("GET", "/relative")
    with pytest.raises(ConfigError, match=r"config\[0\]"):
        async with trimesh.open_mesh(service="p", config=[42]):
            pass


async def test_a_stream_whose_route_times_out_gets_the_504(reviews, autojump_clock):
    instances, _ = reviews
    rules = load_text("""apiVersion: config.istio.io/v1alpha2
kind: RouteRule
metadata: {name: reviews-timeout}
spec:
  destination: {name: reviews}
  route:
  - labels: {version: v1}
  httpReqTimeout: {simpleTimeout: {timeout: 0.5s}}
""")
    async with trimesh.open_mesh(service="productpage", config=rules, instances=instances,
                                 admin_port=0) as mesh:
        async with mesh.stream("GET", "http://reviews:9080/",
                               headers={"x-upstream-delay": "3"}) as resp:
            assert resp.status == 504 and resp.header("x-trimesh-response-flags") == "UT"
            assert await resp.aread() == b"upstream request timeout\n"
        admin = mesh.sidecar.addresses["admin"]
        assert (await http_request(admin, "GET", "/ready", host="x")).status == 200
        assert mesh.statistics()["outbound"]["flag_UT"] == 1


async def test_a_bad_gossip_seed_names_the_field():
    with pytest.raises(ConfigError, match="join"):
        async with trimesh.open_mesh(service="p", join=["not-an-address"]):
            pass
