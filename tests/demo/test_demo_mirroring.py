"""The mirroring task (guides-reference.md §8, acceptance 30–34) end to end: httpbin v1 and v2 and
a sleep client, each behind its sidecar; requests go from the sleep instance's outbound proxy (its
``HTTP_PROXY``, as ``curl http://httpbin:8000/headers`` inside the sleep pod would), rules through
``trimesh create|delete``, and what each httpbin logged is read from its own access log."""

from __future__ import annotations

import http.client
import json
import time
import uuid

import pytest
from demo_testkit import start_mesh, stop_mesh, trimesh_cli

from trimesh.demo import SLEEP
from trimesh.samples import HTTPBIN

N = 10
LOG_WAIT = 5.0  # seconds for a fire-and-forget copy to land and be logged


@pytest.fixture(scope="module")
def httpbin_mesh(tmp_path_factory):
    mesh = start_mesh([*HTTPBIN, SLEEP], "127.0.13", tmp_path_factory.mktemp("httpbin"))
    yield mesh
    stop_mesh(mesh)


def curl_from_sleep(mesh, path: str) -> tuple[int, dict]:
    """``curl http://httpbin:8000<path>`` through the sleep instance's HTTP_PROXY."""
    sleep = mesh.plan.member("sleep")
    conn = http.client.HTTPConnection(sleep.address, sleep.proxy_port, timeout=10)
    try:
        conn.request("GET", f"http://httpbin:8000{path}")
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def logged(mesh, version: str, tag: str) -> int:
    """How many requests carrying ``tag`` httpbin ``version`` logged (its gunicorn-style lines)."""
    member = mesh.plan.member("httpbin", version)
    return sum(1 for line in mesh.app_log(member).splitlines()
               if '"GET /headers?probe=' + tag in line)


def wait_logged(mesh, version: str, tag: str, count: int) -> int:
    deadline = time.monotonic() + LOG_WAIT
    while logged(mesh, version, tag) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return logged(mesh, version, tag)


def test_default_route_then_mirror_to_v2(httpbin_mesh):
    mesh = httpbin_mesh
    trimesh_cli(mesh, "create", "-f", "samples/httpbin/routerules/httpbin-v1.yaml")

    before = uuid.uuid4().hex[:12]
    for i in range(N):
        status, body = curl_from_sleep(mesh, f"/headers?probe={before}-{i}")
        assert status == 200 and body["headers"]["Host"] == "httpbin:8000"
    assert wait_logged(mesh, "v1", before, N) == N
    time.sleep(0.6)  # v2 must stay silent (a copy would have landed by now)
    assert logged(mesh, "v2", before) == 0  # acceptance 30

    out = trimesh_cli(mesh, "create", "-f",
                      "samples/httpbin/routerules/mirror-traffic-to-httbin-v2.yaml")
    assert "mirror-traffic-to-httbin-v2" in out.stdout
    tag = uuid.uuid4().hex[:12]
    for i in range(N):
        status, body = curl_from_sleep(mesh, f"/headers?probe={tag}-{i}")
        assert status == 200 and body["headers"]["Host"] == "httpbin:8000"  # v1's answer
    assert wait_logged(mesh, "v1", tag, N) == N  # acceptance 31: once by v1 ...
    assert wait_logged(mesh, "v2", tag, N) == N  # ... and once by v2
    # acceptance 32: the copy's Host carries -shadow (on the host part, before the port)
    v2 = mesh.plan.member("httpbin", "v2")
    deadline = time.monotonic() + LOG_WAIT
    shadows: list = []
    while len(shadows) < N and time.monotonic() < deadline:
        shadows = [r for r in mesh.access_records(v2)
                   if r["direction"] == "inbound" and tag in r["path"]]
        time.sleep(0.1)
    assert len(shadows) == N
    assert {r["authority"] for r in shadows} == {"httpbin-shadow:8000"}

    # acceptance 34: deleting the mirror rule stops the copies
    trimesh_cli(mesh, "delete", "routerule", "mirror-traffic-to-httbin-v2")
    after = uuid.uuid4().hex[:12]
    for i in range(N):
        assert curl_from_sleep(mesh, f"/headers?probe={after}-{i}")[0] == 200
    assert wait_logged(mesh, "v1", after, N) == N
    time.sleep(0.6)
    assert logged(mesh, "v2", after) == 0
    trimesh_cli(mesh, "delete", "routerule", "httpbin-default-v1")
