"""The demo mesh launcher: a control and every instance with its sidecar, as real processes.

``trimesh demo`` and the end-to-end tests (tests/demo/) start the same mesh with this module:

1. The apps are the package's own samples (:mod:`trimesh.samples`, ``BOOKINFO``): they run as
   ``python -m trimesh.samples…`` from any working directory, the same from a wheel or an editable
   checkout (nothing of a checkout is read at run time); every child's working directory is the
   demo's own temporary directory.
2. :func:`plan_mesh` (pure, :mod:`._layout`) gives each instance its loopback address.
3. :meth:`DemoMesh.start` starts ``trimesh run control`` (config API and gossip member; it writes
   the mesh key ``STATE_DIR/gossip.key`` before its API answers) and waits for its API, then
   starts every ``trimesh run sidecar --join CONTROL:7946 … -- APP`` at once (the sidecar starts its
   app once it is ready, with ``HTTP_PROXY`` pointing at its outbound listener), and reports each
   process as it becomes ready: a sidecar when its admin ``/ready`` answers 200, an app when its
   port accepts connections, the control when its API answers. A process that exits while
   starting, or a mesh not ready within :data:`READY_TIMEOUT`, is a :class:`DemoError` carrying
   the tail of that process's log. Then it waits until gossip has converged
   (:meth:`DemoMesh.wait_gossip`): the control's ``GET /v1/members`` shows every member alive and
   every sidecar's ``/config_dump`` lists every instance — before that, a page load could still
   find ``reviews`` without endpoints.
4. :meth:`DemoMesh.stop` stops every process by PID with :func:`trimesh.nursery.stop_processes`
   (the stop sequence the sidecar applies to its app, docs/supervision.md): SIGTERM to the
   sidecars' groups (each forwards it to its app's group and drains), wait up to
   :data:`STOP_TIMEOUT`, then SIGKILL to whatever is left, the groups of their apps included (each
   app runs in its own group, found from ``/proc/<sidecar>/task/*/children``); then the apps
   whose sidecar died without stopping them, then the control. Every child is a
   :class:`trimesh.nursery.GroupPopen` in its own session, so a terminal's Ctrl-C reaches only the
   demo, which then stops them in order; on Linux each also gets ``PR_SET_PDEATHSIG`` so a demo
   killed with SIGKILL does not leave its sidecars behind.

It is synchronous on purpose (``subprocess``, ``http.client``, polling): it supervises *processes*,
and the same object must serve a plain CLI and a module-scoped pytest fixture, where no Trio run is
active. Polling is bounded by deadlines everywhere.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ..control import ControlClient, mesh_key_path
from ..errors import NotFoundError, TrimeshError
from ..nursery import (
    GroupPopen,
    ProcessGroup,
    child_pids,
    log_tail,
    read_cmdline,
    spawn_logged,
    stop_processes,
)
from ..samples import BOOKINFO, BOOKINFO_RULES
from ._layout import (
    ADMIN_PORT,
    CONTROL_PORT,
    DEFAULT_CONTROL_ADDRESS,
    DEMO_BLOCK,
    GOSSIP_PORT,
    INGRESS_PORT,
    INGRESS_SERVICE,
    GossipProgress,
    Member,
    MeshPlan,
    WorkloadLike,
    gossip_progress,
    plan_mesh,
)
from ._page import PageView, read_page

READY_TIMEOUT = 60.0  # seconds for the whole mesh to be ready (13 cold Python starts on 2 cores)
STOP_TIMEOUT = 8.0  # seconds between SIGTERM and SIGKILL (sidecars drain 1 s, then stop their app)
SYNC_TIMEOUT = 10.0  # seconds for every sidecar to show the control's latest revision
# Seconds for gossip to converge once every sidecar is ready. A joiner push/pulls with the control
# at once, but with 7 members the `local` profile retransmits each join only 2 times
# (retransmit_mult 2 x ceil(log10(8))), so a sidecar can miss a later joiner until a gossip or a
# push/pull (every 15 s, `local`) repairs it: seen 0.1-2.5 s here; the bound covers one push/pull.
GOSSIP_TIMEOUT = 30.0
POLL_INTERVAL = 0.05  # seconds between readiness polls
PAGE_TIMEOUT = 30.0  # seconds a page load may take (the fault task's page takes ~6 s)
LOG_TAIL_LINES = 30


class DemoError(TrimeshError):
    """The demo mesh could not start (or a scenario could not run); the message says why."""


# -- where things are ------------------------------------------------------------------------


def trimesh_command() -> list[str]:
    """How to run ``trimesh`` in a child: the console script beside this Python, else ``-c``."""
    script = Path(sys.executable).with_name("trimesh")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from trimesh.cli import main; main()"]


def port_free(address: str, port: int, *, udp: bool = False) -> bool:
    """Whether ``address:port`` can be bound for TCP (and ``udp``: for UDP too) now (a hint:
    another process may take it)."""
    kinds = [socket.SOCK_STREAM] + ([socket.SOCK_DGRAM] if udp else [])
    for kind in kinds:
        with socket.socket(socket.AF_INET, kind) as s:
            if kind == socket.SOCK_STREAM:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((address, port))
            except OSError:
                return False
    return True


def default_control_address(block: str) -> str:
    """``127.0.0.1`` when the default control port and the gossip port (TCP and UDP) are free there
    (then ``trimesh create`` needs no ``--control``), else the block's first address."""
    if (port_free(DEFAULT_CONTROL_ADDRESS, CONTROL_PORT)
            and port_free(DEFAULT_CONTROL_ADDRESS, GOSSIP_PORT, udp=True)):
        return DEFAULT_CONTROL_ADDRESS
    return f"{block}.1"


