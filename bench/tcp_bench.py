#!/usr/bin/env python3
"""Benchmark trimesh's TCP relay (trimesh/proxy/_tcp.py) against a direct connection and peer
relays, in the same run.

Paths (each gets the same traffic; order alternates between rounds):

- ``direct``    client → sink
- ``upstream``  client → sidecar ``--upstream sink:PORT=LOCAL`` listener → sink
- ``connect``   client → sidecar outbound listener, ``CONNECT sink:PORT`` → sink
- ``socat``     client → ``socat TCP-LISTEN:…,fork TCP:sink`` → sink      (when socat is installed)
- ``haproxy``   client → haproxy ``mode tcp``, one thread → sink            (when haproxy is installed)

Traffic: ``--connections`` parallel connections, each sending its share of ``--megabytes`` in
256 KiB writes, then half-closing; the sink reads to EOF and answers with the byte count, which
the client checks (so a relay that loses bytes fails the run). Reported per path: MB/s (total
bytes ÷ wall time, median over rounds) and the relay process's CPU seconds per GB
(utime+stime, plus its reaped children's for socat's fork-per-connection, from /proc/PID/stat).
Ratios are against ``direct`` (throughput) and against trimesh's ``upstream`` path (CPU).

The sink is this script run with ``--sink ADDR PORT`` (threads, stdlib). Addresses: 127.0.140.150–
127.0.140.154. Every process is stopped by PID at the end.

    python bench/tcp_bench.py            # 256 MB per path, 3 rounds
    python bench/tcp_bench.py --quick    # 32 MB per path, 1 round: a smoke test
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import socketserver
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SINK = "127.0.140.150"
SIDECAR = "127.0.140.151"
SOCAT = "127.0.140.152"
HAPROXY = "127.0.140.153"
CHUNK = 256 * 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")
READY_TIMEOUT = 30.0


# -- the sink ------------------------------------------------------------------------------------
class _Sink(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock = self.request
        n = 0
        buf = bytearray(CHUNK)
        while True:
            k = sock.recv_into(buf)
            if not k:
                break
            n += k
        sock.sendall(b"%d\n" % n)
        sock.shutdown(socket.SHUT_WR)


def serve_sink(address: str, port: int) -> None:
    class Server(socketserver.ThreadingTCPServer):
        allow_reuse_address = True
        daemon_threads = True

    with Server((address, port), _Sink) as server:
        print(f"sink on {address}:{port}", flush=True)
        server.serve_forever()


# -- helpers -------------------------------------------------------------------------------------
def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime + cutime + cstime) / CLK_TCK


def wait_port(host: str, port: int, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"{what}: {host}:{port} not open after {READY_TIMEOUT} s")


def one_connection(addr, nbytes: int, connect_to: str | None, errors: list) -> None:
    try:
        s = socket.create_connection(addr, timeout=60)
        if connect_to:
            s.sendall(f"CONNECT {connect_to} HTTP/1.1\r\nHost: {connect_to}\r\n\r\n".encode())
            head = b""
            while b"\r\n\r\n" not in head:
                data = s.recv(4096)
                if not data:
                    raise OSError("closed during CONNECT")
                head += data
            if not head.startswith(b"HTTP/1.1 200"):
                raise OSError(f"CONNECT answered {head[:40]!r}")
        block = memoryview(b"\x5a" * CHUNK)
        left = nbytes
        while left > 0:
            k = min(left, CHUNK)
            s.sendall(block[:k])
            left -= k
        s.shutdown(socket.SHUT_WR)
        answer = b""
        while True:
            data = s.recv(64)
            if not data:
                break
            answer += data
        s.close()
        if int(answer or b"-1") != nbytes:
            raise OSError(f"sink counted {answer!r}, sent {nbytes}")
    except OSError as exc:
        errors.append(exc)


def run_path(addr, connect_to, total: int, connections: int, pid: int | None):
    per = total // connections
    errors: list = []
    cpu0 = cpu_seconds(pid) if pid else 0.0
    t0 = time.perf_counter()
    threads = [threading.Thread(target=one_connection, args=(addr, per, connect_to, errors))
               for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    cpu = (cpu_seconds(pid) - cpu0) if pid else 0.0
    if errors:
        raise SystemExit(f"{addr}: {errors[0]}")
    moved = per * connections
    return moved / wall / 1e6, cpu / (moved / 1e9)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def trimesh_argv() -> list[str]:
    script = Path(sys.executable).with_name("trimesh")
    return [str(script)] if script.exists() else [sys.executable, "-m", "trimesh.cli"]


# -- main ----------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--megabytes", type=int, default=256, help="MB sent per path per round")
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sink", nargs=2, metavar=("ADDR", "PORT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.sink:
        serve_sink(args.sink[0], int(args.sink[1]))
        return
    if args.quick:
        args.megabytes, args.rounds = 32, 1
    total = args.megabytes * 1_000_000
    procs: list[subprocess.Popen] = []
    tmp = Path(tempfile.mkdtemp(prefix="tcp-bench-"))
    out = open(tmp / "procs.log", "w")
    try:
        sink_port = free_port(SINK)
        sink = subprocess.Popen([sys.executable, __file__, "--sink", SINK, str(sink_port)],
                                stdout=out, stderr=out)
        procs.append(sink)
        wait_port(SINK, sink_port, sink, "sink")
        paths: dict[str, tuple] = {"direct": ((SINK, sink_port), None, None)}

        (tmp / "registry.yaml").write_text(
            f"- {{service: sink, address: {SINK}, port: {sink_port}, protocol: tcp}}\n")
        local, proxy, admin = free_port(SIDECAR), free_port(SIDECAR), free_port(SIDECAR)
        sidecar = subprocess.Popen(trimesh_argv() + [
            "run", "sidecar", "--service", "bench", "--port", str(free_port(SIDECAR)),
            "--app-port", str(free_port("127.0.0.1")), "--address", SIDECAR,
            "--proxy-port", str(proxy), "--admin-port", str(admin), "--control", "none",
            "--registry", str(tmp / "registry.yaml"), "--access-log", "off",
            "--health-checks", "off", "--upstream", f"sink:{sink_port}={local}"],
            stdout=out, stderr=out)
        procs.append(sidecar)
        wait_port(SIDECAR, local, sidecar, "sidecar")
        wait_port(SIDECAR, proxy, sidecar, "sidecar")
        paths["upstream"] = ((SIDECAR, local), None, sidecar.pid)
        paths["connect"] = ((SIDECAR, proxy), f"sink:{sink_port}", sidecar.pid)

        skipped = []
        if shutil.which("socat"):
            port = free_port(SOCAT)
            p = subprocess.Popen(["socat", f"TCP-LISTEN:{port},bind={SOCAT},fork,reuseaddr",
                                  f"TCP:{SINK}:{sink_port}"], stdout=out, stderr=out)
            procs.append(p)
            wait_port(SOCAT, port, p, "socat")
            paths["socat"] = ((SOCAT, port), None, p.pid)
        else:
            skipped.append("socat (not installed: apt-get install socat)")
        if shutil.which("haproxy"):
            port = free_port(HAPROXY)
            cfg = tmp / "haproxy.cfg"
            cfg.write_text(f"global\n  nbthread 1\n  maxconn 1000\ndefaults\n  mode tcp\n"
                           f"  timeout connect 5s\n  timeout client 1h\n  timeout server 1h\n"
                           f"listen relay\n  bind {HAPROXY}:{port}\n"
                           f"  server sink {SINK}:{sink_port}\n")
            p = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdout=out, stderr=out)
            procs.append(p)
            wait_port(HAPROXY, port, p, "haproxy")
            paths["haproxy"] = ((HAPROXY, port), None, p.pid)
        else:
            skipped.append("haproxy (not installed: apt-get install haproxy)")

        names = list(paths)
        results: dict[str, list] = {n: [] for n in names}
        for name in names:  # warm-up
            addr, connect_to, pid = paths[name]
            run_path(addr, connect_to, 4_000_000, args.connections, pid)
        for r in range(args.rounds):
            order = names if r % 2 == 0 else list(reversed(names))
            for name in order:
                addr, connect_to, pid = paths[name]
                results[name].append(run_path(addr, connect_to, total, args.connections, pid))
    finally:
        for p in reversed(procs):
            stop(p)
        out.close()

    print(f"TCP relay: {args.megabytes} MB per path, {args.connections} connections, "
          f"{args.rounds} round(s); median (min-max)")
    base = statistics.median(x[0] for x in results["direct"])
    ours_cpu = statistics.median(x[1] for x in results["upstream"])
    print(f"{'path':<10} {'MB/s':>20} {'x direct':>9} {'CPU s/GB':>16} {'x trimesh':>10}")
    for name in names:
        mbs = [x[0] for x in results[name]]
        cpu = [x[1] for x in results[name]]
        m, c = statistics.median(mbs), statistics.median(cpu)
        cpu_text = "-" if name == "direct" else f"{c:6.2f} ({min(cpu):.2f}-{max(cpu):.2f})"
        ratio = "-" if name == "direct" else f"{c / ours_cpu:.2f}"
        print(f"{name:<10} {m:8.0f} ({min(mbs):.0f}-{max(mbs):.0f}) {m / base:9.2f} "
              f"{cpu_text:>16} {ratio:>10}")
    for s in skipped:
        print(f"skipped: {s}")


if __name__ == "__main__":
    main()
