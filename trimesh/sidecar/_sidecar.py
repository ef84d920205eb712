"""The sidecar: one supervision tree of sources, snapshot builder, proxies, telemetry and admin.

``serve_sidecar(config)`` is the programmatic ``trimesh run sidecar``. The sidecar is a
:class:`~trimesh.nursery.Supervisor` (docs/supervision.md) whose children start in this order and
stop in the reverse one::

    files       --registry/--config files, re-read when they change (FileSource)
    control     the control's config API long poll (ControlSource; only with --control)
    <sources>   children added with add_child(spec, stage="source")      (e.g. gossip)
    snapshot    the snapshot builder: rebuilds Snapshot + RouteTable from ALL sources at once
    inbound     --address:--port -> --app-address:--app-port
    outbound    --address:--proxy-port (HTTP_PROXY for the app)
    <services>  children added with add_child(spec)  (stage="service"; e.g. the health checker)
    telemetry   the record flusher (access log, metrics, Zipkin spans; docs/telemetry.md)
    admin       /ready /stats /config_dump /clusters /metrics on --admin-port

``SidecarConfig.app_port=None`` / ``proxy_port=None`` / ``admin_port=None`` leave the inbound
listener / outbound listener / admin server out (``trimesh.open_mesh`` runs the tree without
listeners and calls the outbound handler in-process; ``start_in_thread`` keeps only outbound).

No child declares ``depends_on``: a crashed control poll must not restart the proxies, so restarts
are per child (start order is declaration order). A child that keeps crashing beyond
:data:`SIDECAR_INTENSITY` takes the whole sidecar down with :class:`RestartIntensityError` naming
the child and its cause (the CLI exits 1); there is no half-alive sidecar.

Hooks for other subsystems (stable API; register them BEFORE ``serve()`` starts the tree):

- ``sidecar.add_child(ChildSpec(name, serve, ...), stage="service" | "source")`` adds a supervised
  child at the place above; ``serve(*, task_status)`` must call ``task_status.started()`` when ready
  and may watch :func:`trimesh.nursery.wait_stop_requested` to stop gracefully.
- ``sidecar.add_source(source)`` feeds the snapshot builder: ``source.objects`` (ConfigObjects) and
  ``source.instances`` (ServiceInstances) are read at every rebuild (either attribute may be
  missing); the source calls ``sidecar.request_rebuild()`` after changing them. Rebuilds are
  coalesced: many changes in one scheduling tick give one new Snapshot. ``sidecar.own_instance``
  is this sidecar's instance once ``inbound`` is up (what a gossip member announces).
- Mutual TLS (docs/identity.md §12): ``sidecar.mesh_tls`` (a :class:`~trimesh.proxy.MeshTls`)
  holds the contexts built from the cert agent's certificate (``install_cert_agent`` feeds it on
  every renewal). The upstream pools connect secure endpoints with it; each rebuild decides from
  the snapshot's MeshConfig and this sidecar's annotations whether the inbound listener requires
  mutual TLS (``inbound_mtls``). While mutual TLS is on, the sidecar is not ready without a
  certificate.
- ``sidecar.on_draining.append(async_fn)``: ``await async_fn()`` runs when the drain starts,
  BEFORE the listeners close — the place for gossip's graceful leave, so callers stop routing
  here while it still answers; then the sidecar waits :data:`ANNOUNCE_GRACE` seconds.
- ``sidecar.on_drained.append(async_fn)``: ``await async_fn()`` runs after the drain (listeners
  closed, in-flight requests finished or ``drain_timeout`` passed), before the tree stops. Each
  hook gets :data:`ON_DRAINED_TIMEOUT` seconds; an exception is logged and the next hook still
  runs.

Shutdown (:meth:`Sidecar.shutdown`, SIGTERM/SIGINT in the CLI, or the app exiting):
``/ready`` turns 503; the ``on_draining`` hooks announce the leave and the listeners stay open
for :data:`ANNOUNCE_GRACE`; the inbound listener stops accepting and its in-flight requests finish (up
to ``drain_timeout``); if an app runs, it gets SIGTERM (unless the signal was already forwarded)
and the sidecar waits for it (its outbound calls keep working meanwhile, up to
:data:`APP_STOP_TIMEOUT`, then SIGKILL); the outbound listener drains likewise; the ``on_drained``
hooks run; the tree stops in reverse order. ``serve`` returns the app's exit status.

Test-only: ``TRIMESH_TEST_CRASH="CHILD[:TIMES[:AFTER]]"`` (comma-separated for several) makes
child CHILD raise ``RuntimeError`` AFTER seconds (default 0.2) after each start, for its first
TIMES runs (default: every run). Used by tests/lifecycle to exercise restarts and escalation.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import msgspec
import trio

from ..config import DEFAULT_DOMAIN, DEFAULT_NAMESPACE, Snapshot, is_tcp_protocol, make_instance
from ..nursery import (
    AppProcess,
    ChildSpec,
    Supervisor,
    SupervisorError,
    local_no_proxy,
    serve_signals,
    wait_stop_requested,
)
from ..proxy import (HttpServer, InboundProxy, MeshTls, OutboundProxy, TcpProxy, TcpServer,
                     UpstreamPool)
from ..routing import SourceIdentity, compile_routes, inbound_mtls
from ..telemetry import (
    AccessLog,
    LocalIdentity,
    MeshMetrics,
    RecordSinks,
    RuntimeCollector,
    Tracer,
    ZipkinExporter,
    metrics_registry,
)
from ._admin import AdminApp, serve_admin
from ._health import (
    DEFAULT_HEALTH_MODE,
    HEALTH_INTERVAL,
    HEALTH_PATH,
    HealthCheckConfig,
    HealthChecker,
    serve_health_checker,
)
from ._sources import ControlSource, FileSource

DEFAULT_PROXY_PORT = 15001  # Istio's outbound capture port (DESIGN.md §1)
DEFAULT_ADMIN_PORT = 15000  # Envoy's admin port
DEFAULT_CONTROL_URL = "http://127.0.0.1:15010"  # CLI.md
DEFAULT_DRAIN_TIMEOUT = 5.0  # seconds; Envoy's --drain-time-s default is 600, too long for tests
APP_STOP_TIMEOUT = 10.0  # seconds an app gets after SIGTERM before SIGKILL (Kubernetes gives 30)
ON_DRAINED_TIMEOUT = 5.0  # seconds each on_drained / on_draining hook may take
# After the on_draining hooks announced the leave (gossip), the listeners stay open this long so
# the members that routed here learn it and stop before connections are refused (Envoy's drain
# and Kubernetes' preStop sleep serve the same purpose); retries cover what still arrives.
ANNOUNCE_GRACE = 0.5
# A sidecar child may be restarted 3 times within 10 s; a 4th crash means it will not recover and
# the sidecar exits (OTP's default 1 in 5 s is for trees whose parent restarts them; nothing
# restarts a sidecar process but its operator, so it tolerates a little more).
SIDECAR_INTENSITY = (3, 10.0)
CRASH_ENV = "TRIMESH_TEST_CRASH"  # test-only crash hook (module docstring)
STAGES = ("source", "service")

APP_CERT_WAIT = 10.0  # seconds an app (-- APP) waits for the sidecar's first certificate
log = logging.getLogger("trimesh.sidecar")


@dataclass
class SidecarConfig:
    """Everything ``trimesh run sidecar`` takes (CLI.md). Ports may be 0 (any free port)."""

    service: str
    port: int
    app_port: int | None  # None: no inbound listener (an embedded mesh client, an ingress)
    namespace: str = DEFAULT_NAMESPACE
    labels: dict[str, str] = field(default_factory=dict)
    service_account: str = "default"
    protocol: str = "http"
    app_address: str = "127.0.0.1"
    address: str = "127.0.0.1"
    proxy_port: int | None = DEFAULT_PROXY_PORT  # None: no outbound listener (open_mesh)
    admin_port: int | None = DEFAULT_ADMIN_PORT  # None: no admin server
    control: str | None = DEFAULT_CONTROL_URL
    registry: str | None = None
    config_files: list[str] = field(default_factory=list)
    drain_timeout: float = DEFAULT_DRAIN_TIMEOUT
    domain: str = DEFAULT_DOMAIN
    app_argv: list[str] = field(default_factory=list)
    seed: int | None = None
    health_interval: float = HEALTH_INTERVAL  # active health checks (docs/resilience.md §5)
    health_path: str = HEALTH_PATH
    health_checks: str = DEFAULT_HEALTH_MODE  # app | all | off
    egress_ca_file: str | None = None  # CAs for egress TLS origination (None: the system store)
    # --upstream SERVICE:PORT=LOCAL_PORT: (service, port, local_port), one TCP listener each
    upstreams: list[tuple[str, int, int]] = field(default_factory=list)
    zipkin_address: str | None = None  # HOST:PORT of a Zipkin v2 collector (docs/telemetry.md)
    # registration annotations (-a KEY=VALUE), e.g. auth.istio.io/<port>: NONE (docs/identity.md)
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        version = self.labels.get("version")
        return f"{self.service}-{version}" if version else self.service


def parse_crash_plan(text: str | None) -> dict[str, tuple[int, float]]:
    """``"a:2:0.5,b"`` -> ``{"a": (2, 0.5), "b": (0, 0.2)}`` (0 times = every run). Test-only."""
    plan: dict[str, tuple[int, float]] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        parts = item.strip().split(":")
        try:
            times = int(parts[1]) if len(parts) > 1 and parts[1] else 0
            after = float(parts[2]) if len(parts) > 2 and parts[2] else 0.2
        except ValueError:
            raise ValueError(f"{CRASH_ENV}: expected CHILD[:TIMES[:AFTER]], got {item!r}") from None
        plan[parts[0]] = (times, after)
    return plan


class Sidecar:
    """One sidecar's state and its supervision tree. Built by :func:`serve_sidecar`; tests drive
    it in-process. Hooks: :meth:`add_child`, :meth:`add_source`, :attr:`on_drained`."""

    def __init__(self, config: SidecarConfig, *, access_log: AccessLog | None = None) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        labels = {"app": config.service}
        labels.update(config.labels)
        self.labels = labels
        self.source = SourceIdentity(service=config.service, namespace=config.namespace,
                                     labels=labels)
        self.access_log = access_log or AccessLog()
        # Telemetry (docs/telemetry.md): the proxies hand each record to one bounded buffer; the
        # telemetry child flushes it in batches to the access log, the metrics and the spans.
        self.metrics = MeshMetrics()
        self.zipkin = (ZipkinExporter(config.zipkin_address)
                       if config.zipkin_address else None)
        self.telemetry = RecordSinks(
            [self.access_log, self.metrics, *([self.zipkin] if self.zipkin else [])],
            identity=LocalIdentity(self.source.fqdn(config.domain), labels.get("version", ""),
                                   lambda: self.snapshot))
        self.metrics_registry = metrics_registry(self.metrics, RuntimeCollector(self.statistics))
        self.tracer = Tracer(random.Random())  # span ids need no seed (and must differ per sidecar)
        self.mesh_tls = MeshTls()  # mutual TLS: contexts from the cert agent's certificate
        self.mtls_on = False  # the MeshConfig in effect turns mutual TLS on for the mesh
        self.inbound_mtls = False  # this sidecar's inbound listener requires mutual TLS
        self.pool = UpstreamPool(tls_context=egress_tls_context(config.egress_ca_file),
                                 mtls=self.mesh_tls)
        self.app_pool = UpstreamPool()
        self.files = FileSource(config.registry, config.config_files, self.request_rebuild)
        self.control = (ControlSource(config.control, self.request_rebuild)
                        if config.control else None)
        self.sources: list[Any] = [self.files] + ([self.control] if self.control else [])
        self.snapshot: Snapshot | None = None
        self.snapshot_control_revision: int | None = None
        self.table = None
        self.own_instance = None
        self.outbound = OutboundProxy(None, rng=self.rng, pool=self.pool,
                                      access_log=self.telemetry)
        self.inbound = InboundProxy((config.app_address, config.app_port or 0), rng=self.rng,
                                    pool=self.app_pool, access_log=self.telemetry,
                                    service=config.service)
        self.inbound.app_h2 = config.protocol in ("http2", "grpc")  # the app speaks HTTP/2
        self.outbound.tracer = self.inbound.tracer = self.tracer
        self.outbound_server = HttpServer("outbound", self.outbound)
        # A TCP service port (--protocol tcp/mysql/redis/mongo) is a byte relay to the app.
        self.inbound_tcp = is_tcp_protocol(config.protocol)
        if self.inbound_tcp:
            self.inbound_relay = TcpProxy("inbound", rng=self.rng, pool=self.app_pool,
                                          access_log=self.telemetry, service=config.service,
                                          app_endpoint=(config.app_address,
                                                        config.app_port or 0))
        self.inbound_server = self._make_inbound_server()
        self.admin = AdminApp(self)
        self.supervisor: Supervisor | None = None
        self.on_drained: list[Callable[[], Awaitable[None]]] = []
        self.on_draining: list[Callable[[], Awaitable[None]]] = []
        self.draining = False
        self.started = False
        self.version = 0
        self.rebuilds = 0
        self.rebuild_errors = 0
        self.addresses: dict[str, tuple[str, int]] = {}
        self.upstream_servers: dict[str, list[TcpServer]] = {}  # --upstream listeners by child
        self.app: AppProcess | None = None
        self.app_status: int | None = None
        self._extra: dict[str, list[ChildSpec]] = {stage: [] for stage in STAGES}
        self._dirty = trio.Event()
        self._shutdown = trio.Event()
        self._logged_problems: set[str] = set()
        self._crash_plan = parse_crash_plan(os.environ.get(CRASH_ENV))
        self._crash_runs: dict[str, int] = {}
        self.health = HealthChecker(
            lambda: self.table,
            own_app=(config.app_address, config.app_port) if config.app_port else None,
            own_service=config.service, name=config.name, on_own_change=self._own_health,
            own_http=not is_tcp_protocol(config.protocol),
            config=HealthCheckConfig(interval=config.health_interval, path=config.health_path,
                                     mode=config.health_checks))
        self.add_child(ChildSpec("health", self._serve_health,
                                 description="active health checks (trimesh/sidecar/_health.py)"))
        for service, port, local_port in config.upstreams:
            self.add_child(self._upstream_spec(service, port, local_port))

    # -- hooks ----------------------------------------------------------------------------------
    def add_child(self, spec: ChildSpec, *, stage: str = "service") -> None:
        """Add a supervised child before the tree starts (module docstring: where it goes)."""
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        if self.supervisor is not None:
            raise RuntimeError(f"{self!r}: add_child({spec.name!r}) after the tree was built")
        self._extra[stage].append(spec)

    def add_source(self, source: Any) -> None:
        """Feed ``source.objects`` / ``source.instances`` into every snapshot rebuild."""
        self.sources.append(source)
        self.request_rebuild()

    def request_rebuild(self) -> None:
        """Ask the snapshot builder for a rebuild (coalesced; call after a source changed)."""
        self._dirty.set()

    @property
    def ready(self) -> bool:
        """What ``/ready`` says: started, every child up, a snapshot loaded, not draining."""
        sup = self.supervisor
        return (self.started and not self.draining and sup is not None and sup.all_up
                and self.snapshot is not None and self.mtls_problem is None)

    @property
    def mtls_problem(self) -> str | None:
        """Why mutual TLS, on in the mesh or for this inbound, cannot work here (None: it can,
        or it is off): no cert agent at all, or no certificate yet (``/ready`` says which)."""
        if not (self.mtls_on or self.inbound_mtls) or self.mesh_tls.server is not None:
            return None
        if getattr(self, "certs", None) is None:
            return ("mutual TLS is on and this sidecar has no cert agent "
                    "(run it with --ca URL or --cert-dir DIR)")
        return "mutual TLS is on and this sidecar holds no certificate yet"

    # -- snapshots ------------------------------------------------------------------------------
    def _rebuild(self) -> None:
        # the control listing this build reads (no await below: sources cannot move meanwhile)
        control_revision = self.control.revision if self.control else None
        objects: list[Any] = []
        instances: list[Any] = []
        for src in self.sources:
            objects.extend(getattr(src, "objects", ()))
            instances.extend(getattr(src, "instances", ()))
        if self.own_instance is not None:
            own = self.own_instance
            if not any(i.address == own.address and i.port == own.port and i.fqdn == own.fqdn
                       for i in instances):
                instances.append(own)
        try:
            snapshot = Snapshot(objects, instances, version=self.version + 1,
                                domain=self.config.domain)
            table = compile_routes(snapshot, source=self.source, previous=self.table)
        except Exception:
            if self.table is None:
                raise  # at startup: the error is the user's to see
            # Later: keep serving the last good snapshot rather than stop the data plane.
            self.rebuild_errors += 1
            log.exception("sidecar %s: keeping snapshot v%d, the new config does not compile",
                          self.config.name, self.version)
            return
        self.version += 1
        self.snapshot = snapshot
        self.snapshot_control_revision = control_revision
        self.table = table
        self.outbound.table = table  # the swap: requests in flight keep the table they read
        self.rebuilds += 1
        self._apply_mtls(snapshot)
        self._log_problems(table)

    def _log_problems(self, table) -> None:
        """What the route table could not use (a bad regex, an unknown balancer, …): logged once
        each, and listed in ``/config_dump`` (``problems``). Destinations compile on first use,
        so a problem may also surface later; the dump shows the table's current list."""
        for problem in table.problems:
            if problem not in self._logged_problems:
                self._logged_problems.add(problem)
                log.warning("sidecar %s: %s", self.config.name, problem)

    def _apply_mtls(self, snapshot: Snapshot) -> None:
        """Follow the MeshConfig in effect: does the inbound listener require mutual TLS?
        (The outbound's choice is per cluster, compiled into the table.) Logged when it turns."""
        cfg = self.config
        mesh = snapshot.mesh_config
        own = self.own_instance
        port = own.port if own is not None else cfg.port
        fqdn = self.source.fqdn(cfg.domain)
        inbound = (not self.inbound_tcp and cfg.app_port is not None
                   and inbound_mtls(mesh, fqdn, port, cfg.annotations))
        on = mesh.auth_policy == "MUTUAL_TLS"
        turned = inbound != self.inbound_mtls or on != self.mtls_on
        self.mtls_on = on
        self.inbound_mtls = inbound
        server = self.inbound_server
        if isinstance(server, HttpServer):
            server.mtls = self.mesh_tls if inbound else None
        if turned:
            problem = self.mtls_problem
            log.log(logging.WARNING if problem else logging.INFO,
                    "sidecar %s: mutual TLS %s in the mesh; inbound listener %s%s", cfg.name,
                    "on" if on else "off", "requires it" if inbound else "plaintext",
                    f" ({problem})" if problem else "")

    def shutdown(self) -> None:
        """Start a graceful drain (idempotent)."""
        self._shutdown.set()

    # -- admin views ----------------------------------------------------------------------------
    def tree_statistics(self) -> dict[str, Any] | None:
        if self.supervisor is None:
            return None
        return dataclasses.asdict(self.supervisor.statistics())

    def statistics(self) -> dict[str, Any]:
        gossip = getattr(self, "gossip", None)  # the GossipSource install_gossip() sets, if any
        return {
            "name": self.config.name, "ready": self.ready, "draining": self.draining,
            "tree": self.tree_statistics(),
            "snapshot": self.snapshot.statistics() if self.snapshot else None,
            "rebuilds": self.rebuilds, "rebuild_errors": self.rebuild_errors,
            "outbound": self.outbound.statistics(), "inbound": self.inbound.statistics(),
            "listeners": {"outbound": self.outbound_server.statistics(),
                          "inbound": self.inbound_server.statistics(),
                          **{name: servers[0].statistics()
                             for name, servers in self.upstream_servers.items()}},
            "upstream_pool": self.pool.statistics(), "app_pool": self.app_pool.statistics(),
            "mtls": {"mesh": self.mtls_on, "inbound": self.inbound_mtls,
                     **self.mesh_tls.statistics()},
            "access_log": self.access_log.statistics(),
            "telemetry": self.telemetry.statistics(), "files": self.files.statistics(),
            "control": self.control.statistics() if self.control else None,
            "app": self.app.statistics() if self.app else None,
            "health": self.health.statistics(),
            "gossip": gossip.statistics() if gossip is not None else None,
            # Envoy's cluster.<name>.upstream_rq_pending_overflow & co. (docs/resilience.md §3)
            "clusters": {name: c.statistics()
                         for name, c in (self.table.clusters() if self.table else {}).items()},
        }

    def config_dump(self) -> dict[str, Any]:
        snap = self.snapshot
        if snap is None:
            return {"version": 0, "objects": [], "instances": []}
        return {
            "version": snap.version,
            # the listing the served snapshot was built from, not the newest one polled: a caller
            # waiting for a revision (trimesh demo) then knows the routing table has it
            "control_revision": self.snapshot_control_revision,
            "problems": list(self.table.problems) if self.table is not None else [],
            "objects": [o.to_dict() for o in snap.objects.values()],
            "instances": [msgspec.to_builtins(i) for i in snap.instances],
        }

    def clusters(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        table = self.table
        if table is None:
            return out
        for name, cluster in table.clusters().items():
            out[name] = {
                "instances": [f"{i.address}:{i.port}" for i in cluster.instances],
                "statistics": cluster.statistics(),
            }
        return out

    def __repr__(self) -> str:
        return (f"<Sidecar {self.config.name} ready={self.ready} draining={self.draining} "
                f"snapshot={self.snapshot!r}>")

    # -- the tree -------------------------------------------------------------------------------
    def child_specs(self) -> list[ChildSpec]:
        """The tree's children in start order (module docstring)."""
        timeout = self.config.drain_timeout + 1.0
        specs = [ChildSpec("files", self._serve_files, description="--registry/--config files")]
        if self.control is not None:
            specs.append(ChildSpec("control", self._serve_control,
                                   description=f"config API long poll {self.control.url}"))
        specs.extend(self._extra["source"])
        specs.append(ChildSpec("snapshot", self._serve_snapshots,
                               description="rebuilds Snapshot + RouteTable from all sources"))
        if self.config.app_port is not None:
            specs.append(ChildSpec("inbound", self._serve_inbound, shutdown_timeout=timeout,
                                   description="inbound listener -> app"))
        if self.config.proxy_port is not None:
            specs.append(ChildSpec("outbound", self._serve_outbound, shutdown_timeout=timeout,
                                   description="outbound listener (HTTP_PROXY)"))
        specs.extend(self._extra["service"])
        specs.append(ChildSpec("telemetry", self._serve_telemetry,
                               description="record flusher: access log, metrics, spans"))
        if self.config.admin_port is not None:
            specs.append(ChildSpec("admin", self._serve_admin, description="admin server"))
        return [self._crashable(spec) for spec in specs]

    def _crashable(self, spec: ChildSpec) -> ChildSpec:
        plan = self._crash_plan.get(spec.name)
        if plan is None:
            return spec
        times, after = plan
        inner = spec.serve

        async def serve(*, task_status=trio.TASK_STATUS_IGNORED) -> None:
            crash = False
            async with trio.open_nursery() as nursery:
                task_status.started(await nursery.start(inner))
                runs = self._crash_runs[spec.name] = self._crash_runs.get(spec.name, 0) + 1
                if times == 0 or runs <= times:
                    await trio.sleep(after)
                    crash = True
                    nursery.cancel_scope.cancel()
            if crash:
                raise RuntimeError(f"test crash of child {spec.name!r} ({CRASH_ENV})")

        return dataclasses.replace(spec, serve=serve)

    async def _serve_files(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        await _until_stopped(self.files.serve, task_status)

    async def _serve_control(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        assert self.control is not None
        await _until_stopped(self.control.serve, task_status)

    async def _serve_snapshots(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        await _until_stopped(self._build_snapshots, task_status)

    async def _build_snapshots(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        self._dirty = trio.Event()
        self._rebuild()  # the first build; a ConfigError here fails the start (a user error)
        task_status.started(self.version)
        while True:
            await self._dirty.wait()
            self._dirty = trio.Event()
            self._rebuild()

    async def _serve_listener(self, server: HttpServer, port: int, *, task_status) -> None:
        """Run ``server`` until stopped; on stop, drain it (close the listener, finish requests)."""
        cfg = self.config
        # a restarted listener keeps the address it had (ports may be 0 = any)
        host, port = self.addresses.get(server.name, (cfg.address, port))
        try:
            async with trio.open_nursery() as nursery:
                if server.name == "outbound":
                    self.outbound.mirror_nursery = nursery
                bound = await nursery.start(server.serve, host, port)
                self.addresses[server.name] = bound
                task_status.started(bound)
                await wait_stop_requested()
                server.drain()
                with trio.move_on_after(cfg.drain_timeout):
                    await server.wait_drained()
                nursery.cancel_scope.cancel()
        except ExceptionGroup as group:
            # one error (a port in use, a crashed accept loop): the supervisor and /stats name
            # it, not the nursery's group around it
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise

    def _make_inbound_server(self):
        if self.inbound_tcp:
            return TcpServer("inbound", self.inbound_relay)
        server = HttpServer("inbound", self.inbound)
        server.mtls = self.mesh_tls if self.inbound_mtls else None
        return server

    def _upstream_spec(self, service: str, port: int, local_port: int) -> ChildSpec:
        """The child of one ``--upstream SERVICE:PORT=LOCAL_PORT``: a TCP listener on
        ``--address:LOCAL_PORT`` relaying each connection to SERVICE:PORT (trimesh/proxy/_tcp.py)."""
        name = f"upstream-{local_port}"
        relay = TcpProxy("outbound", rng=self.rng, pool=self.pool, access_log=self.telemetry,
                         target=f"{service}:{port}", table_of=lambda: self.table)
        servers = [TcpServer(name, relay)]
        self.upstream_servers[name] = servers

        async def serve(*, task_status=trio.TASK_STATUS_IGNORED) -> None:
            if servers[0].address is not None:  # a restart: a fresh server object
                servers[0] = TcpServer(name, relay)
            await self._serve_listener(servers[0], local_port, task_status=task_status)

        return ChildSpec(name, serve, shutdown_timeout=self.config.drain_timeout + 1.0,
                         description=f"TCP listener -> {service}:{port} (--upstream)")

    async def _serve_inbound(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        cfg = self.config
        if self.inbound_server.address is not None:  # a restart: a fresh server object
            self.inbound_server = self._make_inbound_server()
        await self._serve_listener(self.inbound_server, cfg.port,
                                   task_status=_Then(task_status, self._announce_own))

    def _announce_own(self, inbound: tuple[str, int]) -> None:
        cfg = self.config
        own = make_instance(cfg.service, inbound[0], inbound[1], labels=dict(cfg.labels),
                            namespace=cfg.namespace, protocol=cfg.protocol,
                            service_account=cfg.service_account, domain=cfg.domain,
                            annotations=dict(cfg.annotations))
        if own != self.own_instance:
            self.own_instance = own
            self._rebuild()

    async def _serve_outbound(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        if self.outbound_server.address is not None:
            self.outbound_server = HttpServer("outbound", self.outbound)
        await self._serve_listener(self.outbound_server, self.config.proxy_port,
                                   task_status=task_status)

    def _own_health(self, healthy: bool) -> None:
        """The app's health flipped: carry it on the own instance (what gossip announces)."""
        own = self.own_instance
        if own is not None and own.healthy != healthy:
            self.own_instance = msgspec.structs.replace(own, healthy=healthy)
            self.request_rebuild()

    async def _serve_health(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        own = self.own_instance  # up by now: services start after inbound
        self.health.own_endpoint = own.endpoint if own is not None else None
        await _until_stopped(partial(serve_health_checker, self.health), task_status)

    async def _serve_telemetry(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(self.telemetry.serve_flusher)
            if self.zipkin is not None:
                await nursery.start(self.zipkin.serve)
            task_status.started()
            await wait_stop_requested()
            nursery.cancel_scope.cancel()  # the flusher flushes on its way out

    async def _serve_admin(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        host, port = self.addresses.get("admin", (self.config.address, self.config.admin_port))
        async with trio.open_nursery() as nursery:
            bound = await nursery.start(serve_admin, self.admin, host, port)
            self.addresses["admin"] = bound
            task_status.started(bound)
            await wait_stop_requested()
            nursery.cancel_scope.cancel()

    # -- running --------------------------------------------------------------------------------
    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> int | None:
        """Start the tree, report ``started(self)`` when ready, run until shutdown; returns the
        app's exit status. Raises ChildStartError / RestartIntensityError (not in a group)."""
        cfg = self.config
        self.files.load_initial()  # a bad file is a user error before anything listens
        self.supervisor = Supervisor(self.child_specs(), intensity=SIDECAR_INTENSITY,
                                     name=f"sidecar {cfg.name}")
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.supervisor.serve)
                self.started = True
                log.info("sidecar %s ready: %s", cfg.name, self._describe())
                task_status.started(self)
                if cfg.app_argv:
                    if "outbound" not in self.addresses:
                        raise ValueError(f"sidecar {cfg.name}: an app needs the outbound listener")
                    outbound = self.addresses["outbound"]
                    proxy = f"http://{outbound[0]}:{outbound[1]}"
                    await self._first_certificate()
                    if not self._shutdown.is_set():
                        self.app = AppProcess(cfg.app_argv, env=app_environment(
                            proxy, [cfg.address, cfg.app_address]),
                            stop_timeout=APP_STOP_TIMEOUT, name=f"app of sidecar {cfg.name}")
                        nursery.start_soon(self._run_app)
                await self._shutdown.wait()
                await self._drain()
                self.supervisor.stop()
        except BaseExceptionGroup as group:
            leaf = _single(group)
            if isinstance(leaf, SupervisorError):
                raise leaf from leaf.__cause__
            raise
        finally:
            self.draining = True
            self.pool.close()
            self.app_pool.close()
        return self.app_status

    async def _first_certificate(self) -> None:
        """With a cert agent, the app starts once the first certificate is held (its calls
        under mutual TLS would fail without one), or after :data:`APP_CERT_WAIT` seconds with a
        warning saying why."""
        store = getattr(self, "certs", None)
        if store is None or store.current() is not None:
            return

        async def held(cancel_scope: trio.CancelScope) -> None:
            while store.current() is None:
                await store.wait_changed()
            cancel_scope.cancel()

        async with trio.open_nursery() as nursery:  # a shutdown ends the wait too
            nursery.start_soon(held, nursery.cancel_scope)
            with trio.move_on_after(APP_CERT_WAIT):
                await self._shutdown.wait()
            nursery.cancel_scope.cancel()
        if store.current() is not None or self._shutdown.is_set():
            return
        log.warning("sidecar %s: starting the app without a certificate after %g s%s",
                    self.config.name, APP_CERT_WAIT,
                    f" ({store.last_error})" if store.last_error else "")

    def _describe(self) -> str:
        """The ready line's list of listeners (tests and tools parse it)."""
        parts = []
        addrs = self.addresses
        if "inbound" in addrs:
            parts.append("inbound %s:%d -> %s:%d" % (*addrs["inbound"], self.config.app_address,
                                                      self.config.app_port))
        parts.append("outbound %s:%d" % addrs["outbound"] if "outbound" in addrs
                     else "outbound in-process")
        if "admin" in addrs:
            parts.append("admin %s:%d" % addrs["admin"])
        return ", ".join(parts)

    async def _run_app(self) -> None:
        assert self.app is not None
        self.app_status = await self.app.run()
        log.info("sidecar %s: app exited with status %s", self.config.name, self.app_status)
        self.shutdown()

    async def _drain(self) -> None:
        cfg = self.config
        self.draining = True
        log.info("sidecar %s draining (up to %.1fs)", cfg.name, cfg.drain_timeout)
        if self.on_draining:
            await self._run_hooks(self.on_draining)
            await trio.sleep(ANNOUNCE_GRACE)  # callers learn the leave while we still answer
        self.inbound_server.drain()
        with trio.move_on_after(cfg.drain_timeout):
            await self.inbound_server.wait_drained()
        if self.app is not None:
            await self.app.stop()  # SIGTERM unless already signalled; outbound still serves
            if self.app.exit_status is not None:
                self.app_status = self.app.exit_status
        self.outbound_server.drain()
        with trio.move_on_after(cfg.drain_timeout):
            await self.outbound_server.wait_drained()
        self.access_log.flush()
        await self._run_hooks(self.on_drained)

    async def _run_hooks(self, hooks: list[Callable[[], Awaitable[None]]]) -> None:
        for hook in list(hooks):
            with trio.move_on_after(ON_DRAINED_TIMEOUT) as scope:
                try:
                    await hook()
                except Exception:
                    log.exception("sidecar %s: drain hook %r failed", self.config.name, hook)
            if scope.cancelled_caught:
                log.warning("sidecar %s: drain hook %r took over %gs", self.config.name, hook,
                            ON_DRAINED_TIMEOUT)

    def forward_signal(self, signum: int) -> bool:
        """Send ``signum`` to the app if one runs; True when it was forwarded."""
        return self.app is not None and self.app.send_signal(signum)


async def _until_stopped(serve: Callable[..., Awaitable[Any]], task_status) -> None:
    """Run ``serve`` (a task with nothing to finish) until the supervisor asks us to stop."""
    async with trio.open_nursery() as nursery:
        task_status.started(await nursery.start(serve))
        await wait_stop_requested()
        nursery.cancel_scope.cancel()


class _Then:
    """A task_status that calls ``fn(value)`` just before reporting started."""

    def __init__(self, status, fn: Callable[[Any], None]) -> None:
        self._status = status
        self._fn = fn

    def started(self, value: Any = None) -> None:
        self._fn(value)
        self._status.started(value)


def _single(group: BaseException) -> BaseException:
    while isinstance(group, BaseExceptionGroup) and len(group.exceptions) == 1:
        group = group.exceptions[0]
    return group


def egress_tls_context(ca_file: str | None):
    """The context egress TLS origination (EgressRule ``https`` ports) verifies servers with:
    the system trust store, or the CA file the user names (``--egress-ca-file``): a file that
    holds no certificate is a ConfigError naming it."""
    if ca_file is None:
        return None
    import ssl

    from ..errors import ConfigError
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"--egress-ca-file {ca_file}: no CA certificate there "
                          f"({getattr(exc, 'reason', None) or exc})") from None


def app_environment(proxy_url: str, local: list[str]) -> dict[str, str]:
    """The app's environment: ours plus HTTP_PROXY/http_proxy at the outbound listener and
    NO_PROXY/no_proxy naming local addresses (the app's own calls to itself skip the mesh)."""
    env = dict(os.environ, HTTP_PROXY=proxy_url, http_proxy=proxy_url)
    no_proxy = local_no_proxy(local, env.get("NO_PROXY") or env.get("no_proxy") or "")
    env["NO_PROXY"] = env["no_proxy"] = no_proxy
    return env


async def serve_sidecar(config: SidecarConfig, *, handle_signals: bool = False,
                        access_log: AccessLog | None = None,
                        setup: Callable[[Sidecar], None] | None = None,
                        task_status=trio.TASK_STATUS_IGNORED) -> int | None:
    """Run a sidecar until :meth:`Sidecar.shutdown` (or SIGTERM/SIGINT with ``handle_signals``:
    forwarded to the app, and the sidecar drains). ``setup(sidecar)`` runs before the tree starts
    (register hooks there). ``task_status.started(sidecar)`` once ready. Returns the app's exit
    status when it ran one."""
    sidecar = Sidecar(config, access_log=access_log)
    if setup is not None:
        setup(sidecar)
    if not handle_signals:
        return await sidecar.serve(task_status=task_status)

    def on_signal(signum: int) -> None:
        sidecar.forward_signal(signum)
        sidecar.shutdown()

    async with trio.open_nursery() as nursery:
        await nursery.start(serve_signals, on_signal)
        try:
            status = await sidecar.serve(task_status=task_status)
        finally:
            nursery.cancel_scope.cancel()
    return status
