#!/usr/bin/env python3
"""Paired A/B measurement of the sidecar's CPU per request, for comparing proxy designs.

bench/proxy_bench.py reports the mesh against direct and nginx; this script answers a narrower
question while a change is being made: *did this change cut the sidecar's CPU per request?* On a
shared 2-core VM req/s drifts with whatever else runs, so it measures CPU µs per request
(utime+stime from ``/proc/<pid>/stat`` ÷ requests, PERF.md) and pairs the variants in one run:

- each variant is a source tree (``--tree NAME=DIR``, DIR holding the ``trimesh`` package, put
  first on ``PYTHONPATH``; ``NAME=`` alone is the installed tree);
- one nginx backend (core 1), one outbound + one inbound sidecar per variant (core 0), each variant
  on its own loopback addresses;
- rounds run the variants in alternating order (A B, B A, ...) with ``wrk -t1 -c16`` on core 1;
  the report gives the median and min–max per variant, one hop (outbound only) and two hops;
- nginx as a peer proxy is measured in the same rounds as a yardstick;
- ``--pyspy FILE`` records the first variant's outbound sidecar with py-spy during one extra run
  (``--pyspy-format raw`` gives collapsed stacks for grep);
- ``--callgrind`` runs every variant's outbound sidecar under valgrind's callgrind instead and
  reports user-space *instructions* per request over one wrk run each (counting switched on after
  a warm-up): a number the machine's load does not move, for changes smaller than the CPU
  figures' spread (``perf stat`` cannot count instructions on these VMs). The CPU rounds are
  skipped (valgrind slows the sidecar ~50×).

    python bench/proxy_profile.py --tree base=/tmp/ab/base --tree new= --rounds 4
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import proxy_bench as pb  # noqa: E402  (the sibling benchmark: process helpers, nginx configs)

NET = "127.81.0"  # its own block: the resilience tests draw addresses from 127.79/16
BACKEND = (f"{NET}.2", 9080)
NGINX_PEER = (f"{NET}.5", 9080)
CPROFILE = ""  # --cprofile FILE: run the first variant's outbound sidecar under cProfile
CALLGRIND = False  # --callgrind: every variant's outbound sidecar under valgrind's callgrind


def start_variant(procs: pb.Processes, name: str, tree: str, index: int) -> dict:
    out_addr = f"{NET}.{10 + 2 * index}"
    in_addr = f"{NET}.{11 + 2 * index}"
    env = dict(os.environ)
    if tree:
        env["PYTHONPATH"] = tree + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    registry = [
        {"service": "backend", "namespace": "default", "address": BACKEND[0], "port": BACKEND[1],
         "labels": {"version": "v1"}},
        {"service": "backend-mesh", "namespace": "default", "address": in_addr, "port": 9080,
         "labels": {"version": "v1"}},
    ]
    started = {}
    for role, service, addr, app, reg in (
            ("in", "backend-mesh", in_addr, BACKEND, None),
            ("out", "bench-client", out_addr, (out_addr, 9), registry)):
        argv = pb.sidecar_argv(f"{service}-{name}", addr, 9080, app, procs.workdir, reg)
        argv[argv.index("--service") + 1] = service
        argv[argv.index("--config") + 1] = str(procs.workdir / f"{service}-{name}-config.yaml")
        if "--registry" in argv:
            argv[argv.index("--registry") + 1] = str(procs.workdir
                                                     / f"{service}-{name}-registry.yaml")
        if role == "out" and index == 0 and CPROFILE:
            argv = [sys.executable, "-m", "cProfile", "-o", CPROFILE, *argv]
        if role == "out" and CALLGRIND:
            if argv[0] != sys.executable:  # the console script: valgrind must see the binary
                argv = [*pb.PYTHON_TRIMESH, *argv[1:]]
            argv = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                    f"--callgrind-out-file={procs.workdir / f'{name}-callgrind.out'}", *argv]
        argv = ["taskset", "-c", str(pb.PROXY_CORE), *argv]
        log = procs.workdir / f"{name}-{role}.log"
        with open(log, "wb") as fh:
            popen = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, env=env,
                                     stdin=subprocess.DEVNULL, cwd=procs.workdir)
        proc = pb.Proc(f"{name}-{role}", popen, log)
        procs.procs.append(proc)
        pb.wait_for(lambda a=addr: httpx.get(f"http://{a}:{pb.ADMIN_PORT}/ready",
                                             timeout=2).status_code == 200, f"{name} {role}", proc)
        started[role] = proc
    return {"name": name, "out": started["out"], "in": started["in"], "addr": out_addr}


def wrk(addr: tuple[str, int], host: str, seconds: float, connections: int) -> int:
    argv = ["taskset", "-c", str(pb.LOAD_CORE), "wrk", "-t1", f"-c{connections}",
            f"-d{seconds:g}s", "-H", f"Host: {host}", f"http://{addr[0]}:{addr[1]}/"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if "requests in" in line:
            return int(line.split()[0])
    raise RuntimeError(f"no request count in wrk output:\n{out}")


def sys_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[12]) / pb.CLK_TCK


def measure(addr, host, pids, seconds, connections) -> tuple[float, float]:
    """(CPU µs per request, of which kernel µs)."""
    wrk(addr, host, 1, connections)  # warm-up: fill pools
    before = sum(pb.cpu_seconds(p) for p in pids)
    sys_before = sum(sys_seconds(p) for p in pids)
    n = wrk(addr, host, seconds, connections)
    after = sum(pb.cpu_seconds(p) for p in pids)
    sys_after = sum(sys_seconds(p) for p in pids)
    return (after - before) / n * 1e6, (sys_after - sys_before) / n * 1e6


def callgrind_instructions(variant: dict, seconds: float, connections: int) -> tuple[float, int]:
    """(instructions per request, requests) of ``variant``'s outbound sidecar (run under
    callgrind) over one wrk run, counting only while it runs."""
    pid = str(variant["out"].popen.pid)
    addr = (variant["addr"], pb.PROXY_PORT)
    wrk(addr, "backend:9080", 2, connections)  # warm-up: pools, caches, the first snapshot
    subprocess.run(["callgrind_control", "--zero", pid], check=True, capture_output=True)
    subprocess.run(["callgrind_control", "--instr=on", pid], check=True, capture_output=True)
    n = wrk(addr, "backend:9080", seconds, connections)
    subprocess.run(["callgrind_control", "--instr=off", pid], check=True, capture_output=True)
    subprocess.run(["callgrind_control", "--dump", pid], check=True, capture_output=True)
    total = 0
    for dump in variant["out"].log.parent.glob(f"{variant['name']}-callgrind.out*"):
        for line in dump.read_text(errors="replace").splitlines():
            if line.startswith("summary:") or line.startswith("totals:"):
                total = max(total, int(line.split()[1]))
    return total / n, n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tree", action="append", default=[], metavar="NAME=DIR")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--duration", type=float, default=2.0)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--no-two-hop", dest="two_hop", action="store_false")
    p.add_argument("--pyspy", type=Path)
    p.add_argument("--pyspy-format", default="raw")
    p.add_argument("--strace", action="store_true",
                   help="count the first variant's outbound syscalls (strace -c) in one extra run")
    p.add_argument("--cprofile", default="", metavar="FILE",
                   help="run the first variant's outbound sidecar under cProfile (stats in FILE)")
    p.add_argument("--callgrind", action="store_true",
                   help="instructions per request instead of CPU (module docstring)")
    p.add_argument("--callgrind-keep", type=Path, metavar="DIR",
                   help="with --callgrind: copy the dumps here (for callgrind_annotate)")
    args = p.parse_args()
    global CPROFILE, CALLGRIND
    CPROFILE = args.cprofile
    CALLGRIND = args.callgrind
    if CALLGRIND and shutil.which("valgrind") is None:
        sys.exit("--callgrind needs valgrind (apt-get install -y valgrind)")
    if CALLGRIND:
        pb.READY_TIMEOUT = 300.0  # an interpreter under valgrind starts in tens of seconds
    trees = [t.split("=", 1) for t in (args.tree or ["installed="])]
    with tempfile.TemporaryDirectory(prefix="trimesh-profile-") as tmp:
        workdir = Path(tmp)
        (workdir / "nginx-tmp").mkdir()
        procs = pb.Processes(workdir, True)
        pb.BACKEND, pb.NGINX_PEER = BACKEND, NGINX_PEER
        try:
            pb.start_backend(procs, "nginx")
            variants = [start_variant(procs, n, d, i) for i, (n, d) in enumerate(trees)]
            peer = pb.start_nginx_peer(procs)
            paths = []
            for v in variants:
                out = (v["addr"], pb.PROXY_PORT)
                pb.check_path(pb.Path_(v["name"], out, "backend:9080"))
                paths.append((f"{v['name']} 1-hop", out, "backend:9080", [v["out"].popen.pid]))
                if args.two_hop:
                    paths.append((f"{v['name']} 2-hop", out, "backend-mesh:9080",
                                  [v["out"].popen.pid, v["in"].popen.pid]))
            paths.append(("nginx", NGINX_PEER, "backend:9080", [peer.popen.pid]))
            results: dict[str, list[float]] = {name: [] for name, *_ in paths}
            if CALLGRIND:
                print(f"wrk -t1 -c{args.connections}, {args.duration:g} s per variant, outbound "
                      "sidecar under callgrind\n| variant | instructions per request | "
                      "requests |\n|---|---|---|")
                for v in variants:
                    per, n = callgrind_instructions(v, args.duration, args.connections)
                    print(f"| {v['name']} 1-hop | {per:,.0f} | {n} |", flush=True)
                    if args.callgrind_keep:
                        args.callgrind_keep.mkdir(parents=True, exist_ok=True)
                        for dump in workdir.glob(f"{v['name']}-callgrind.out*"):
                            shutil.copy(dump, args.callgrind_keep / dump.name)
                return
            for r in range(args.rounds):
                order = paths if r % 2 == 0 else list(reversed(paths))
                for name, addr, host, pids in order:
                    us, sys_us = measure(addr, host, pids, args.duration, args.connections)
                    results[name].append(us)
                    print(f"round {r + 1} {name:16} {us:6.1f} µs/req (kernel {sys_us:.1f})",
                          file=sys.stderr)
            if args.strace:
                v = variants[0]
                st = subprocess.Popen(["strace", "-c", "-f", "-p", str(v["out"].popen.pid)],
                                      stderr=subprocess.PIPE, text=True)
                time.sleep(0.5)
                n = wrk((v["addr"], pb.PROXY_PORT), "backend:9080", args.duration,
                        args.connections)
                st.send_signal(2)
                print(f"strace -c over {n} requests:\n{st.communicate()[1]}")
            if args.pyspy:
                v = variants[0]
                spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record",
                                        "-p", str(v["out"].popen.pid), "-o", str(args.pyspy),
                                        "-f", args.pyspy_format, "-d", str(int(args.duration) + 2),
                                        "-r", "500", "--nonblocking"])
                time.sleep(1.0)
                wrk((v["addr"], pb.PROXY_PORT), "backend:9080", args.duration, args.connections)
                spy.wait()
            print(f"wrk -t1 -c{args.connections}, {args.duration:g} s runs, {args.rounds} rounds "
                  "alternating; sidecars on core 0, wrk + nginx backend on core 1")
            print("| path | CPU µs/req median (min–max) |\n|---|---|")
            for name, vals in results.items():
                print(f"| {name} | {statistics.median(vals):.1f} ({min(vals):.1f}–{max(vals):.1f}) |")
        finally:
            procs.stop_all()


if __name__ == "__main__":
    if shutil.which("wrk") is None or shutil.which("nginx") is None:
        sys.exit("needs wrk and nginx (apt-get install -y wrk nginx)")
    main()
