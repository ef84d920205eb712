"""End-to-end harness: real processes on loopback (issue 3, the HTTP data plane). The fixtures that
use these helpers are in conftest.py.

One session-scoped *mesh* is shared by every e2e module (starting Python processes is the slow
part):

- seven fake upstreams (``python -m trimesh.testing.upstream``), each on its own 127.77.x.y address
  and the docs' port 9080: ``reviews`` v1/v2/v3, ``httpbin`` v1/v2/v3 (httpbin v3 never answers:
  the hanging mirror) and ``ratings`` v1, which has its own (inbound) sidecar in front of it;
- the client's sidecar (``trimesh run sidecar --service productpage ...``) whose ``--registry`` file
  lists those instances (ratings at its sidecar, so requests to it take two hops) and whose
  ``--config`` file holds the route rules. Tests reach the services through its outbound proxy (a
  plain request with ``Host: reviews:9080``, or curl with ``-x`` as an HTTP proxy).

A test changes routing with ``mesh.apply(YAML)``: the config file is rewritten atomically and the
call returns once the sidecar's ``/config_dump`` shows a new snapshot with exactly the new rule set
(the sidecar polls its files once per second). Every process is stopped by PID in the fixture
finalizer (terminate, wait, kill). The whole directory skips with a reason when ``trimesh run
sidecar`` does not start, and fails instead under CI=true (where a broken CLI is a broken build).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml
from procs import STOP_TIMEOUT, Proc, free_port, spawn, trimesh_command, wait_until  # noqa: F401  (re-exported)

READY_TIMEOUT = 20.0  # seconds to wait for a process's readiness (2 shared cores, cold imports)
CONFIG_TIMEOUT = 10.0  # seconds to wait for the sidecar to show a new config
SERVICE_PORT = 9080  # the docs' BookInfo port; every instance has its own address, so all share it
SEED = 7  # the sidecars' --seed: weighted picks and fault percentages replay run after run
ATTEMPTS_HEADERS = ("x-trimesh-attempts", "x-envoy-attempt-count")  # the proxy reports attempts


_SIDECAR_AVAILABLE: tuple[bool, str] | None = None


def sidecar_available() -> tuple[bool, str]:
    """Whether ``trimesh run sidecar`` exists (asked once per session)."""
    global _SIDECAR_AVAILABLE
    if _SIDECAR_AVAILABLE is None:
        try:
            out = subprocess.run(trimesh_command() + ["run", "sidecar", "--help"],
                                 capture_output=True, text=True, timeout=30)
            ok = out.returncode == 0 and "--proxy-port" in out.stdout
            why = "" if ok else ("`trimesh run sidecar` is not available yet: "
                                 + (out.stderr.strip().splitlines() or ["no --proxy-port"])[-1])
        except (OSError, subprocess.TimeoutExpired) as exc:
            ok, why = False, f"`trimesh run sidecar` could not run: {exc}"
        _SIDECAR_AVAILABLE = (ok, why)
    return _SIDECAR_AVAILABLE


# -- addresses and ports ---------------------------------------------------------------------

_next_host = [0]


def next_address() -> str:
    """A fresh loopback address per instance (127.77.0.0/16 keeps clear of other suites')."""
    _next_host[0] += 1
    n = (os.getpid() % 200) * 256 + _next_host[0]
    return f"127.77.{(n >> 8) % 256}.{n % 254 + 1}"


# -- processes -------------------------------------------------------------------------------


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


@dataclass
class Upstream:
    name: str
    service: str
    version: str
    address: str
    port: int
    proc: Proc

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    def requests(self) -> list[dict]:
        return httpx.get(f"{self.url}/_upstream/requests", timeout=5).json()["requests"]

    def reset(self) -> None:
        httpx.post(f"{self.url}/_upstream/reset", timeout=5).raise_for_status()

    def instance(self) -> dict:
        """Its registry entry: the app reached directly (as if it had no sidecar of its own)."""
        return {"service": self.service, "namespace": "default", "address": self.address,
                "port": self.port, "labels": {"version": self.version}}


def start_upstream(log_dir: Path, service: str, version: str, *extra: str,
                   port: int = SERVICE_PORT) -> Upstream:
    """A fake upstream process on a fresh address (port 0 = any free port)."""
    address = next_address()
    port = port or free_port(address)
    name = f"{service}-{version}"
    argv = [sys.executable, "-m", "trimesh.testing.upstream", "--address", address, "--port",
            str(port), "--name", name, "--service", service, "--version", version, *extra]
    return Upstream(name, service, version, address, port, spawn(name, argv, log_dir))


@dataclass
class Sidecar:
    service: str
    address: str
    port: int
    proxy_port: int
    admin_port: int
    config_path: Path
    registry_path: Path
    proc: Proc
    applied_text: str = ""  # the rules the config file holds (without the marker)
    applies: int = 0

    @property
    def proxy_url(self) -> str:
        return f"http://{self.address}:{self.proxy_port}"

    @property
    def admin_url(self) -> str:
        return f"http://{self.address}:{self.admin_port}"

    def admin(self, path: str) -> httpx.Response:
        return httpx.get(self.admin_url + path, timeout=5)

    def config_dump(self) -> str:
        return self.admin("/config_dump").text

    def access_records(self, tag: str, count: int) -> list[dict]:
        """The ``count`` access-log records (JSON lines) whose path contains ``tag``, once the
        sidecar has flushed them all (it writes in batches; bounded wait)."""
        path = self.config_path.parent / f"{self.service}-access.log"

        def found():
            lines = [line for line in path.read_text().splitlines() if tag in line]
            return [json.loads(line) for line in lines] if len(lines) >= count else None

        return wait_until(found, CONFIG_TIMEOUT, f"{count} access-log records of {tag}", self.proc)

    def apply(self, text: str) -> float:
        """Replace the rules (YAML, docs' format, kept verbatim; "" = none); return once
        ``/config_dump`` shows exactly the new rules. Returns the monotonic time the file was
        written.

        Rules often keep their names from one config to the next, and the snapshot version also
        moves for other reasons (the registry, the own app's health), so neither tells that *this*
        file was loaded. Each write therefore carries one extra marker rule with a fresh name (for
        a service nobody calls), and the wait is for that name."""
        if text == self.applied_text:
            return time.monotonic()
        self.applies += 1
        marker = f"e2e-apply-{os.getpid()}-{self.applies}"
        docs = [d for d in yaml.safe_load_all(text) if d]
        names = {d["metadata"]["name"] for d in docs} | {marker}
        body = text.rstrip() + "\n---\n" if docs else ""
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(body + MARKER_RULE.format(name=marker))
        written = time.monotonic()
        os.replace(tmp, self.config_path)

        def shown() -> bool:
            dump = self.admin("/config_dump").json()
            return {o["metadata"]["name"] for o in dump.get("objects", [])} == names

        wait_until(shown, CONFIG_TIMEOUT, f"config {sorted(names)} in /config_dump", self.proc)
        self.applied_text = text
        return written


MARKER_RULE = """\
apiVersion: config.istio.io/v1alpha2
kind: RouteRule
metadata:
  name: {name}
  namespace: default
spec:
  destination:
    name: e2e-config-marker
  route:
  - labels:
      version: v1
"""


def start_sidecar(log_dir: Path, service: str, instances: list[dict], config: str = "",
                  version: str = "v1", *, app: tuple[str, int] | None = None,
                  port: int | None = None, control_url: str | None = None) -> Sidecar:
    """Start ``trimesh run sidecar`` on a fresh address, in front of the app at ``app`` (address,
    port; default: nothing listens there) with service port ``port`` (default: a free one). Rules
    come from a ``--config`` file, or from the control at ``control_url`` when given (then there
    is no config file)."""
    address = next_address()
    registry_path = log_dir / f"{service}-registry.yaml"
    registry_path.write_text(yaml.safe_dump(instances))
    config_path = log_dir / f"{service}-config.yaml"
    config_path.write_text(config)
    port = port or free_port(address)
    proxy_port, admin_port = free_port(address), free_port(address)
    app_address, app_port = app or ("127.0.0.1", free_port("127.0.0.1"))
    argv = trimesh_command() + [
        "run", "sidecar", "--service", service, "--version", version,
        "--port", str(port), "--app-address", app_address, "--app-port", str(app_port),
        "--address", address, "--proxy-port", str(proxy_port), "--admin-port", str(admin_port),
        "--registry", str(registry_path),  # static instances; no --gossip-port: gossip stays off
        "--drain-timeout", "1", "--access-log", str(log_dir / f"{service}-access.log"),
        "--seed", str(SEED),
    ]
    if control_url is None:
        # no control process: rules come from the file only (so a control some other suite
        # runs on 127.0.0.1:15010 can't leak its rules into ours)
        argv += ["--config", str(config_path), "--control", "none"]
    else:
        argv += ["--control", control_url]
    proc = spawn(f"sidecar-{service}", argv, log_dir)
    return Sidecar(service, address, port, proxy_port, admin_port, config_path, registry_path,
                   proc, applied_text=config)


def wait_sidecar_ready(sidecar: Sidecar) -> None:
    wait_until(lambda: sidecar.admin("/ready").status_code == 200, READY_TIMEOUT,
               f"{sidecar.proc.name} /ready", sidecar.proc)


def wait_upstream_ready(upstream: Upstream) -> None:
    wait_until(lambda: _port_open(upstream.address, upstream.port), READY_TIMEOUT,
               f"{upstream.name} listening", upstream.proc)


@dataclass
class Mesh:
    """The shared processes: upstreams by name (``reviews-v1`` ...) and the sidecars."""

    upstreams: dict[str, Upstream]
    sidecar: Sidecar  # productpage's: every test's requests go through its outbound proxy
    inbound: Sidecar  # ratings' sidecar in front of the ratings-v1 app (the second hop)

    def apply(self, text: str) -> float:
        return self.sidecar.apply(text)

    def reset(self) -> None:
        for u in self.upstreams.values():
            u.reset()

    def client(self, host: str = f"reviews:{SERVICE_PORT}", **kw) -> httpx.AsyncClient:
        """An httpx client that talks to the outbound proxy, naming the service in Host."""
        return httpx.AsyncClient(base_url=self.sidecar.proxy_url, headers={"host": host},
                                 timeout=kw.pop("timeout", 10.0),
                                 limits=httpx.Limits(max_connections=32), **kw)


def attempts_of(response: httpx.Response) -> int | None:
    for name in ATTEMPTS_HEADERS:
        if name in response.headers:
            return int(response.headers[name])
    return None


def served_by(response: httpx.Response) -> str:
    """The upstream instance that answered (its JSON body), or the mesh's own status marker."""
    if response.headers.get("x-upstream-name"):
        return response.headers["x-upstream-name"]
    return f"mesh-{response.status_code}"


async def fetch_many(client: httpx.AsyncClient, count: int, path: str = "/", *,
                     concurrency: int = 8, headers: dict | None = None) -> list[httpx.Response]:
    """``count`` GETs over ``concurrency`` keep-alive connections (bounded, in parallel)."""
    import trio

    results: list[httpx.Response] = []

    async def worker(n: int) -> None:
        for _ in range(n):
            results.append(await client.get(path, headers=headers))

    async with trio.open_nursery() as nursery:
        for i in range(concurrency):
            nursery.start_soon(worker, count // concurrency + (1 if i < count % concurrency else 0))
    assert len(results) == count
    return results


def rule(name: str, destination: str, routes: list[dict] | None = None, precedence: int = 1,
         **spec) -> dict:
    """A RouteRule document in the docs' format."""
    body = {"destination": {"name": destination}, "precedence": precedence, **spec}
    if routes is not None:
        body["route"] = routes
    return {"apiVersion": "config.istio.io/v1alpha2", "kind": "RouteRule",
            "metadata": {"name": name, "namespace": "default"}, "spec": body}


def dump_rules(*docs: dict) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)




def _tests_conftest():
    """tests/conftest.py, loaded by path (every conftest is named "conftest")."""
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "conftest.py"
    spec = importlib.util.spec_from_file_location("_trimesh_tests_conftest", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def require_tool(name: str) -> str:
    """tests/conftest.py's ``require_tool``: skip without the tool, fail under CI=true."""
    return _tests_conftest().require_tool(name)


def skip_or_fail(reason: str) -> None:
    """tests/conftest.py's ``skip_or_fail``: skip, or fail under CI=true."""
    _tests_conftest().skip_or_fail(reason)
