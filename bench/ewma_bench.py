"""Latency-aware balancing: ROUND_ROBIN vs. PEAK_EWMA with one of three instances slowed 10x.

    python bench/ewma_bench.py [--requests 900] [--connections 3] [--delay 0.02] [--slow 10]

For each balancer: three fake upstreams (``trimesh.testing.FakeUpstream``, in this process) answer
after ``--delay`` seconds; a ``trimesh run sidecar`` process routes ``reviews`` to them with a
DestinationPolicy naming the balancer; the fortio-like load client (``examples.loadgen``) sends
``--requests`` GETs over ``--connections`` keep-alive connections through the sidecar, first with
every instance healthy, then (after 30 warm-up requests) with instance 2 answering ``--slow`` times
slower. Prints each instance's share of the measured requests and the callers' p50/p99.

What to expect (docs/resilience.md §7): round robin sends the slow instance a third of the
requests and its p99 is the slow instance's latency; PEAK_EWMA sends it well under 10 % and keeps
p99 within 2x the all-healthy p99. Figures vary with the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import trio
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout (trimesh)
from trimesh.samples._client import FetchError, Proxy, fetch
from trimesh.samples.loadgen._load import run_load
from trimesh.testing import FakeUpstream, serve_upstream

ADDRESSES = ("127.0.14.2", "127.0.14.3", "127.0.14.4")  # the instances (port 9080)
SIDECAR_ADDRESS = "127.0.14.1"
POLICY = """\
apiVersion: config.istio.io/v1alpha2
kind: DestinationPolicy
metadata:
  name: reviews-lb
spec:
  destination:
    name: reviews
  loadBalancing:
    name: {balancer}
"""


class CountingUpstream(FakeUpstream):
    """Counts the requests it answers (``hits``) without recording them."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.record = False
        self.hits = 0

    def plan(self, headers):
        self.hits += 1
        return super().plan(headers)


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


async def _wait_ready(admin: str, proc: trio.Process) -> None:
    with trio.fail_after(30):
        while True:
            if proc.returncode is not None:
                raise SystemExit(f"the sidecar exited with status {proc.returncode}")
            try:
                if (await fetch(f"{admin}/ready", timeout=2)).status == 200:
                    return
            except (OSError, FetchError):  # not listening yet
                pass
            await trio.sleep(0.1)


async def run_one(balancer: str, args: argparse.Namespace, workdir: Path) -> dict:
    ups = [CountingUpstream(name=f"reviews-{i}", delay=args.delay) for i in range(3)]
    registry = workdir / "registry.yaml"
    registry.write_text(yaml.safe_dump([
        {"service": "reviews", "address": a, "port": 9080, "labels": {"version": "v1"}}
        for a in ADDRESSES]))
    rules = workdir / "rules.yaml"
    rules.write_text(POLICY.format(balancer=balancer))
    proxy_port, admin_port = _free_port(SIDECAR_ADDRESS), _free_port(SIDECAR_ADDRESS)
    argv = [str(Path(sys.executable).with_name("trimesh")), "run", "sidecar", "--service", "bench",
            "--port", str(_free_port(SIDECAR_ADDRESS)), "--app-port", "1",
            "--address", SIDECAR_ADDRESS, "--proxy-port", str(proxy_port),
            "--admin-port", str(admin_port), "--control", "none", "--registry", str(registry),
            "--config", str(rules), "--access-log", "off", "--health-checks", "off"]
    async with trio.open_nursery() as nursery:
        for up, addr in zip(ups, ADDRESSES):
            await nursery.start(serve_upstream, up, addr, 9080)
        proc = await trio.lowlevel.open_process(argv, stdout=subprocess.DEVNULL,
                                                stderr=subprocess.DEVNULL)
        try:
            await _wait_ready(f"http://{SIDECAR_ADDRESS}:{admin_port}", proc)
            proxy = Proxy(SIDECAR_ADDRESS, proxy_port)
            url = "http://reviews:9080/"
            healthy = await run_load(url, connections=args.connections, calls=args.requests // 3,
                                     proxy=proxy)
            ups[2].delay = args.delay * args.slow
            await run_load(url, connections=args.connections, calls=30, proxy=proxy)
            before = [u.hits for u in ups]
            skewed = await run_load(url, connections=args.connections, calls=args.requests,
                                    proxy=proxy)
            shares = [u.hits - b for u, b in zip(ups, before)]
        finally:
            proc.terminate()
            with trio.move_on_after(10):
                await proc.wait()
            if proc.returncode is None:
                proc.kill()
            nursery.cancel_scope.cancel()
    return {"balancer": balancer, "shares": shares, "errors": skewed.calls - skewed.codes[200],
            "p50_healthy": healthy.percentile(50), "p99_healthy": healthy.percentile(99),
            "p50": skewed.percentile(50), "p99": skewed.percentile(99)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=900)
    parser.add_argument("--connections", type=int, default=3)
    parser.add_argument("--delay", type=float, default=0.02, help="seconds each instance takes")
    parser.add_argument("--slow", type=float, default=10.0, help="slow-down of instance 2")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    with tempfile.TemporaryDirectory() as tmp:
        for balancer in ("ROUND_ROBIN", "PEAK_EWMA"):
            r = trio.run(run_one, balancer, args, Path(tmp))
            total = sum(r["shares"])
            print(f"{balancer:12} shares {r['shares']} (slow: {100 * r['shares'][2] / total:.1f} %)"
                  f"  p50/p99 healthy {r['p50_healthy'] * 1e3:.1f}/{r['p99_healthy'] * 1e3:.1f} ms"
                  f"  with a slow instance {r['p50'] * 1e3:.1f}/{r['p99'] * 1e3:.1f} ms"
                  f"  errors {r['errors']}")


if __name__ == "__main__":
    main()
