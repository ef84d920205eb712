"""The docs' circuit-breaking task (traffic-tasks.md §8) with real processes: the httpbin-like
service (``python -m trimesh.samples.httpbin``), a sidecar in front of the caller loaded with
``httpbin-circuit-breaker.yaml`` and the ``httpbin-default-v1`` route rule, and the fortio-like
``python -m trimesh.samples.loadgen`` going through the sidecar as ``HTTP_PROXY``."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import trio
from resilience_testkit import (
    instance,
    next_address,
    port_open,
    spawn,
    start_sidecar,
    wait_for,
)

from trimesh.samples import SAMPLES_DIR

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # a real sidecar process, seconds of load

EXAMPLES = SAMPLES_DIR / "httpbin"  # the docs' httpbin rule files, package data
CLUSTER = "httpbin.default.svc.cluster.local|version=v1"
CODE_LINE = re.compile(r"^Code (-?\d+) : (\d+) \(")


def fortio(proxy_url: str, connections: int, calls: int) -> dict[int, int]:
    """``fortio load -c C -qps 0 -n N -loglevel Warning http://httpbin:8000/get`` (the task's
    command) with our loadgen; returns its code histogram."""
    out = subprocess.run(
        [sys.executable, "-m", "trimesh.samples.loadgen", "load", "-c", str(connections), "-qps", "0",
         "-n", str(calls), "-loglevel", "Warning", "http://httpbin:8000/get"],
        check=False, capture_output=True, text=True, timeout=60,
        env={**os.environ, "HTTP_PROXY": proxy_url, "http_proxy": proxy_url, "NO_PROXY": ""})
    assert out.returncode == 0, out.stderr
    codes = {}
    for line in out.stdout.splitlines():
        m = CODE_LINE.match(line)
        if m:
            codes[int(m.group(1))] = int(m.group(2))
    assert sum(codes.values()) == calls, out.stdout
    return codes


async def test_docs_circuit_breaking_task(tmp_path):
    address = next_address()
    httpbin = spawn("httpbin", [sys.executable, "-m", "trimesh.samples.httpbin", "--address", address,
                                "--port", "8000"], tmp_path)
    sidecar = None
    try:
        await wait_for(lambda: port_open(address, 8000), 30, "httpbin's port", httpbin)
        sidecar = await start_sidecar(
            tmp_path, [instance("httpbin", address, 8000)],
            [EXAMPLES / "routerules" / "httpbin-v1.yaml",
             EXAMPLES / "destinationpolicies" / "httpbin-circuit-breaker.yaml"])
        proxy_url = f"http://{sidecar.address}:{sidecar.proxy_port}"
        # The task's first call (fortio -curl): one request goes through.
        assert (await sidecar.get("http://httpbin:8000/get")).status == 200

        two = await trio.to_thread.run_sync(fortio, proxy_url, 2, 20)
        stats = await sidecar.cluster_stats(CLUSTER)
        overflow_2 = stats["upstream_rq_pending_overflow"]
        assert set(two) <= {200, 503}, two
        assert two.get(200, 0) >= 15, f"2 connections x 20: mostly 200s expected, got {two}"
        assert overflow_2 == two.get(503, 0)

        three = await trio.to_thread.run_sync(fortio, proxy_url, 3, 30)
        stats = (await sidecar.admin("/stats"))["clusters"][CLUSTER]  # the docs grep /stats
        clusters_view = await sidecar.cluster_stats(CLUSTER)
        assert (stats["upstream_rq_pending_overflow"]
                == clusters_view["upstream_rq_pending_overflow"])
        assert set(three) <= {200, 503}, three
        refused = three.get(503, 0)
        # The docs saw 11 of 30 (a third): one caller in three finds both the connection and the
        # pending slot taken.
        assert 5 <= refused <= 18, f"3 connections x 30: about a third 503s expected, got {three}"
        # The overflow counter is cumulative (the docs' 12 = 1 + 11) and counts exactly the 503s.
        assert stats["upstream_rq_pending_overflow"] == overflow_2 + refused
        assert stats["upstream_rq_pending_overflow"] == two.get(503, 0) + refused
        # Overflow is answered at once by the sidecar: 503, x-envoy-overloaded, flag UO.
        answers = []

        async def slow_call():
            answers.append(await sidecar.get("http://httpbin:8000/delay/0.5"))
        async with trio.open_nursery() as calls:
            for _ in range(3):
                calls.start_soon(slow_call)
        refused_now = [r for r in answers if r.status == 503]
        assert sorted(r.status for r in answers) == [200, 200, 503]
        assert refused_now[0].header("x-envoy-overloaded") == "true"
        assert refused_now[0].header("x-trimesh-response-flags") == "UO"
        print(f"2x20: {two}  3x30: {three}  overflow counter: "
              f"{stats['upstream_rq_pending_overflow']}")
    finally:
        if sidecar is not None:
            sidecar.stop()
        httpbin.stop()
