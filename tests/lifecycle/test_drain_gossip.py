"""SIGTERM to a gossiping sidecar under load: no request that reached it fails, and the client's
mesh (another gossip member) drops its instance within one gossip round of its exit.

Processes on 127.0.21.x: a control (gossip seed, mesh key), the 'reviews' app (fake upstream) and
its sidecar with gossip. The client is an embedded member in this process
(``trimesh.start_in_thread(join=...)``) driving ~200 requests/s at ``http://reviews:9080``."""

from __future__ import annotations

import json
import re
import signal
import socket
import threading
import time

import trimesh
from tests.lifecycle.proc import (
    SIDECAR,
    UPSTREAM,
    get,
    start,
    stop,
    wait_port,
    wait_ready,
)
from trimesh.discovery import PROFILES

CONTROL = [SIDECAR[0], "-c", "from trimesh.cli import main; main()", "run", "control"]
GOSSIP_ROUND = PROFILES["local"].gossip_interval  # 0.1 s (memberlist DefaultLocalConfig)


def _instances(admin: str) -> set[str]:
    clusters = json.loads(get(admin + "/clusters")[1])
    return {i for name, c in clusters.items() if name.startswith("reviews.")
            for i in c["instances"]}


def _load(proxy, stop_at, results, lock):
    """Fresh connection per request through the client's outbound proxy, ~25 req/s."""
    while time.monotonic() < stop_at:
        t0 = time.monotonic()
        s = socket.create_connection(proxy, timeout=10)
        s.sendall(b"GET http://reviews:9080/x HTTP/1.1\r\nhost: reviews:9080\r\n"
                  b"x-upstream-delay: 0.03\r\nconnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        status = int(data.split(b" ", 2)[1])
        flags = re.search(rb"x-trimesh-response-flags: (\S+)", data)
        with lock:
            results.append((time.monotonic(), status, flags.group(1).decode() if flags else ""))
        time.sleep(max(0.0, 0.04 - (time.monotonic() - t0)))


def test_drain_under_load_then_leave_within_a_gossip_round(tmp_path):
    state = tmp_path / "control"
    access = tmp_path / "reviews-access.log"
    control = start(CONTROL + ["--state-dir", str(state), "--address", "127.0.21.1",
                               "--config-port", "0", "--gossip-port", "7946",
                               "--gossip-profile", "local"])
    procs = [control]
    mesh = None
    try:
        deadline = time.monotonic() + 20
        while not (state / "gossip.key").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        wait_port("127.0.21.1", 7946)
        key = str(state / "gossip.key")
        gossip = ["--join", "127.0.21.1:7946", "--gossip-key-file", key, "--gossip-profile",
                  "local", "--gossip-port", "7946"]
        app = start(UPSTREAM + ["--address", "127.0.21.2", "--port", "9080", "--name",
                                "reviews-app", "--no-record"])
        procs.append(app)
        wait_port("127.0.21.2", 9080)
        side = start(SIDECAR + ["--service", "reviews", "--port", "9080", "--app-port", "9080",
                                "--app-address", "127.0.21.2", "--address", "127.0.21.3",
                                "--proxy-port", "0", "--admin-port", "0", "--control", "none",
                                "--drain-timeout", "3", "--access-log", str(access), *gossip])
        procs.append(side)
        wait_ready(side)
        mesh = trimesh.start_in_thread(service="productpage", address="127.0.21.4",
                                       join=["127.0.21.1:7946"], gossip_key_file=key,
                                       gossip_profile="local", admin_port=0)
        admin_host, admin_port = mesh.sidecar.addresses["admin"]
        admin = f"http://{admin_host}:{admin_port}"
        proxy = tuple(mesh.sidecar.addresses["outbound"])
        deadline = time.monotonic() + 10
        while "127.0.21.3:9080" not in _instances(admin) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _instances(admin) == {"127.0.21.3:9080"}

        results, lock = [], threading.Lock()
        stop_at = time.monotonic() + 2.5
        threads = [threading.Thread(target=_load, args=(proxy, stop_at, results, lock))
                   for _ in range(8)]  # 8 x ~25/s = ~200 requests/s
        for t in threads:
            t.start()
        time.sleep(1.0)
        sigterm_at = time.monotonic()
        side.send_signal(signal.SIGTERM)
        dropped_at = exited_at = None
        while time.monotonic() < sigterm_at + 10 and (dropped_at is None or exited_at is None):
            if exited_at is None and side.poll() is not None:
                exited_at = time.monotonic()
            if dropped_at is None and "127.0.21.3:9080" not in _instances(admin):
                dropped_at = time.monotonic()
            time.sleep(0.005)
        for t in threads:
            t.join(15)
        assert side.wait(10) == 0
        before = [r for r in results if r[0] < sigterm_at]
        assert len(before) > 100 and all(s == 200 for _, s, _ in before)
        # the sidecar's own inbound log: every request it accepted was answered 200
        inbound = [json.loads(line) for line in access.read_text().splitlines()
                   if '"direction":"inbound"' in line]
        assert len(inbound) >= len(before)
        assert {r["status"] for r in inbound} == {200}
        # the client saw only 200s, and mesh answers for requests the sidecar never accepted:
        # refused connections while it drained (UF), no instance (UH) or no such service (NR) once
    # it left
        assert {f for _, s, f in results if s != 200} <= {"UF", "UH", "NR"}
        assert all(t >= sigterm_at for t, s, _ in results if s != 200)
        assert exited_at is not None and dropped_at is not None
        assert dropped_at - exited_at <= GOSSIP_ROUND, (dropped_at - sigterm_at,
                                                        exited_at - sigterm_at)
    finally:
        if mesh is not None:
            mesh.stop()
        for p in reversed(procs):
            stop(p)
