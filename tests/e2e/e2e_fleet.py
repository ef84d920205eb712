"""Real-process fleets for issue 10's acceptance tests (failover under ``kill -9`` and SIGTERM,
request ids across hops): sidecars in front of apps, a client sidecar, optionally a control for
gossip, and an open-loop load client that records every response.

Every process gets its own loopback address from 127.0.110.0-127.0.119.255 (this suite's block;
the shared e2e mesh uses 127.77/16), so instances keep the docs' service port 9080; every other
port (proxy, admin, gossip, the apps') is a free one on that address. Processes are started with
``procs.spawn`` and stopped by PID (``Proc.stop``: terminate, wait, kill).

The load client (:func:`open_loop`) is open loop: request ``i`` is sent at ``start + i / rate``
whatever happened to the earlier ones, on an idle keep-alive connection to the client's outbound
proxy or a new one, each under its own timeout. Each request carries its own ``x-request-id``
(``TAG-NNNN``), so a failed one can be found in every sidecar's access log (:func:`failure_report`).
Actions scheduled with ``at=[(seconds, fn), ...]`` (a ``kill -9``, a SIGTERM) run at those offsets
from the load's start, in the same Trio run.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trio
import yaml
from e2e_harness import (READY_TIMEOUT, SERVICE_PORT, Sidecar, Upstream, sidecar_available,
                         wait_sidecar_ready, wait_until, wait_upstream_ready)
from procs import Proc, free_port, spawn, trimesh_command

from trimesh.samples._client import FetchError, HttpConnection, split_url

REPO = Path(__file__).resolve().parents[2]
FLAGS_HEADER = "x-trimesh-response-flags"  # the wire names (docs/sidecar.md), not imports:
ATTEMPTS_HEADER = "x-trimesh-attempts"  # the proxy under test may be rebuilt
GOSSIP_PROFILE = "local"  # memberlist's local profile, as tests/mesh (docs/gossip.md)
SEED = 10  # the sidecars' --seed (balancer and backoff draws repeat from run to run)

_BLOCK_FIRST = (127 << 24) | (0 << 16) | (110 << 8)  # 127.0.110.0
_BLOCK_SIZE = 10 * 256  # up to 127.0.119.255
_next = [0]


def next_address() -> str:
    """A fresh address of the block; a per-process offset keeps two runs of the suite apart."""
    _next[0] += 1
    n = ((os.getpid() % 8) * 320 + _next[0]) % _BLOCK_SIZE
    if n % 256 in (0, 255):
        _next[0] += 1
        n += 1
    ip = _BLOCK_FIRST + n
    return f"127.0.{(ip >> 8) & 255}.{ip & 255}"


def require_sidecar() -> None:
    """Skip without ``trimesh run sidecar`` (fail under ``CI=true``: the CLI must work there)."""
    ok, why = sidecar_available()
    if not ok:
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)


def instance(service: str, address: str, port: int = SERVICE_PORT, version: str = "v1") -> dict:
    return {"service": service, "namespace": "default", "address": address, "port": port,
            "labels": {"version": version}}


# -- processes -------------------------------------------------------------------------------


def start_app(log_dir: Path, name: str, address: str) -> Upstream:
    """A fake upstream (answers 200 with a JSON echo and ``x-upstream-name``) on a free port."""
    port = free_port(address)
    argv = [sys.executable, "-m", "trimesh.testing.upstream", "--address", address, "--port",
            str(port), "--name", name, "--no-record"]
    return Upstream(name, name, "v1", address, port, spawn(name, argv, log_dir))


@dataclass
class Gossip:
    """How a sidecar joins the control's gossip cluster."""

    join: str  # HOST:PORT of the control's gossip member
    key_file: Path


def start_control(log_dir: Path) -> tuple[Proc, Gossip]:
    """``trimesh run control`` with gossip on a fresh address and free ports; returns once its
    mesh key exists and it logged its ready line."""
    address = next_address()
    state = log_dir / "control-state"
    gossip_port = free_port(address)
    argv = trimesh_command() + [
        "run", "control", "--state-dir", str(state), "--address", address,
        "--config-port", str(free_port(address)), "--gossip-port", str(gossip_port),
        "--gossip-profile", GOSSIP_PROFILE]
    proc = spawn("control", argv, log_dir)
    key_file = state / "gossip.key"
    wait_until(lambda: key_file.exists() and "control ready" in proc.log_tail(),
               READY_TIMEOUT, "the control's ready line", proc)
    return proc, Gossip(f"{address}:{gossip_port}", key_file)


