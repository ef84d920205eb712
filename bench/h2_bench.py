#!/usr/bin/env python3
"""HTTP/2 and gRPC through one sidecar, against the same backend reached directly (same run).

Backend: the grpcio greeter of the e2e tests (tests/e2e/grpc_greeter.py, HTTP/2 only). Paths:

- ``direct``  client → greeter
- ``1-hop``   client → outbound sidecar (HTTP/2 downstream, HTTP/2 upstream: the registry lists
  the greeter with protocol ``grpc``) → greeter

Figures, per path:

1. **HTTP/2 requests**: gRPC-framed POSTs to ``/greeter.Greeter/Hello`` on one connection with
   ``--streams`` concurrent streams — h2load (Debian's nghttp2-client) when installed, else a
   built-in h2 client (slower; compare ratios only with the same generator): requests/s.
2. **gRPC unary round trips** with a real grpcio client, one call at a time: µs per call (median
   of rounds) — the latency a sidecar adds to a call.

Ratios are 1-hop ÷ direct. Every process is started here on 127.0.150.5x and stopped by PID.

    python bench/h2_bench.py              # ~20 s
    python bench/h2_bench.py --quick      # a smoke test
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parent.parent
GREETER = ROOT / "tests" / "e2e" / "grpc_greeter.py"
HOST_GREETER = "127.0.150.51"
HOST_SIDECAR = "127.0.150.52"
REQUEST = b"\x00\x00\x00\x00\x05hello"


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_port(host: str, port: int, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection((host, port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on {host}:{port} after {timeout} s")


def start(argv: list[str], log: Path) -> subprocess.Popen:
    fh = open(log, "ab")
    return subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


async def h2_load_builtin(host: str, port: int, authority: str, n: int, streams: int) -> float:
    """requests/s of ``n`` gRPC-framed POSTs, ``streams`` at a time, on one connection."""
    import h2.config
    import h2.connection
    import h2.events
    stream = await trio.open_tcp_stream(host, port)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    fields = [(":method", "POST"), (":scheme", "http"), (":authority", authority),
              (":path", "/greeter.Greeter/Hello"), ("content-type", "application/grpc"),
              ("te", "trailers")]
    sent = done = 0
    t0 = time.perf_counter()
    while done < n:
        while sent < n and sent - done < streams:
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, fields)
            conn.send_data(sid, REQUEST, end_stream=True)
            sent += 1
        await stream.send_all(conn.data_to_send())
        data = await stream.receive_some(65536)
        if not data:
            raise SystemExit("the server closed the connection")
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.StreamEnded):
                done += 1
            elif isinstance(ev, h2.events.DataReceived):
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
    elapsed = time.perf_counter() - t0
    await stream.aclose()
    return n / elapsed


def h2_load(host: str, port: int, authority: str, n: int, streams: int) -> tuple[float, str]:
    h2load = shutil.which("h2load")
    if h2load is None:
        return trio.run(h2_load_builtin, host, port, authority, n, streams), "built-in h2"
    with tempfile.NamedTemporaryFile(suffix=".bin") as body:
        body.write(REQUEST)
        body.flush()
        out = subprocess.run([h2load, "-n", str(n), "-c", "1", "-m", str(streams), "-d", body.name,
                              "-H", "content-type: application/grpc", "-H", "te: trailers",
                              "-H", f":authority: {authority}",
                              f"http://{host}:{port}/greeter.Greeter/Hello"],
                             capture_output=True, text=True, timeout=300)
    for line in out.stdout.splitlines():
        if line.startswith("finished in"):
            return float(line.split(",")[1].split()[0]), "h2load"
    raise SystemExit(f"h2load said: {out.stdout[-500:]}{out.stderr[-500:]}")


def grpc_unary(target: str, authority: str | None, n: int) -> float:
    """µs per sequential unary call."""
    import grpc
    options = [("grpc.default_authority", authority)] if authority else []
    with grpc.insecure_channel(target, options=options) as channel:
        call = channel.unary_unary("/greeter.Greeter/Hello")
        for _ in range(50):  # warm-up: connection, HPACK tables
            call(b"w", timeout=10)
        t0 = time.perf_counter()
        for _ in range(n):
            call(b"hello", timeout=10)
        return (time.perf_counter() - t0) / n * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--requests", type=int, default=5000, help="HTTP/2 requests per run")
    p.add_argument("--calls", type=int, default=1000, help="gRPC unary calls per run")
    p.add_argument("--streams", type=int, default=16, help="concurrent HTTP/2 streams")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    if a.quick:
        a.requests, a.calls, a.rounds = 500, 200, 1
    tmp = Path(tempfile.mkdtemp(prefix="h2bench-"))
    procs: list[subprocess.Popen] = []
    try:
        gport = free_port(HOST_GREETER)
        procs.append(start([sys.executable, str(GREETER), HOST_GREETER, str(gport), "v1"],
                           tmp / "greeter.log"))
        registry = tmp / "registry.yaml"
        registry.write_text(f"- service: greeter\n  address: {HOST_GREETER}\n  port: {gport}\n"
                            f"  protocol: grpc\n  labels: {{version: v1}}\n")
        (tmp / "config.yaml").write_text("")
        proxy_port = free_port(HOST_SIDECAR)
        procs.append(start([sys.executable, "-c", "from trimesh.cli import main; main()",
                            "run", "sidecar",
                            "--service", "bench", "--address", HOST_SIDECAR,
                            "--port", str(free_port(HOST_SIDECAR)),
                            "--app-address", "127.0.0.1", "--app-port", str(free_port("127.0.0.1")),
                            "--proxy-port", str(proxy_port),
                            "--admin-port", str(free_port(HOST_SIDECAR)),
                            "--registry", str(registry), "--config", str(tmp / "config.yaml"),
                            "--control", "none", "--access-log", str(tmp / "access.log")],
                           tmp / "sidecar.log"))
        wait_port(HOST_GREETER, gport)
        wait_port(HOST_SIDECAR, proxy_port)
        time.sleep(1.0)  # the registry loaded
        authority = "greeter:9080"
        paths = {"direct": (HOST_GREETER, gport, f"{HOST_GREETER}:{gport}", None),
                 "1-hop": (HOST_SIDECAR, proxy_port, authority, authority)}
        rps: dict[str, list[float]] = {k: [] for k in paths}
        lat: dict[str, list[float]] = {k: [] for k in paths}
        gen = ""
        for r in range(a.rounds):
            order = list(paths) if r % 2 == 0 else list(reversed(paths))
            for name in order:
                host, port, auth, grpc_auth = paths[name]
                value, gen = h2_load(host, port, auth, a.requests, a.streams)
                rps[name].append(value)
                lat[name].append(grpc_unary(f"{host}:{port}", grpc_auth, a.calls))
                print(f"round {r + 1} {name}: {value:.0f} req/s, {lat[name][-1]:.0f} µs/call",
                      file=sys.stderr, flush=True)
        print(f"HTTP/2 requests ({gen}, 1 connection, {a.streams} streams, {a.requests} per run, "
              f"{a.rounds} rounds)")
        for name in paths:
            m = statistics.median(rps[name])
            ratio = m / statistics.median(rps["direct"])
            print(f"  {name:8s} {m:9.0f} req/s  (min {min(rps[name]):.0f}, max {max(rps[name]):.0f})"
                  f"  ×{ratio:.2f} of direct")
        print(f"gRPC unary round trips (grpcio, sequential, {a.calls} per run)")
        for name in paths:
            m = statistics.median(lat[name])
            added = m - statistics.median(lat["direct"])
            print(f"  {name:8s} {m:9.0f} µs/call (min {min(lat[name]):.0f}, max {max(lat[name]):.0f})"
                  f"  +{added:.0f} µs over direct")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
