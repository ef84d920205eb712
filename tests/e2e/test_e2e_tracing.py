"""Tracing and metrics across real sidecar processes (127.0.180.100+): ``trimesh run sidecar
--zipkin-address`` sends a CLIENT span from the caller's sidecar and a SERVER span from the
callee's to an in-test Zipkin v2 collector, one trace, parent linked; ``x-b3-sampled: 0`` sends
none; every sidecar's ``/metrics`` passes ``promtool check metrics`` and counts the request with
Istio's labels."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import trio
import yaml
from e2e_fleet import require_sidecar
from procs import free_port, spawn, trimesh_command

from tests.conftest import require_tool
from tests.proxy.conftest import http_request
from tests.telemetry.test_metrics import find
from tests.telemetry.zipkin_collector import ZipkinCollector

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CALLER, CALLEE, APP, COLLECTOR = (f"127.0.180.{i}" for i in (101, 102, 103, 104))


async def wait_ready(admin: tuple[str, int], proc, timeout: float = 20.0) -> None:
    with trio.move_on_after(timeout):
        while True:
            assert proc.alive(), proc.log_tail()
            try:
                if (await http_request(admin, "GET", "/ready", host="x")).status == 200:
                    return
            except OSError:
                pass
            await trio.sleep(0.1)
    raise AssertionError(f"{proc.name} not ready:\n{proc.log_tail()}")


@pytest.fixture
async def pair(nursery, tmp_path):
    require_sidecar()
    zipkin = ZipkinCollector()
    await nursery.start(zipkin.serve, COLLECTOR)
    app_port, callee_port = free_port(APP), free_port(CALLEE)
    procs = [spawn("details-app", [sys.executable, "-m", "trimesh.testing.upstream", "--address",
                                   APP, "--port", str(app_port), "--name", "details-v1"],
                   tmp_path)]
    registry = tmp_path / "registry.yaml"
    registry.write_text(yaml.safe_dump([{"service": "details", "address": CALLEE,
                                         "port": callee_port, "labels": {"version": "v1"}}]))
    admins, proxy = {}, None
    try:
        for name, address, port, app in (("details", CALLEE, callee_port, (APP, app_port)),
                                         ("productpage", CALLER, free_port(CALLER),
                                          (CALLER, free_port(CALLER)))):
            admins[name] = (address, free_port(address))
            proxy_port = free_port(address)
            proxy = proxy_port if name == "productpage" else proxy
            procs.append(spawn(name, trimesh_command() + [
                "run", "sidecar", "--service", name, "--version", "v1", "--port", str(port),
                "--app-address", app[0], "--app-port", str(app[1]), "--address", address,
                "--proxy-port", str(proxy_port), "--admin-port", str(admins[name][1]),
                "--control", "none", "--registry", str(registry), "--health-checks", "off",
                "--access-log", "off", "--drain-timeout", "1",
                "--zipkin-address", zipkin.address], tmp_path))
        for proc in procs[1:]:
            await wait_ready(admins[proc.name], proc)
        yield {"zipkin": zipkin, "proxy": (CALLER, proxy), "admins": admins}
    finally:
        for proc in reversed(procs):
            proc.stop()


async def test_spans_from_two_processes_and_their_metrics(pair):
    zipkin = pair["zipkin"]
    r = await http_request(pair["proxy"], "GET", "/details/0", host="details:9080")
    assert r.status == 200, r.body
    seen = json.loads(r.body)["headers"]
    spans = await zipkin.wait_spans(2)
    assert sorted(s["kind"] for s in spans) == ["CLIENT", "SERVER"]
    client = next(s for s in spans if s["kind"] == "CLIENT")
    server = next(s for s in spans if s["kind"] == "SERVER")
    assert client["traceId"] == server["traceId"] == seen["x-b3-traceid"]
    assert "parentId" not in client and server["parentId"] == client["id"]
    assert seen["x-b3-spanid"] == server["id"] and seen["x-b3-parentspanid"] == client["id"]
    promtool = require_tool("promtool")
    with trio.move_on_after(10):
        while True:  # the records reach the metrics at the next flush (0.5 s)
            texts = {n: (await http_request(a, "GET", "/metrics", host="x")).body.decode()
                     for n, a in pair["admins"].items()}
            if find(texts["details"], "istio_request_count_total", reporter="destination"):
                break
            await trio.sleep(0.2)
    labels = dict(destination_service="details.default.svc.cluster.local",
                  destination_version="v1", response_code="200")
    assert find(texts["details"], "istio_request_count_total", reporter="destination",
                **labels) == [1.0]
    assert find(texts["productpage"], "istio_request_count_total", reporter="source",
                source_service="productpage.default.svc.cluster.local", source_version="v1",
                **labels) == [1.0]
    for name, text in texts.items():
        out = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                             text=True, timeout=30)
        assert out.returncode == 0, (name, out.stdout + out.stderr)


async def test_sampled_zero_sends_no_span(pair):
    zipkin = pair["zipkin"]
    r = await http_request(pair["proxy"], "GET", "/details/0", host="details:9080",
                           headers=[("x-b3-sampled", "0")])
    assert r.status == 200
    seen = json.loads(r.body)["headers"]
    assert seen["x-b3-sampled"] == "0" and len(seen["x-b3-traceid"]) == 16
    await zipkin.wait_spans(1, timeout=3.0)
    assert zipkin.spans == []
