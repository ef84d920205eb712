"""Real processes on loopback for the gossip acceptance tests: one control and N sidecars, each on
its own 127.76.x.y, started concurrently, waited for by polling, stopped by PID."""

from __future__ import annotations

import http.client
import json
import math
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from procs import trimesh_command

# This suite's own loopback addresses, a /24 of 127.76.0.0/16 picked by the PID so that two runs
# at once (two worktrees on one machine) do not share ports: .1 the control, .10+ the sidecars.
BASE = f"127.76.{os.getpid() % 250 + 1}."
CONTROL_ADDRESS = BASE + "1"
GOSSIP_PORT = 7946
SERVICE_PORT = 9080
ADMIN_PORT = 15000
PROFILE = "local"  # memberlist's local profile: keeps the failure test short (docs/gossip.md §7)
LOAD_ALLOWANCE = 10.0  # seconds: 21 Python processes share 2 cores with other work


def repair_bound(config, n: int) -> float:
    """How long to wait (real time) for gossiped news to reach *every* member. Epidemic gossip
    sends each message a fixed number of times, so now and then a member misses it (with the
    local profile at n = 21, in about one in seven leaves, measured with ``SimCluster``); that
    member learns it at its next push/pull, at most one scaled push/pull interval later. This is
    a timeout for liveness, not the property under test."""
    return config.push_pull_scaled(n) + 2 * config.dissemination_bound(n) + LOAD_ALLOWANCE


@dataclass
class Proc:
    name: str
    argv: list[str]
    log_path: Path
    popen: subprocess.Popen | None = None
    extra: dict = field(default_factory=dict)

    def start(self) -> Proc:
        log = open(self.log_path, "ab")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.popen = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, env=env)
        log.close()
        return self

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill9(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> int | None:
        if not self.alive():
            return self.popen.returncode if self.popen else None
        os.kill(self.pid, signal.SIGTERM)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            return self.popen.wait(timeout=10)

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def get_json(address: str, port: int, path: str, timeout: float = 2.0):
    """(status, parsed JSON or the raw body) or (None, None) when nothing answers."""
    conn = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        if "json" not in (response.getheader("content-type") or ""):
            return response.status, body
        return response.status, (json.loads(body) if body else None)
    except (OSError, http.client.HTTPException, ValueError):
        return None, None
    finally:
        conn.close()


def sidecar_address(i: int) -> str:
    return f"{BASE}{10 + i}"


def sidecar_argv(i: int, key_file: Path, *, access_log: str = "off") -> list[str]:
    return trimesh_command() + [
        "run", "sidecar", "--service", f"svc{i}", "--version", "v1",
        "--port", str(SERVICE_PORT), "--app-port", "9", "--address", sidecar_address(i),
        "--admin-port", str(ADMIN_PORT), "--proxy-port", "15001", "--control", "none",
        "--gossip-port", str(GOSSIP_PORT), "--join", f"{CONTROL_ADDRESS}:{GOSSIP_PORT}",
        "--gossip-key-file", str(key_file), "--gossip-profile", PROFILE,
        "--access-log", access_log]


def wait_until(predicate, timeout: float, what: str, procs=(), step: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        for proc in procs:
            if not proc.alive():
                raise AssertionError(f"{proc.name} exited while waiting for {what}:\n"
                                     f"{proc.log_tail()}")
        time.sleep(step)
    tails = "\n".join(f"--- {p.name}\n{p.log_tail(10)}" for p in procs)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{tails}")


def config_dump(i: int, timeout: float = 2.0):
    status, body = get_json(sidecar_address(i), ADMIN_PORT, "/config_dump", timeout)
    return body if status == 200 else None


def ready(i: int) -> bool:
    status, _ = get_json(sidecar_address(i), ADMIN_PORT, "/ready", 1.0)
    return status == 200


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))
    return ordered[k]