def access_log_path(log_dir: Path, name: str) -> Path:
    return log_dir / f"{name}-access.log"


def start_node(log_dir: Path, name: str, service: str, *, address: str | None = None,
               port: int = SERVICE_PORT, app: tuple[str, int] | None = None,
               instances: list[dict] | None = None, config: str = "",
               gossip: Gossip | None = None, app_argv: Sequence[str] = (),
               version: str = "v1") -> Sidecar:
    """Start ``trimesh run sidecar`` named ``name`` (its log, access log and files are named after
    it) for ``service`` on ``address`` (default: a fresh one), in front of the app at ``app``
    (default: the same address, a free port: nothing listens there unless ``app_argv`` starts
    it as the sidecar's child, with HTTP_PROXY set). Instances come from a static ``--registry``
    file (``instances``) and/or gossip; rules from a ``--config`` file; no control API."""
    address = address or next_address()
    app_address, app_port = app or (address, free_port(address))
    registry_path = log_dir / f"{name}-registry.yaml"
    config_path = log_dir / f"{name}-config.yaml"
    config_path.write_text(config)
    proxy_port, admin_port = free_port(address), free_port(address)
    argv = trimesh_command() + [
        "run", "sidecar", "--service", service, "--version", version,
        "--port", str(port), "--app-address", app_address, "--app-port", str(app_port),
        "--address", address, "--proxy-port", str(proxy_port), "--admin-port", str(admin_port),
        "--control", "none", "--config", str(config_path), "--drain-timeout", "1",
        "--access-log", str(access_log_path(log_dir, name)), "--seed", str(SEED)]
    if instances is not None:
        registry_path.write_text(yaml.safe_dump(instances))
        argv += ["--registry", str(registry_path)]
    if gossip is not None:
        argv += ["--gossip-port", str(free_port(address)), "--join", gossip.join,
                 "--gossip-key-file", str(gossip.key_file), "--gossip-profile", GOSSIP_PROFILE]
    if app_argv:
        argv += ["--", *app_argv]
    # PYTHONPATH: an app (trimesh.samples, examples/) finds the checkout wherever pytest was started.
    proc = spawn(name, argv, log_dir, env={"PYTHONPATH": str(REPO)})
    return Sidecar(service, address, port, proxy_port, admin_port, config_path, registry_path,
                   proc, applied_text=config)


def wait_ready(apps: Sequence[Upstream] = (), sidecars: Sequence[Sidecar] = ()) -> None:
    for app in apps:
        wait_upstream_ready(app)
    for sidecar in sidecars:
        wait_sidecar_ready(sidecar)


def stop_all(procs: list[Proc]) -> None:
    """Stop by PID, last started first (a client before the instances it calls)."""
    for proc in reversed(procs):
        proc.stop()


def cluster_statistics(sidecar: Sidecar, cluster: str) -> dict:
    """``/clusters``' entry for ``cluster`` (``instances`` and ``statistics``), {} when absent."""
    return sidecar.admin("/clusters").json().get(cluster, {})


def access_lines(log_dir: Path, name: str) -> list[dict]:
    """The JSON access-log lines sidecar ``name`` has written so far (others are skipped)."""
    try:
        text = access_log_path(log_dir, name).read_text(errors="replace")
    except OSError:
        return []
    lines = []
    for raw in text.splitlines():
        raw = raw[raw.find("{"):]
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        if isinstance(record, dict) and "request_id" in record:
            lines.append(record)
    return lines


def wait_access_lines(log_dir: Path, names: list[str], done, what: str,
                      timeout: float = 5.0) -> dict[str, list[dict]]:
    """Every named sidecar's lines, once ``done(lines by name)`` holds (the log is written in
    batches, every 0.5 s at the latest)."""
    def enough():
        lines = {n: access_lines(log_dir, n) for n in names}
        return lines if done(lines) else None
    return wait_until(enough, timeout, what)


# -- the load client --------------------------------------------------------------------------