# -- processes -------------------------------------------------------------------------------


@dataclass
class Process:
    """One child of the demo (or an app, child of a sidecar: a group known by its PID)."""

    name: str  # "control", "sidecar reviews-v2", "app reviews-v2"
    pid: int
    log_path: Path
    popen: GroupPopen | None = None  # None for an app (the sidecar is its parent)
    group: ProcessGroup | None = None  # an app's group (its leader's cmdline guards PID reuse)
    ready_at: float | None = None  # seconds after start
    returncode: int | None = None  # as a shell reports it (143 after SIGTERM)

    @property
    def handle(self) -> GroupPopen | ProcessGroup:
        handle = self.popen if self.popen is not None else self.group
        assert handle is not None, f"{self.name}: neither a child nor a group"
        return handle

    @property
    def killed(self) -> bool:
        return self.handle.killed

    def alive(self) -> bool:
        """Whether its group still runs (for a child: the leader or any member it left)."""
        return self.handle.group_alive()

    def signal(self, signum: int) -> None:
        self.handle.signal_group(signum)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return log_tail(self.log_path, lines)


# -- HTTP ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PageLoad:
    """One page load: what came back and how long it took."""

    status: int
    elapsed: float  # seconds
    body: str
    view: PageView


def http_get(address: str, port: int, path: str, *, headers: dict[str, str] | None = None,
             timeout: float = 5.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _ready(address: str, port: int) -> bool:
    """A sidecar's (or the ingress's) admin ``/ready`` answers 200."""
    try:
        status, _ = http_get(address, port, "/ready", timeout=1.0)
    except (OSError, http.client.HTTPException):
        return False
    return status == 200


def _port_open(address: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((address, port)) == 0


# -- the mesh --------------------------------------------------------------------------------


@dataclass
class StopSummary:
    """What :meth:`DemoMesh.stop` did to each process."""

    processes: list[Process] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def killed(self) -> list[Process]:
        return [p for p in self.processes if p.killed]

    @property
    def left(self) -> list[Process]:
        return [p for p in self.processes if p.alive()]

    def lines(self) -> list[str]:
        out = []
        for p in self.processes:
            how = "killed (SIGKILL)" if p.killed else (
                f"exited {p.returncode}" if p.returncode is not None else "stopped")
            out.append(f"  {p.name:<22} pid {p.pid:<8} {how}")
        clean = len(self.processes) - len(self.killed)
        out.append(f"stopped {len(self.processes)} processes in {self.elapsed:.1f}s: {clean} "
                   f"cleanly, {len(self.killed)} killed, {len(self.left)} still running")
        return out


MTLS_MESH_CONFIG = {  # trimesh demo --mtls: the docs' mesh-wide mutual TLS
    "apiVersion": "config.istio.io/v1alpha2", "kind": "MeshConfig",
    "metadata": {"name": "mesh", "namespace": "istio-system"},
    "spec": {"authPolicy": "MUTUAL_TLS"},
}


class DemoMesh:
    """A running (or startable) demo mesh. ``with DemoMesh(...) as mesh`` starts and stops it."""

    def __init__(self, plan: MeshPlan, *, workdir: Path,
                 state_dir: Path | None = None, trimesh: Sequence[str] | None = None,
                 seed: int | None = None, mtls: bool = False) -> None:
        self.plan = plan
        # Mutual TLS (docs/identity.md §12): every sidecar and the ingress hold a certificate
        # from the control's CA, the control holds a MeshConfig with authPolicy MUTUAL_TLS, and
        # users reach productpage through the ingress (its inbound port refuses plaintext).
        self.mtls = mtls
        self.workdir = workdir
        self.log_dir = workdir / "logs"
        self.state_dir = state_dir if state_dir is not None else workdir / "state"
        self.key_file = mesh_key_path(self.state_dir)  # the control writes it, sidecars read it
        self.trimesh = list(trimesh or trimesh_command())
        self.seed = seed  # sidecar i's routing RNG gets seed + i (None: unseeded)
        self.processes: list[Process] = []
        self.control_proc: Process | None = None
        self.ingress_proc: Process | None = None  # BookInfo's edge (docs/quickstart.md)
        self.sidecars: dict[str, Process] = {}
        self.apps: dict[str, Process] = {}
        self.started_at: float | None = None
        self.ready = False
        self.page_loads = 0
        self.rules_applied = 0
        self.gossip: GossipProgress | None = None  # the last convergence check (wait_gossip)
        self.gossip_seconds: float | None = None  # how long gossip took to converge
        self.up_at: float | None = None  # seconds after start: all ready and gossip converged

    # -- introspection ----------------------------------------------------------------------
    @property
    def control_url(self) -> str:
        return self.plan.control_url

    @property
    def entry(self) -> Member:
        """productpage's member: its sidecar's inbound port is where users reach the mesh
        without mutual TLS (:meth:`entry_point`)."""
        return self.plan.member("productpage")

    def entry_point(self) -> tuple[str, int]:
        """``(address, port)`` users load the page at: productpage's sidecar, or under mutual
        TLS the ingress (a plaintext client cannot reach a sidecar's inbound port then)."""
        if self.mtls and self.plan.ingress_address is not None:
            return self.plan.ingress_address, INGRESS_PORT
        return self.entry.address, self.entry.port

    @property
    def page_url(self) -> str:
        address, port = self.entry_point()
        return f"http://{address}:{port}/productpage"

    @property
    def ingress_url(self) -> str | None:
        """The ingress's HTTP base URL (BookInfo's gateway Ingress), or None without one."""
        address = self.plan.ingress_address
        return f"http://{address}:{INGRESS_PORT}" if address is not None else None

    def pids(self) -> list[int]:
        """Every PID the mesh started: control, sidecars, their apps and the ingress."""
        return [p.pid for p in self.processes]

    def statistics(self) -> dict[str, Any]:
        return {"members": len(self.plan.members), "processes": len(self.processes),
                "running": sum(p.alive() for p in self.processes), "ready": self.ready,
                "control": self.control_url, "page_loads": self.page_loads,
                "rules_applied": self.rules_applied, "workdir": str(self.workdir),
                "gossip_seed": self.plan.join,
                "gossip_alive": self.gossip.alive if self.gossip else None,
                "gossip_seconds": self.gossip_seconds}

    def __repr__(self) -> str:
        running = sum(p.alive() for p in self.processes)
        return (f"<DemoMesh {self.plan.block}.0/24 members={len(self.plan.members)} "
                f"running={running}/{len(self.processes)} control={self.control_url}>")

    def __enter__(self) -> DemoMesh:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- starting ---------------------------------------------------------------------------
    def _elapsed(self) -> float:
        assert self.started_at is not None
        return time.monotonic() - self.started_at

    def _spawn(self, name: str, argv: list[str], log_name: str) -> Process:
        log_path = self.log_dir / f"{log_name}.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("TRIMESH_CONTROL", None)
        popen = spawn_logged(argv, log_path, name=name, env=env, cwd=self.workdir, append=False,
                             die_with_parent=True)
        proc = Process(name=name, pid=popen.pid, log_path=log_path, popen=popen)
        self.processes.append(proc)
        return proc

    def _failed(self, proc: Process, what: str) -> DemoError:
        code = proc.popen.exit_status if proc.popen is not None else None
        status = f" (exit status {code})" if code is not None else ""
        return DemoError(f"{proc.name} {what}{status}; its log ({proc.log_path}) ends with:\n"
                         f"{proc.log_tail()}")

    def start(self, progress: Callable[[Process, str], None] | None = None, *,
              timeout: float = READY_TIMEOUT, note: Callable[[str], None] | None = None) -> None:
        """Start every process; ``progress(process, detail)`` is called as each becomes ready,
        ``note(line)`` once gossip has converged (``gossip: 7 of 7 members alive in 0.4s``)."""
        report = progress or (lambda proc, detail: None)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.started_at = time.monotonic()
        deadline = self.started_at + timeout
        plan = self.plan
        self.control_proc = self._spawn(
            "control", plan.control_argv(self.trimesh, state_dir=str(self.state_dir)), "control")
        self._wait(self.control_proc, self._control_ready, deadline, "control API answering")
        self.control_proc.ready_at = self._elapsed()
        report(self.control_proc, self.control_url)
        if self.mtls:
            with self.client() as client:
                client.create(MTLS_MESH_CONFIG)

        for i, m in enumerate(plan.members):
            argv = m.sidecar_argv(self.trimesh, control_url=self.control_url, join=plan.join,
                                  key_file=str(self.key_file),
                                  access_log=str(self.log_dir / f"{m.name}-access.log"),
                                  seed=None if self.seed is None else self.seed + i)
            if self.mtls:
                argv[argv.index("--"):argv.index("--")] = self._cert_argv(m.name)
            self.sidecars[m.name] = self._spawn(f"sidecar {m.name}", argv, m.name)
        pending = {m.name: m for m in plan.members}
        apps_pending = {m.name: m for m in plan.members}
        while pending or apps_pending:
            for name, m in list(pending.items()):
                proc = self.sidecars[name]
                if not proc.alive():
                    raise self._failed(proc, "exited while starting")
                if self._sidecar_ready(m):
                    proc.ready_at = self._elapsed()
                    del pending[name]
                    report(proc, f"{m.url} (proxy :{m.proxy_port}, admin :{m.admin_port})")
            for name, m in list(apps_pending.items()):
                if name in pending:
                    continue
                app = self._app_ready(m)
                if app is not None:
                    app.ready_at = self._elapsed()
                    del apps_pending[name]
                    report(app, f"{m.address}:{m.app_port}" if m.listens else "(client, no port)")
            if time.monotonic() > deadline:
                waiting = [f"sidecar {n}" for n in pending] + [f"app {n}" for n in apps_pending]
                first = self.sidecars[(list(pending) or list(apps_pending))[0]]
                raise self._failed(first, f"not ready after {timeout:.0f}s (waiting for "
                                          f"{', '.join(waiting)})")
            time.sleep(POLL_INTERVAL)
        if self.plan.ingress_address is not None:
            self._start_ingress(deadline)
            report(self.ingress_proc, f"{self.ingress_url} (admin :{ADMIN_PORT})")
        seconds = self.wait_gossip()
        if note is not None:
            assert self.gossip is not None
            note(f"[{self._elapsed():5.1f}s] gossip: {self.gossip.alive} of {self.gossip.total} "
                 f"members alive in {seconds:.1f}s, every sidecar lists all "
                 f"{len(plan.members)} instances (seed {plan.join})")
        self.up_at = self._elapsed()
        self.ready = True

    def _start_ingress(self, deadline: float) -> None:
        """``trimesh run ingress`` with BookInfo's gateway Ingress (the package's
        ``bookinfo-ingress.yaml``), productpage from a one-line registry: its sidecar's inbound."""
        pp = self.plan.member(INGRESS_SERVICE)
        registry = self.log_dir / "ingress-registry.yaml"
        registry.write_text(f"- {{service: {pp.service}, namespace: {pp.namespace}, address: "
                            f"{pp.address}, port: {pp.port}, labels: {{version: {pp.version}}}}}\n")
        config = BOOKINFO_RULES / "bookinfo-ingress.yaml"
        if self.mtls:  # the ingress runs from files: the MeshConfig goes beside its Ingress
            config = self.log_dir / "ingress-config.yaml"
            config.write_text((BOOKINFO_RULES / "bookinfo-ingress.yaml").read_text().rstrip()
                              + "\n---\n" + json.dumps(MTLS_MESH_CONFIG) + "\n")
        argv = self.plan.ingress_argv(self.trimesh, registry=str(registry), config=str(config),
                                      access_log=str(self.log_dir / "ingress-access.log"))
        if self.mtls:
            argv += self._cert_argv("ingress")
        proc = self.ingress_proc = self._spawn("ingress", argv, "ingress")
        address = self.plan.ingress_address
        assert address is not None
        self._wait(proc, lambda: _ready(address, ADMIN_PORT), deadline, "the ingress ready")
        proc.ready_at = self._elapsed()

    def _cert_argv(self, name: str) -> list[str]:
        """The cert agent's flags: the control's CA, the mesh token in the demo's state dir,
        the files under ``workdir/certs/NAME``."""
        from ..ca import DEFAULT_CA_PORT, mesh_token_path

        return ["--ca", f"http://{self.plan.control_address}:{DEFAULT_CA_PORT}",
                "--ca-token-file", str(mesh_token_path(self.state_dir)),
                "--cert-dir", str(self.workdir / "certs" / name)]

    def members(self) -> list[dict[str, Any]]:
        """The control's ``GET /v1/members`` rows (what ``trimesh members -o json`` prints)."""
        with self.client() as client:
            return list(client.members().get("members") or [])

    def _config_dump_instances(self, m: Member) -> list[dict[str, Any]] | None:
        try:
            status, body = http_get(m.address, m.admin_port, "/config_dump", timeout=2.0)
            return list(json.loads(body).get("instances") or []) if status == 200 else None
        except (OSError, http.client.HTTPException, ValueError):
            return None

    def wait_gossip(self, *, timeout: float = GOSSIP_TIMEOUT) -> float:
        """Block until gossip has converged: the control sees every member alive and every
        sidecar's ``/config_dump`` lists every instance. Returns the seconds it took (also in
        :attr:`gossip_seconds`); DemoError naming what is missing past ``timeout``."""
        began = time.monotonic()
        while True:
            for p in self.processes:
                if p.popen is not None and not p.alive():
                    raise self._failed(p, "exited while gossip converged")
            try:
                rows: list[dict[str, Any]] | None = self.members()
            except (OSError, TrimeshError, http.client.HTTPException):
                rows = None
            dumps = {m.name: self._config_dump_instances(m) for m in self.plan.members}
            self.gossip = gossip_progress(self.plan, rows, dumps)
            if self.gossip.done:
                self.gossip_seconds = time.monotonic() - began
                return self.gossip_seconds
            if time.monotonic() - began > timeout:
                assert self.control_proc is not None
                raise self._failed(self.control_proc, f"gossip did not converge in {timeout:.0f}s "
                                   f"({self.gossip.alive} of {self.gossip.total} members alive; "
                                   f"{self.gossip.describe()})")
            time.sleep(POLL_INTERVAL)

    def _wait(self, proc: Process, predicate: Callable[[], bool], deadline: float,
              what: str) -> None:
        while not predicate():
            if not proc.alive():
                raise self._failed(proc, f"exited before {what}")
            if time.monotonic() > deadline:
                raise self._failed(proc, f"timed out waiting for {what}")
            time.sleep(POLL_INTERVAL)

    def _control_ready(self) -> bool:
        try:
            status, _ = http_get(self.plan.control_address, self.plan.control_port,
                                 "/v1/version", timeout=1.0)
        except (OSError, http.client.HTTPException):
            return False
        return status == 200

    def _sidecar_ready(self, m: Member) -> bool:
        return _ready(m.address, m.admin_port)

    def _app_ready(self, m: Member) -> Process | None:
        """The app's Process once it runs (and, for a server, accepts connections)."""
        sidecar = self.sidecars[m.name]
        app = self.apps.get(m.name)
        if app is None:
            kids = child_pids(sidecar.pid)
            if not kids:
                if not sidecar.alive():
                    raise self._failed(sidecar, "exited while starting its app")
                return None
            cmdline = read_cmdline(kids[0])
            if not cmdline or cmdline == read_cmdline(sidecar.pid):
                return None  # forked, not yet exec'd: its cmdline is still the sidecar's
            name = f"app {m.name}"
            app = Process(name=name, pid=kids[0], log_path=sidecar.log_path,
                          group=ProcessGroup(kids[0], name=name, cmdline=cmdline))
            self.apps[m.name] = app
            self.processes.append(app)
        if not app.alive():
            raise self._failed(sidecar, "started its app, which exited at once")
        if m.listens and not _port_open(m.address, m.app_port):
            return None
        return app

    # -- stopping ---------------------------------------------------------------------------
    def stop(self, timeout: float = STOP_TIMEOUT) -> StopSummary:
        """Stop every process by PID, each as a group: the stop sequence (SIGTERM, up to
        ``timeout``, SIGKILL) for the sidecars, then for apps they left, then for the control
        (idempotent). A second Ctrl-C while waiting SIGKILLs everything at once."""
        began = time.monotonic()
        try:
            edge = [self.ingress_proc.handle] if self.ingress_proc is not None else []
            stop_processes(edge + [p.handle for p in self.sidecars.values()], timeout)
            # apps whose sidecar died without stopping them, in what is left of the grace period
            stop_processes([a.handle for a in self.apps.values() if a.alive()],
                           max(0.0, began + timeout - time.monotonic()))
            if self.control_proc is not None:
                stop_processes([self.control_proc.handle], timeout)
        except KeyboardInterrupt:  # a second Ctrl-C: no more waiting
            stop_processes([p.handle for p in self.processes], 0.0, kill=True)
        for p in self.processes:
            if p.popen is not None:
                p.returncode = p.popen.exit_status
        self.ready = False
        return StopSummary(list(self.processes), time.monotonic() - began)

    # -- using it ---------------------------------------------------------------------------
    def load_page(self, *, user: str | None = None, path: str = "/productpage",
                  timeout: float = PAGE_TIMEOUT, ingress: bool = False) -> PageLoad:
        """GET the product page at the entry point (``ingress``: through the ingress), as
        ``user`` (the cookie /login sets)."""
        headers = {"cookie": f"user={user}"} if user else {}
        address, port = self.entry_point()
        if ingress:
            assert self.plan.ingress_address is not None, "this mesh has no ingress"
            address, port = self.plan.ingress_address, INGRESS_PORT
        began = time.monotonic()
        status, body = http_get(address, port, path, headers=headers, timeout=timeout)
        elapsed = time.monotonic() - began
        self.page_loads += 1
        text = body.decode("utf-8", "replace")
        return PageLoad(status, elapsed, text, read_page(text))

    def login(self, user: str, *, timeout: float = 5.0) -> str:
        """POST productpage's ``/login`` form; returns the cookie it sets (``user=jason``)."""
        from urllib.parse import urlencode

        conn = http.client.HTTPConnection(*self.entry_point(), timeout=timeout)
        try:
            conn.request("POST", "/login", body=urlencode({"username": user}),
                         headers={"content-type": "application/x-www-form-urlencoded"})
            response = conn.getresponse()
            response.read()
            cookie = response.getheader("set-cookie") or ""
        finally:
            conn.close()
        return cookie.split(";", 1)[0].strip()

    def client(self) -> ControlClient:
        return ControlClient(self.control_url)

    def revision(self) -> int:
        with self.client() as client:
            return int(client.list()["revision"])

    def wait_synced(self, revision: int | None = None, *, timeout: float = SYNC_TIMEOUT) -> float:
        """Block until every sidecar's ``/config_dump`` shows the control's ``revision`` (default:
        the latest). Returns the seconds it took; DemoError past ``timeout``."""
        target = self.revision() if revision is None else revision
        began = time.monotonic()
        for m in self.plan.members:
            while True:
                try:
                    status, body = http_get(m.address, m.admin_port, "/config_dump", timeout=2.0)
                    seen = json.loads(body).get("control_revision") if status == 200 else None
                except (OSError, http.client.HTTPException, ValueError):
                    seen = None
                if isinstance(seen, int) and seen >= target:
                    break
                if time.monotonic() - began > timeout:
                    raise DemoError(f"sidecar {m.name} still at control revision {seen} after "
                                    f"{timeout:.0f}s (want {target})")
                time.sleep(POLL_INTERVAL)
        return time.monotonic() - began

    def apply(self, verb: str, path: str | Path) -> int:
        """``trimesh create|replace|delete -f PATH`` in-process; waits until every sidecar has it.
        Returns the control's revision after the change."""
        from ..config import load_file

        objects = load_file(str(path))
        with self.client() as client:
            for obj in objects:
                if verb == "create":
                    client.create(obj.to_dict())
                elif verb == "replace":
                    client.replace(obj.to_dict())
                elif verb == "delete":
                    client.delete(*obj.key)
                else:
                    raise ValueError(f"unknown verb {verb!r}")
            revision = int(client.list()["revision"])
        self.rules_applied += len(objects)
        self.wait_synced(revision)
        return revision

    def delete_all(self) -> int:
        """Delete every object the control holds (a clean slate between scenarios)."""
        with self.client() as client:
            for doc in client.list()["objects"]:
                meta = doc.get("metadata") or {}
                with contextlib.suppress(NotFoundError):
                    client.delete(doc["kind"], meta.get("namespace") or "default", meta["name"])
            revision = int(client.list()["revision"])
        self.wait_synced(revision)
        return revision

    def access_records(self, member: Member) -> list[dict[str, Any]]:
        """The JSON access-log records of a member's sidecar so far (flushed every 0.5 s)."""
        path = self.log_dir / f"{member.name}-access.log"
        out = []
        with contextlib.suppress(OSError):
            for line in path.read_text(errors="replace").splitlines():
                with contextlib.suppress(ValueError):
                    record = json.loads(line)
                    if isinstance(record, dict):
                        out.append(record)
        return out

    def app_log(self, member: Member) -> str:
        """The sidecar's log file, which also holds its app's output."""
        return self.sidecars[member.name].log_path.read_text(errors="replace")


@contextlib.contextmanager
def open_demo_mesh(workloads: Sequence[WorkloadLike] | None = None, *, block: str = DEMO_BLOCK,
                   control_address: str | None = None, control_port: int = CONTROL_PORT,
                   state_dir: Path | None = None, workdir: Path | None = None,
                   progress: Callable[[Process, str], None] | None = None,
                   seed: int | None = None) -> Iterator[DemoMesh]:
    """Start a mesh of ``workloads`` (default: BookInfo) and stop it on exit.

    ``workdir`` (logs, default state) is a new temporary directory unless given; a
    temporary one is removed on exit."""
    if workloads is None:
        workloads = BOOKINFO
    plan = plan_mesh(workloads, python=sys.executable, block=block,
                     control_address=control_address, control_port=control_port)
    own_workdir = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="trimesh-demo-")) if workdir is None else workdir
    try:
        mesh = DemoMesh(plan, workdir=workdir, state_dir=state_dir, seed=seed)
        try:
            mesh.start(progress)
            yield mesh
        finally:
            mesh.stop()
    finally:
        if own_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
