#!/usr/bin/env python3
"""The outbound proxy's Python work per request, without sockets: a steady number for A/B.

On a shared VM the sidecar's CPU per request (bench/proxy_profile.py) drifts by ±10 µs between
runs, more than most single optimisations save. This benchmark takes the kernel and the other
processes out: the real ``HttpServer`` + ``OutboundProxy`` + ``UpstreamPool`` + ``AccessLog`` (to a
file) + a compiled route table with one rule run one keep-alive connection whose streams are
in-memory fakes — the client stream hands over one canned request per read, the upstream stream
answers each request with a canned nginx-like response. What is left is the Python per request
(codec, routing, resilience bookkeeping, access log, the handler) plus Trio checkpoints; the
socket syscalls and epoll waits of a real run (PERF.md: 7–13 µs kernel, plus Trio's wait
machinery) come on top.

    python bench/proxy_micro.py --tree base=/tmp/base --tree new= --requests 20000 --rounds 5

Each (tree, round) runs in a fresh interpreter (``PYTHONPATH=DIR``), alternating; the report
gives the median and min–max of CPU µs per request (``time.process_time``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

CHILD = r'''
import logging, random, sys, time
import trio
from trimesh.config import Snapshot, load_text, make_instance
try:
    from trimesh.telemetry import AccessLog
except ImportError:  # trees before the pipeline (issue 10) kept it in trimesh.proxy
    from trimesh.proxy import AccessLog
from trimesh.proxy import HttpServer, OutboundProxy, UpstreamPool
from trimesh.proxy import _io, _pool
from trimesh.routing import SourceIdentity, compile_routes

N = int(sys.argv[1])
REQ = b"GET / HTTP/1.1\r\nHost: backend:9080\r\n\r\n"
RESP = (b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Thu, 26 Nov 2026 11:00:00 GMT\r\n"
        b"Content-Type: application/json\r\nContent-Length: 19\r\nConnection: keep-alive\r\n\r\n"
        b'{"name": "backend"}')

class FakeSock:
    def close(self): pass
    def recv(self, n, flags=0): raise BlockingIOError

class Client:
    sock = FakeSock()
    def __init__(self): self.left = N; self.sent = 0
    async def receive_some(self, n=65536):
        if self.left == 0: return b""
        self.left -= 1
        return REQ
    wait_and_receive = receive_some
    async def send_all(self, data): self.sent += 1
    def close(self): pass

class Upstream:
    sock = FakeSock()
    def __init__(self): self.pending = 0
    async def receive_some(self, n=65536):
        self.pending -= 1
        return RESP
    wait_and_receive = receive_some
    async def send_all(self, data): self.pending += 1
    def close(self): pass

RULE = """apiVersion: config.istio.io/v1alpha2
kind: RouteRule
metadata: {name: backend-default, namespace: default}
spec:
  destination: {name: backend}
  precedence: 1
  route:
  - labels: {version: v1}
"""

async def main():
    client = Client()
    _io.make_stream = lambda sock: client
    async def connect(host, port): return Upstream()
    _io.connect = connect
    logger = logging.getLogger("trimesh.access")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(logging.FileHandler(os.devnull))
    snap = Snapshot(load_text(RULE), [make_instance("backend", "127.0.0.2", 9080,
                                                    labels={"version": "v1"})])
    table = compile_routes(snap, source=SourceIdentity(service="bench"))
    proxy = OutboundProxy(table, rng=random.Random(1), pool=UpstreamPool(),
                          access_log=make_access_log(AccessLog(logger)))
    configure(proxy)
    server = HttpServer("outbound", proxy)
    t0 = time.process_time()
    await server._serve_connection(None, ("127.0.0.1", 40000))
    finish(proxy)  # batch work a variant does off the request path counts too
    t1 = time.process_time()
    proxy.access_log.flush()
    assert client.sent == N and proxy.requests == N, (client.sent, proxy.requests)
    print((t1 - t0) / N * 1e6)

def make_access_log(access_log): return access_log
def configure(proxy): pass
def finish(proxy): pass

import os
# VARIANT: a benchmark that imports this CHILD redefines the three hooks above here
trio.run(main)
'''


def child(variant: str = "") -> str:
    """The CHILD program with ``variant`` (code redefining ``make_access_log``, ``configure``
    and/or ``finish``) inserted before it runs."""
    return CHILD.replace("# VARIANT:", variant + "\n# VARIANT:", 1)


def alternate(runs: list[tuple[str, list[str], dict[str, str]]], rounds: int,
              core: int | None = None) -> dict[str, list[float]]:
    """Run each ``(name, argv, env)`` once per round in a fresh interpreter, the order reversed
    every other round; each run prints its µs per request last. Returns name → values."""
    results: dict[str, list[float]] = {name: [] for name, _, _ in runs}
    for r in range(rounds):
        for name, argv, env in (runs if r % 2 == 0 else list(reversed(runs))):
            if core is not None:
                argv = ["taskset", "-c", str(core), *argv]
            out = subprocess.run(argv, env=env, capture_output=True, text=True)
            if out.returncode:
                sys.exit(f"{name}: {out.stderr[-2000:]}")
            results[name].append(float(out.stdout.strip().splitlines()[-1]))
    return results


def report(results: dict[str, list[float]]) -> None:
    for name, vals in results.items():
        print(f"{name:10} {statistics.median(vals):6.2f} ({min(vals):.2f}–{max(vals):.2f})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tree", action="append", default=[], metavar="NAME=DIR")
    p.add_argument("--requests", type=int, default=20000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--core", type=int, default=None, help="pin to this core (taskset)")
    args = p.parse_args()
    trees = [t.split("=", 1) for t in (args.tree or ["installed="])]
    runs = []
    for name, tree in trees:
        env = dict(os.environ)
        if tree:
            env["PYTHONPATH"] = tree
        runs.append((name, [sys.executable, "-c", CHILD, str(args.requests)], env))
    results = alternate(runs, args.rounds, args.core)
    print(f"{args.requests} requests per run, {args.rounds} rounds alternating; "
          "Python CPU µs per request (no sockets)")
    report(results)


if __name__ == "__main__":
    main()
