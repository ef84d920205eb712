"""Helpers for the resilience acceptance tests: a real ``trimesh run sidecar`` process on loopback
(``--registry``/``--config`` files, no control), fake upstreams in this process (so a test can change
what they answer while traffic flows) or as processes (so a test can ``kill -9`` one), and async
admin/load clients. Every process is stopped by PID (terminate, wait, kill).

Addresses come from 127.79.0.0/16 (the e2e suite uses 127.77/16), one per instance, so instances
keep the docs' ports.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import trio
import yaml

from procs import STOP_TIMEOUT, Proc, free_port, spawn, trimesh_command  # noqa: F401  (re-exported)

from trimesh.samples._client import FetchError, Proxy, fetch
from trimesh.sidecar._health import USER_AGENT as HEALTH_USER_AGENT
from trimesh.testing import FakeUpstream

READY_TIMEOUT = 30.0  # seconds for a process to be ready (2 shared cores, cold imports)

_counter = [0]


def next_address() -> str:
    _counter[0] += 1
    n = (os.getpid() % 200) * 64 + _counter[0]
    return f"127.79.{(n >> 8) % 256}.{n % 254 + 1}"


async def wait_for(predicate, timeout: float, what: str, proc: Proc | None = None,
                   interval: float = 0.05):
    """Poll the async ``predicate`` until truthy (bounded); fail with the process log."""
    with trio.move_on_after(timeout):
        while True:
            try:
                value = await predicate()
            except (OSError, FetchError, ValueError):
                value = None
            if value:
                return value
            if proc is not None and not proc.alive():
                raise AssertionError(f"{proc.name} exited ({proc.popen.returncode}) while waiting "
                                     f"for {what}:\n{proc.log_tail()}")
            await trio.sleep(interval)
    tail = f":\n{proc.log_tail()}" if proc is not None else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {what}{tail}")


async def port_open(host: str, port: int) -> bool:
    try:
        stream = await trio.open_tcp_stream(host, port)
    except OSError:
        return False
    await stream.aclose()
    return True


def instance(service: str, address: str, port: int, version: str = "v1") -> dict:
    return {"service": service, "namespace": "default", "address": address, "port": port,
            "labels": {"version": version}}


@dataclass
class SidecarProc:
    address: str
    proxy_port: int
    admin_port: int
    proc: Proc
    registry_path: Path

    @property
    def proxy(self) -> Proxy:
        return Proxy(self.address, self.proxy_port)

    async def admin(self, path: str):
        resp = await fetch(f"http://{self.address}:{self.admin_port}{path}", timeout=5)
        return json.loads(resp.body) if path != "/ready" else resp.status

    async def cluster_stats(self, name: str) -> dict:
        """``/clusters``' statistics of the cluster ``name`` (``fqdn`` or ``fqdn|k=v``)."""
        clusters = await self.admin("/clusters")
        assert name in clusters, f"no cluster {name}: {sorted(clusters)}"
        return clusters[name]["statistics"]

    async def get(self, url: str, headers=(), timeout: float = 10.0):
        return await fetch(url, headers=headers, timeout=timeout, proxy=self.proxy)

    def stop(self) -> None:
        self.proc.stop()


async def start_sidecar(log_dir: Path, instances: list[dict], config_files: list[Path],
                        *extra: str, service: str = "sleep") -> SidecarProc:
    address = next_address()
    registry = log_dir / "registry.yaml"
    registry.write_text(yaml.safe_dump(instances))
    proxy_port, admin_port, port = (free_port(address), free_port(address), free_port(address))
    argv = trimesh_command() + [
        "run", "sidecar", "--service", service, "--version", "v1", "--port", str(port),
        "--app-port", str(free_port("127.0.0.1")), "--address", address,
        "--proxy-port", str(proxy_port), "--admin-port", str(admin_port), "--control", "none",
        "--registry", str(registry), "--drain-timeout", "1", "--access-log", "off",
        "--seed", "7", *extra]
    for f in config_files:
        argv += ["--config", str(f)]
    sc = SidecarProc(address, proxy_port, admin_port, spawn("sidecar", argv, log_dir), registry)

    async def ready():
        return await sc.admin("/ready") == 200
    try:
        await wait_for(ready, READY_TIMEOUT, "the sidecar's /ready", sc.proc)
    except BaseException:
        sc.stop()
        raise
    return sc


def start_upstream_process(log_dir: Path, name: str, address: str, port: int, *extra: str) -> Proc:
    argv = [sys.executable, "-m", "trimesh.testing.upstream", "--address", address, "--port",
            str(port), "--name", name, "--no-record", *extra]
    return spawn(name, argv, log_dir)


class ControlledUpstream(FakeUpstream):
    """A fake upstream whose health-check answers (recognised by the checker's user agent) are
    ``health_status`` whatever it answers other requests, and which counts data-plane requests
    only (``served_at``: arrival times of non-health requests)."""

    health_status: int = 200

    def __post_init__(self) -> None:
        super().__post_init__()
        self.served_at: list[float] = []
        self.record = False

    def plan(self, headers):
        if headers.get("user-agent") == HEALTH_USER_AGENT:
            headers = {**headers, "x-upstream-status": str(self.health_status)}
        else:
            self.served_at.append(trio.current_time())
        return super().plan(headers)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@dataclass
class Tally:
    """Outcomes of a stream of requests: status codes and which instance answered."""

    codes: dict[int, int] = field(default_factory=dict)

    def add(self, code: int) -> None:
        self.codes[code] = self.codes.get(code, 0) + 1

    @property
    def total(self) -> int:
        return sum(self.codes.values())

    @property
    def ok(self) -> int:
        return self.codes.get(200, 0)
