"""CPU per request: ``trimesh.open_mesh`` in-process vs. the same call through a sidecar process.

    python bench/embed_bench.py [--requests 3000] [--warmup 300]

Both paths send the same sequential GET to the same upstream (a fake upstream process on
127.0.13.2:9080, its CPU is not counted) through the same route (a RouteRule to v1):

- embedded: ``await mesh.request(...)`` in this process; cost = this process's CPU time;
- sidecar: this process sends the request on a keep-alive connection to a ``trimesh run sidecar``
  process's outbound listener (the ``HTTP_PROXY`` convention, absolute-form target) and reads the
  response; cost = this process's CPU time + the sidecar process's (``/proc/PID/stat``
  utime+stime, 10 ms ticks, so runs are long enough to make that negligible).

Prints CPU µs per request for each and the ratio. Figures vary with the machine and its load;
run it on an idle machine, and more than once.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

import trio

import trimesh
from trimesh.proxy import ResponseHead, ResponseParser

UPSTREAM = ("127.0.13.2", 9080)
SIDECAR_ADDRESS = "127.0.13.3"
READY = re.compile(r"outbound ([\d.]+):(\d+)")
RULE = """apiVersion: config.istio.io/v1alpha2
kind: RouteRule
metadata: {name: reviews-v1}
spec:
  destination: {name: reviews}
  route:
  - labels: {version: v1}
"""
URL = "http://reviews:9080/reviews/0"
TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


async def bench_embedded(registry: str, rules: str, n: int, warmup: int) -> float:
    async with trimesh.open_mesh(service="productpage", registry=registry,
                                 config=[rules]) as mesh:
        for _ in range(warmup):
            r = await mesh.request("GET", URL)
            assert r.status == 200, r
        t0 = time.process_time()
        for _ in range(n):
            await mesh.request("GET", URL)
        return (time.process_time() - t0) / n * 1e6


async def bench_sidecar(outbound: tuple[str, int], pid: int, n: int, warmup: int) -> float:
    stream = await trio.open_tcp_stream(*outbound)
    request = f"GET {URL} HTTP/1.1\r\nhost: reviews:9080\r\n\r\n".encode()
    parser = ResponseParser()

    async def one() -> int:
        await stream.send_all(request)
        parser.expect()
        status = 0
        while True:
            while parser.events:
                _, ev = parser.events.popleft()
                if isinstance(ev, ResponseHead):
                    status = ev.status
                elif ev is None:
                    return status
            parser.feed(await stream.receive_some(65536))

    async with stream:
        for _ in range(warmup):
            assert await one() == 200
        c0, s0 = time.process_time(), proc_cpu(pid)
        for _ in range(n):
            await one()
        client, side = time.process_time() - c0, proc_cpu(pid) - s0
    return (client + side) / n * 1e6, client / n * 1e6, side / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=300)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="embed-bench-")
    registry = os.path.join(tmp, "registry.yaml")
    rules = os.path.join(tmp, "rules.yaml")
    with open(registry, "w") as f:
        f.write(f"- {{service: reviews, address: {UPSTREAM[0]}, port: {UPSTREAM[1]}, "
                "labels: {version: v1}}\n")
    with open(rules, "w") as f:
        f.write(RULE)
    up = subprocess.Popen([sys.executable, "-m", "trimesh.testing.upstream", "--address",
                           UPSTREAM[0], "--port", str(UPSTREAM[1]), "--name", "reviews-v1",
                           "--no-record"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    side = subprocess.Popen([sys.executable, "-c", "from trimesh.cli import main; main()", "run",
                             "sidecar", "--service",
                             "productpage", "--port", "0", "--app-port", "1", "--address",
                             SIDECAR_ADDRESS, "--proxy-port", "0", "--admin-port", "0",
                             "--control", "none", "--access-log", "off", "--registry", registry,
                             "--config", rules, "--health-checks", "off"],
                            stderr=subprocess.PIPE, text=True)
    try:
        outbound = None
        deadline = time.monotonic() + 30
        while outbound is None and time.monotonic() < deadline:
            line = side.stderr.readline()
            m = READY.search(line) if "ready" in line else None
            if m:
                outbound = (m.group(1), int(m.group(2)))
        if outbound is None:
            raise SystemExit("the sidecar did not get ready")
        time.sleep(0.5)  # the upstream process is listening by now too
        import logging
        logging.getLogger("trimesh.access").disabled = True
        embedded = trio.run(bench_embedded, registry, rules, args.requests, args.warmup)
        total, client, sidecar = trio.run(bench_sidecar, outbound, side.pid, args.requests,
                                          args.warmup)
        print(f"requests per path: {args.requests} (sequential, after {args.warmup} warm-up)")
        print(f"open_mesh in-process : {embedded:7.1f} CPU µs/request")
        print(f"through a sidecar    : {total:7.1f} CPU µs/request "
              f"(client {client:.1f} + sidecar process {sidecar:.1f})")
        print(f"ratio                : {total / embedded:.2f}x")
    finally:
        for p in (side, up):
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
