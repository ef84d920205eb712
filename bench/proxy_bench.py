#!/usr/bin/env python3
"""Benchmark the sidecar's HTTP data plane against the same backend reached directly.

Paths measured, each in the same run (docs/benchmarks.md explains the method and the figures):

- ``direct``  client → backend
- ``1-hop``   client → outbound sidecar → backend               (a route rule is active)
- ``2-hop``   client → outbound sidecar → inbound sidecar → backend
- ``nginx``   client → nginx (one worker, keep-alive upstream) → backend   (when nginx is installed)
- ``2-hop mTLS`` (``--mtls``) the 2-hop path between a second pair of sidecars with mutual TLS
  (MeshConfig ``authPolicy: MUTUAL_TLS``, certificates from a ``trimesh run ca`` of the run); the
  report adds its CPU per request against the plaintext 2-hop's (issue 12's bound: ≤ 1.5×)

For every path it reports requests/s at ``-c16`` (closed loop, keep-alive), the proxies' CPU µs
per request (utime+stime from ``/proc/<pid>/stat`` over the run ÷ requests, summed over every
proxy process on the path), and p50/p90/p99 latency at one connection, with the latency *added*
over ``direct``.

Method (../shared/PERF.md): the proxies are pinned to core 0, the load generator and the backend to
core 1 (``taskset``, when there are two cores); each path gets a warm-up before it is measured; the
order of paths alternates between rounds (A B C D, D C B A, ...); the report gives medians and
min–max over the rounds and ratios against ``direct``. The load generator is wrk (``-t1 -c16``)
when installed, otherwise a built-in closed-loop client (slower: it can cap the fast paths, so
compare ratios only with the same generator). The backend is a tiny nginx server when installed
(``--backend auto``), else trimesh's fake upstream (``python -m trimesh.testing.upstream``; h11,
~8 k req/s on one core, which caps every path measured through it).

    python bench/proxy_bench.py             # ~5 s per run, 2 rounds
    python bench/proxy_bench.py --quick     # ~1 s per run, 1 round: a smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import re
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

NET = "127.78.0"  # every process gets its own loopback address
BACKEND = (f"{NET}.2", 9080)
OUTBOUND = f"{NET}.3"
INBOUND = (f"{NET}.4", 9080)
NGINX_PEER = (f"{NET}.5", 9080)
CA = (f"{NET}.6", 8060)
MTLS_OUTBOUND = f"{NET}.7"
MTLS_INBOUND = (f"{NET}.8", 9080)
PROXY_PORT, ADMIN_PORT = 15001, 15000  # the mesh's defaults (DESIGN.md §1)
READY_TIMEOUT = 30.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
PROXY_CORE, LOAD_CORE = 0, 1


# -- processes --------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])


class Processes:
    def __init__(self, workdir: Path, pin: bool):
        self.workdir, self.pin, self.procs = workdir, pin, []

    def start(self, name: str, argv: list[str], core: int | None) -> Proc:
        if self.pin and core is not None:
            argv = ["taskset", "-c", str(core), *argv]
        log = self.workdir / f"{name}.log"
        with open(log, "wb") as fh:
            popen = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=self.workdir)
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


def wait_for(check, what: str, proc: Proc) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            sys.exit(f"{proc.name} exited ({proc.popen.returncode}) before {what}:\n{proc.tail()}")
        try:
            if check():
                return
        except (OSError, httpx.HTTPError):
            pass
        time.sleep(0.1)
    sys.exit(f"timed out waiting for {what}:\n{proc.tail()}")


def port_open(addr: tuple[str, int]) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(addr) == 0


def cpu_seconds(pid: int) -> float:
    """utime+stime of a process and its descendants (children are found through /proc)."""
    total = 0.0
    for p in [pid, *descendants(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK  # stat fields 14, 15
    return total


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def proxy_pid(proc: Proc) -> int:
    """The PID doing the work (``taskset`` execs in place, so the Popen PID is the proxy's)."""
    return proc.popen.pid


# -- the mesh under test ------------------------------------------------------------------------


# The CLI run by this interpreter (PYTHONPATH picks the tree), where no console script is at hand
PYTHON_TRIMESH = [sys.executable, "-c", "from trimesh.cli import main; main()"]


def trimesh_cmd() -> list[str]:
    script = Path(sys.executable).with_name("trimesh")
    return [str(script)] if script.exists() else list(PYTHON_TRIMESH)


def start_backend(procs: Processes, kind: str) -> Proc:
    if kind == "nginx":
        conf = procs.workdir / "backend-nginx.conf"
        conf.write_text(NGINX_CONF.format(prefix=procs.workdir, name="nginx-backend", body=f"""
            server {{ listen {BACKEND[0]}:{BACKEND[1]}; keepalive_requests 1000000;
                     location / {{ default_type application/json;
                                  return 200 '{{"name": "backend"}}'; }} }}"""))
        proc = procs.start("backend", ["nginx", "-p", str(procs.workdir), "-c", str(conf)],
                           LOAD_CORE)
    else:
        proc = procs.start("backend", [sys.executable, "-m", "trimesh.testing.upstream",
                                       "--address", BACKEND[0], "--port", str(BACKEND[1]),
                                       "--name", "backend", "--no-record"], LOAD_CORE)
    wait_for(lambda: port_open(BACKEND), "the backend", proc)
    return proc


NGINX_CONF = """
daemon off; master_process off; worker_processes 1;
pid {prefix}/{name}.pid; error_log {prefix}/{name}-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/nginx-tmp; proxy_temp_path {prefix}/nginx-tmp;
    fastcgi_temp_path {prefix}/nginx-tmp; uwsgi_temp_path {prefix}/nginx-tmp;
    scgi_temp_path {prefix}/nginx-tmp;
    {body}
}}
"""


def start_nginx_peer(procs: Processes) -> Proc:
    conf = procs.workdir / "peer-nginx.conf"
    conf.write_text(NGINX_CONF.format(prefix=procs.workdir, name="nginx-peer", body=f"""
        upstream backend {{ server {BACKEND[0]}:{BACKEND[1]}; keepalive 64; }}
        server {{ listen {NGINX_PEER[0]}:{NGINX_PEER[1]}; keepalive_requests 1000000;
                 location / {{ proxy_pass http://backend; proxy_http_version 1.1;
                              proxy_set_header Connection ""; }} }}"""))
    proc = procs.start("nginx-peer", ["nginx", "-p", str(procs.workdir), "-c", str(conf)],
                       PROXY_CORE)
    wait_for(lambda: port_open(NGINX_PEER), "the nginx peer proxy", proc)
    return proc


def rule_docs(mtls: bool = False) -> str:
    docs = [{"apiVersion": "config.istio.io/v1alpha2", "kind": "RouteRule",
             "metadata": {"name": f"{svc}-default", "namespace": "default"},
             "spec": {"destination": {"name": svc}, "precedence": 1,
                      "route": [{"labels": {"version": "v1"}}]}}
            for svc in ("backend", "backend-mesh", "backend-mtls")]
    if mtls:
        docs.append({"apiVersion": "config.istio.io/v1alpha2", "kind": "MeshConfig",
                     "metadata": {"name": "mesh", "namespace": "istio-system"},
                     "spec": {"authPolicy": "MUTUAL_TLS"}})
    return yaml.safe_dump_all(docs, sort_keys=False)


def sidecar_argv(service: str, address: str, port: int, app: tuple[str, int], workdir: Path,
                 registry: list[dict] | None = None, mtls: bool = False) -> list[str]:
    config = workdir / f"{service}-config.yaml"
    config.write_text(rule_docs(mtls))
    argv = trimesh_cmd() + [
        "run", "sidecar", "--service", service, "--version", "v1", "--port", str(port),
        "--app-address", app[0], "--app-port", str(app[1]), "--address", address,
        "--proxy-port", str(PROXY_PORT), "--admin-port", str(ADMIN_PORT),
        "--config", str(config),  # no --gossip-port: gossip stays off, instances are static
        "--control", "none",  # no control process: rules come from --config
        "--access-log", str(workdir / f"{service}-access.log"),
    ]
    if registry is not None:
        reg = workdir / f"{service}-registry.yaml"
        reg.write_text(yaml.safe_dump(registry))
        argv += ["--registry", str(reg)]
    if mtls:  # a certificate from the run's CA (start_ca), the CA's mesh token
        argv += ["--ca", f"http://{CA[0]}:{CA[1]}", "--ca-token-file",
                 str(workdir / "ca-state" / "mesh-token")]
    return argv


def start_mtls_sidecars(procs: Processes) -> tuple[Proc, Proc]:
    """A CA and a second sidecar pair whose hop uses mutual TLS (``--mtls``)."""
    ca = procs.start("ca", trimesh_cmd() + ["run", "ca", "--address", CA[0], "--port",
                                            str(CA[1]), "--state-dir",
                                            str(procs.workdir / "ca-state")], LOAD_CORE)
    wait_for(lambda: port_open(CA), "the CA listening", ca)
    registry = [{"service": "backend-mtls", "namespace": "default", "address": MTLS_INBOUND[0],
                 "port": MTLS_INBOUND[1], "labels": {"version": "v1"}}]
    inbound = procs.start("sidecar-mtls-inbound", sidecar_argv(
        "backend-mtls", MTLS_INBOUND[0], MTLS_INBOUND[1], BACKEND, procs.workdir, mtls=True),
        PROXY_CORE)
    outbound = procs.start("sidecar-mtls-outbound", sidecar_argv(
        "bench-client-mtls", MTLS_OUTBOUND, 9080, (MTLS_OUTBOUND, 9), procs.workdir, registry,
        mtls=True), PROXY_CORE)
    for proc, address in ((inbound, MTLS_INBOUND[0]), (outbound, MTLS_OUTBOUND)):
        wait_for(lambda a=address: httpx.get(f"http://{a}:{ADMIN_PORT}/ready",
                                             timeout=2).status_code == 200,
                 f"{proc.name} /ready", proc)
    return outbound, inbound


def start_sidecars(procs: Processes) -> tuple[Proc, Proc]:
    registry = [
        {"service": "backend", "namespace": "default", "address": BACKEND[0], "port": BACKEND[1],
         "labels": {"version": "v1"}},
        {"service": "backend-mesh", "namespace": "default", "address": INBOUND[0],
         "port": INBOUND[1], "labels": {"version": "v1"}},
    ]
    inbound = procs.start("sidecar-inbound", sidecar_argv("backend-mesh", INBOUND[0], INBOUND[1],
                                                          BACKEND, procs.workdir), PROXY_CORE)
    outbound = procs.start("sidecar-outbound", sidecar_argv("bench-client", OUTBOUND, 9080,
                                                            (OUTBOUND, 9), procs.workdir, registry),
                           PROXY_CORE)
    for proc, address in ((inbound, INBOUND[0]), (outbound, OUTBOUND)):
        wait_for(lambda a=address: httpx.get(f"http://{a}:{ADMIN_PORT}/ready",
                                             timeout=2).status_code == 200,
                 f"{proc.name} /ready", proc)
    return outbound, inbound


@dataclass
class Path_:
    name: str
    address: tuple[str, int]
    host: str  # the Host header the client sends
    proxies: list[Proc] = field(default_factory=list)


def check_path(path: Path_) -> None:
    """Correctness before speed: a GET and a chunked POST answered by the backend, on one keep-alive
    connection."""
    url = f"http://{path.address[0]}:{path.address[1]}"
    with httpx.Client(base_url=url, headers={"host": path.host}, timeout=10) as client:
        for _ in range(3):
            r = client.get("/check")
            if r.status_code != 200 or '"backend"' not in r.text:
                sys.exit(f"{path.name}: GET /check answered {r.status_code}: {r.text[:200]!r}")
        r = client.post("/check", content=iter([b"a" * 1000, b"b" * 1000]))
        if r.status_code != 200:
            sys.exit(f"{path.name}: chunked POST answered {r.status_code}: {r.text[:200]!r}")


# -- load generators ------------------------------------------------------------------------------


@dataclass
class Result:
    requests: int
    seconds: float
    errors: int
    latency: dict[str, float] = field(default_factory=dict)  # "50" → seconds

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def run_wrk(path: Path_, connections: int, seconds: float, pin: bool) -> Result:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
            "-H", f"Host: {path.host}", f"http://{path.address[0]}:{path.address[1]}/"]
    if pin:
        argv = ["taskset", "-c", str(LOAD_CORE), *argv]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60).stdout
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    if not m:
        sys.exit(f"cannot parse wrk output:\n{out}")
    latency = {p: float(v) * _UNITS[u]
               for p, v, u in re.findall(r"^\s+(50|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)}
    errors = 0
    for pattern in (r"Non-2xx or 3xx responses: (\d+)",
                    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"):
        for g in re.findall(pattern, out):
            errors += sum(int(x) for x in (g if isinstance(g, tuple) else (g,)))
    return Result(int(m.group(1)), float(m.group(2)) * _UNITS[m.group(3)], errors, latency)


def run_builtin(path: Path_, connections: int, seconds: float, pin: bool) -> Result:
    """Closed-loop keep-alive client: ``connections`` sockets, one request in flight on each."""
    del pin  # the bench process itself is pinned to the load core
    request = f"GET / HTTP/1.1\r\nHost: {path.host}\r\n\r\n".encode()
    sel = selectors.DefaultSelector()
    socks = []
    for _ in range(connections):
        s = socket.create_connection(path.address)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        socks.append(s)
    state = {s: [b"", 0.0] for s in socks}
    lat: list[float] = []
    errors = 0
    start = time.perf_counter()
    end = start + seconds
    for s in socks:
        state[s][1] = time.perf_counter()
        s.sendall(request)
        sel.register(s, selectors.EVENT_READ)
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        for key, _ in sel.select(timeout=end - now):
            s = key.fileobj
            data = s.recv(65536)
            if not data:
                sys.exit(f"{path.name}: the server closed a keep-alive connection")
            buf = state[s][0] + data
            while True:
                head_end = buf.find(b"\r\n\r\n")
                if head_end < 0:
                    break
                m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", buf[:head_end])
                total = head_end + 4 + (int(m.group(1)) if m else 0)
                if len(buf) < total:
                    break
                if not buf.startswith(b"HTTP/1.1 2"):
                    errors += 1
                buf = buf[total:]
                t = time.perf_counter()
                lat.append(t - state[s][1])
                state[s][1] = t
                s.sendall(request)
            state[s][0] = buf
    took = time.perf_counter() - start
    for s in socks:
        sel.unregister(s)
        s.close()
    lat.sort()
    pct = {p: lat[min(len(lat) - 1, int(len(lat) * int(p) / 100))] for p in ("50", "90", "99")}
    return Result(len(lat), took, errors, pct if lat else {})


# -- the benchmark --------------------------------------------------------------------------------


@dataclass
class Sample:
    rps: float
    cpu_us: float | None
    latency: dict[str, float]
    errors: int


def measure(path: Path_, gen, args) -> Sample:
    gen(path, args.connections, args.warmup, args.pin)  # warm-up: fill pools, JIT caches, ...
    before = [cpu_seconds(proxy_pid(p)) for p in path.proxies]
    tput = gen(path, args.connections, args.duration, args.pin)
    after = [cpu_seconds(proxy_pid(p)) for p in path.proxies]
    cpu_us = (sum(after) - sum(before)) / tput.requests * 1e6 if path.proxies else None
    lat = gen(path, 1, args.latency_duration, args.pin)
    return Sample(tput.rps, cpu_us, lat.latency, tput.errors + lat.errors)


def spread(values: list[float], fmt: str) -> str:
    if not values:
        return "—"
    med = statistics.median(values)
    if len(values) == 1:
        return format(med, fmt)
    return f"{format(med, fmt)} ({format(min(values), fmt)}–{format(max(values), fmt)})"


def report(samples: dict[str, list[Sample]], args, generator: str, backend: str) -> str:
    pinning = "pinned: proxies on core 0, load + backend on core 1" if args.pin else "not pinned"
    lines = [f"generator {generator} -t1 -c{args.connections}; backend {backend}; "
             f"{args.duration:g} s per run; {args.rounds} round(s), order alternating; {pinning}",
             "",
             "| path | req/s at c16 | vs direct | proxy CPU µs/req | p50 / p90 / p99 at c1 (µs) "
             "| added p50 / p90 / p99 (µs) |",
             "|---|---|---|---|---|---|"]
    direct = samples.get("direct", [])
    d_rps = statistics.median([s.rps for s in direct]) if direct else None
    d_lat = {p: statistics.median([s.latency.get(p, 0) for s in direct]) if direct else 0.0
             for p in ("50", "90", "99")}
    for name, ss in samples.items():
        rps = [s.rps for s in ss]
        cpu = [s.cpu_us for s in ss if s.cpu_us is not None]
        lat = {p: statistics.median([s.latency.get(p, 0) for s in ss]) for p in ("50", "90", "99")}
        ratio = f"{statistics.median(rps) / d_rps:.2f}×" if d_rps else "—"
        added = ("—" if name == "direct" else
                 " / ".join(f"{(lat[p] - d_lat[p]) * 1e6:+.0f}" for p in ("50", "90", "99")))
        errors = sum(s.errors for s in ss)
        lines.append(f"| {name}{f' ({errors} errors)' if errors else ''} | {spread(rps, ',.0f')} "
                     f"| {ratio} | {spread(cpu, '.0f')} | "
                     + " / ".join(f"{lat[p] * 1e6:.0f}" for p in ("50", "90", "99"))
                     + f" | {added} |")
    if "2-hop mTLS" in samples and "2-hop" in samples:
        plain = statistics.median([s.cpu_us for s in samples["2-hop"]])
        mtls = statistics.median([s.cpu_us for s in samples["2-hop mTLS"]])
        lines += ["", f"2-hop mTLS / 2-hop plaintext proxy CPU per request: {mtls / plain:.2f}× "
                      f"({mtls:.0f} vs {plain:.0f} µs; issue 12's bound ≤ 1.50×)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=5.0, help="seconds per measured run (5)")
    p.add_argument("--latency-duration", type=float, default=2.0,
                   help="seconds of the one-connection latency run (2)")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up per run (1)")
    p.add_argument("--rounds", type=int, default=2, help="rounds, order alternating (2)")
    p.add_argument("--connections", type=int, default=16, help="connections of the c16 run (16)")
    p.add_argument("--backend", choices=["auto", "nginx", "fake"], default="auto")
    p.add_argument("--generator", choices=["auto", "wrk", "builtin"], default="auto")
    p.add_argument("--no-pin", dest="pin", action="store_false", help="do not use taskset")
    p.add_argument("--no-nginx-peer", dest="nginx_peer", action="store_false")
    p.add_argument("--quick", action="store_true", help="1 s runs, 1 round (a smoke test)")
    p.add_argument("--mtls", action="store_true",
                   help="also measure 2 hops with mutual TLS (a CA and a second sidecar pair)")
    p.add_argument("--json", type=Path, help="also write the raw samples here")
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.latency_duration, args.warmup, args.rounds = 1.0, 1.0, 0.5, 1
    has_nginx = shutil.which("nginx") is not None
    backend = "nginx" if args.backend == "auto" and has_nginx else args.backend
    backend = "fake" if backend == "auto" else backend
    generator = "wrk" if args.generator == "auto" and shutil.which("wrk") else args.generator
    generator = "builtin" if generator == "auto" else generator
    gen = run_wrk if generator == "wrk" else run_builtin
    args.pin = args.pin and shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
    if args.pin:
        os.sched_setaffinity(0, {LOAD_CORE})  # the bench process (and a built-in client) too

    with tempfile.TemporaryDirectory(prefix="trimesh-bench-") as tmp:
        workdir = Path(tmp)
        (workdir / "nginx-tmp").mkdir()
        procs = Processes(workdir, args.pin)
        try:
            start_backend(procs, backend)
            outbound, inbound = start_sidecars(procs)
            paths = [Path_("direct", BACKEND, "backend:9080"),
                     Path_("1-hop", (OUTBOUND, PROXY_PORT), "backend:9080", [outbound]),
                     Path_("2-hop", (OUTBOUND, PROXY_PORT), "backend-mesh:9080",
                           [outbound, inbound])]
            if args.mtls:
                paths.append(Path_("2-hop mTLS", (MTLS_OUTBOUND, PROXY_PORT),
                                   "backend-mtls:9080", list(start_mtls_sidecars(procs))))
            if args.nginx_peer and has_nginx:
                paths.append(Path_("nginx", NGINX_PEER, "backend:9080", [start_nginx_peer(procs)]))
            for path in paths:
                check_path(path)
            samples: dict[str, list[Sample]] = {path.name: [] for path in paths}
            for r in range(args.rounds):
                order = paths if r % 2 == 0 else list(reversed(paths))
                for path in order:
                    sample = measure(path, gen, args)
                    samples[path.name].append(sample)
                    cpu = "     —" if sample.cpu_us is None else f"{sample.cpu_us:6.0f}"
                    print(f"round {r + 1} {path.name:7} {sample.rps:9,.0f} req/s  "
                          f"cpu {cpu} µs/req  p50@c1 "
                          f"{sample.latency.get('50', 0) * 1e6:6.0f} µs", file=sys.stderr)
            print(report(samples, args, generator, backend))
            if args.json:
                args.json.write_text(json.dumps({k: [s.__dict__ for s in v]
                                                 for k, v in samples.items()}, indent=1))
        finally:
            procs.stop_all()


if __name__ == "__main__":
    main()