@dataclass
class Outcome:
    """One request of a load run: what came back (``status`` None: no response, see ``error``)."""

    index: int
    request_id: str
    offset: float  # seconds after the load's start it was sent
    status: int | None = None
    headers: tuple[tuple[str, str], ...] = ()
    error: str = ""

    def header(self, name: str) -> str:
        return ", ".join(v for k, v in self.headers if k == name)

    @property
    def served_by(self) -> str:
        return self.header("x-upstream-name") or "-"


@dataclass
class LoadRun:
    outcomes: list[Outcome] = field(default_factory=list)
    marks: dict[str, float] = field(default_factory=dict)  # action name -> offset it ran at
    connections: int = 0

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status != 200]

    def codes(self) -> dict[str, int]:
        return dict(Counter(str(o.status) if o.status is not None else "no-response"
                            for o in self.outcomes))

    def summary(self) -> str:
        ok = len(self.outcomes) - len(self.failed)
        kinds = Counter(f"{o.status} flags={o.header(FLAGS_HEADER) or '-'} "
                        f"attempts={o.header(ATTEMPTS_HEADER) or '-'}" for o in self.failed)
        return (f"{ok}/{len(self.outcomes)} succeeded ({100 * ok / max(1, len(self.outcomes)):.1f} "
                f"%), {self.connections} connections, marks {self.marks}; failures: "
                f"{dict(kinds) or 'none'}")


async def open_loop(proxy: tuple[str, int], url: str, *, rate: float, count: int, tag: str,
                    timeout: float = 5.0, at: list[tuple[float, str, object]] = ()) -> LoadRun:
    """Send ``count`` GETs of ``url`` through the HTTP proxy at ``proxy`` at ``rate`` per second
    (open loop), each with ``x-request-id: TAG-NNNN``; run each ``(offset, name, fn)`` of ``at``
    at its offset. Bounded: the run ends ``count / rate + timeout`` seconds after it starts."""
    _, _, authority, _ = split_url(url)
    idle: list[HttpConnection] = []
    run = LoadRun()
    start = trio.current_time()

    async def one(i: int) -> None:
        outcome = Outcome(i, f"{tag}-{i:04d}", trio.current_time() - start)
        run.outcomes.append(outcome)
        conn = idle.pop() if idle else None
        try:
            with trio.fail_after(timeout):
                if conn is None:
                    conn = await HttpConnection.connect(*proxy)
                    run.connections += 1
                response = await conn.request("GET", url, [("host", authority),
                                                           ("x-request-id", outcome.request_id)])
        except (FetchError, trio.TooSlowError) as exc:
            outcome.error = f"{type(exc).__name__}: {exc}"
            if conn is not None:
                await conn.aclose()
            return
        outcome.status, outcome.headers = response.status, response.headers
        if conn.reusable:
            idle.append(conn)
        else:
            await conn.aclose()

    async def action(offset: float, name: str, fn) -> None:
        await trio.sleep_until(start + offset)
        run.marks[name] = round(trio.current_time() - start, 3)
        fn()

    with trio.move_on_after(count / rate + timeout + 1.0):
        async with trio.open_nursery() as nursery:
            for offset, name, fn in at:
                nursery.start_soon(action, offset, name, fn)
            for i in range(count):
                await trio.sleep_until(start + i / rate)
                nursery.start_soon(one, i)
    for conn in idle:
        await conn.aclose()
    run.outcomes.sort(key=lambda o: o.index)
    return run


def failure_report(run: LoadRun, log_dir: Path, names: list[str], limit: int = 25) -> str:
    """The failed requests (status, flags, attempts header, error) with every access-log line of
    the named sidecars that carries their request id."""
    lines = {n: access_lines(log_dir, n) for n in names}
    out = [run.summary()]
    for o in run.failed[:limit]:
        out.append(f"- {o.request_id} sent at {o.offset:.3f}s: status {o.status} flags "
                   f"{o.header(FLAGS_HEADER) or '-'} attempts {o.header(ATTEMPTS_HEADER) or '-'}"
                   f"{' error ' + o.error if o.error else ''}")
        for name, records in lines.items():
            for r in records:
                if r["request_id"] == o.request_id:
                    out.append(f"    {name}: {r['direction']} {r['status']} flags {r['flags']} "
                               f"upstream {r['upstream']} attempts {r['attempts']} "
                               f"{r['duration_ms']} ms")
    if len(run.failed) > limit:
        out.append(f"... and {len(run.failed) - limit} more")
    return "\n".join(out)

