"""start_in_thread: a ready outbound proxy in a background thread, HTTP_PROXY for sync clients,
errors at start, stop restores the environment; the app environment a sidecar builds."""

from __future__ import annotations

import os
import threading
import urllib.error
import urllib.request

import pytest
import trio

import trimesh
from trimesh.config import load_text, make_instance
from trimesh.errors import ConfigError
from trimesh.sidecar._sidecar import app_environment
from trimesh.testing import FakeUpstream, serve_upstream

RULE = load_text("""apiVersion: config.istio.io/v1alpha2
kind: RouteRule
metadata: {name: details-v2}
spec:
  destination: {name: details}
  route:
  - labels: {version: v2}
""")


@pytest.fixture
def upstreams():
    """Two fake 'details' instances served by a Trio loop in a thread of their own."""
    ports = {}
    ready = threading.Event()
    stop = threading.Event()

    async def serve():
        async with trio.open_nursery() as nursery:
            for version, addr in (("v1", "127.0.14.1"), ("v2", "127.0.14.2")):
                up = FakeUpstream(name=f"details-{version}", service="details", version=version)
                ports[version] = (addr, await nursery.start(serve_upstream, up, addr, 0))
            ready.set()
            while not stop.is_set():
                await trio.sleep(0.05)
            nursery.cancel_scope.cancel()

    thread = threading.Thread(target=trio.run, args=(serve,))
    thread.start()
    assert ready.wait(10)
    yield [make_instance("details", a, p, labels={"version": v}) for v, (a, p) in ports.items()]
    stop.set()
    thread.join(10)


def test_sync_client_is_routed_through_the_thread(upstreams, monkeypatch):
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    before = os.environ.get("HTTP_PROXY")
    mesh = trimesh.start_in_thread(service="productpage", config=RULE, instances=upstreams,
                                   set_env=True)
    try:
        assert mesh.running and mesh.proxy_url.startswith("http://127.0.0.1:")
        assert os.environ["HTTP_PROXY"] == mesh.proxy_url == os.environ["http_proxy"]
        assert "127.0.0.1" in os.environ["NO_PROXY"].split(",")
        opener = urllib.request.build_opener()  # reads the proxy from the environment now
        for _ in range(3):
            with opener.open("http://details:9080/details/0", timeout=10) as r:
                assert r.status == 200 and r.headers["x-upstream-name"] == "details-v2"
        with pytest.raises(urllib.error.HTTPError) as info:
            opener.open("http://unknown:9080/", timeout=10)
        assert info.value.code == 404
        assert info.value.headers["x-trimesh-response-flags"] == "NR"
    finally:
        mesh.stop()
    assert not mesh.running
    assert os.environ.get("HTTP_PROXY") == before
    mesh.stop()  # idempotent


def test_a_start_error_is_raised_in_the_caller(tmp_path):
    bad = tmp_path / "registry.yaml"
    bad.write_text("- {service: a, address: 10.0.0.1, port: 99999}\n")
    with pytest.raises(ConfigError, match=r"\$\[0\]\.port"):
        trimesh.start_in_thread(service="productpage", registry=str(bad))


def test_app_environment_points_at_the_proxy_and_exempts_local(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "internal.example")
    env = app_environment("http://127.0.0.5:15001", ["127.0.0.5", "127.0.0.1"])
    assert env["HTTP_PROXY"] == env["http_proxy"] == "http://127.0.0.5:15001"
    assert env["NO_PROXY"] == env["no_proxy"] == \
        "internal.example,localhost,127.0.0.1,::1,127.0.0.5"
