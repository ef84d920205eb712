"""The sidecar: inbound + outbound proxies, admin server and config sources in one nursery.

``serve_sidecar(config)`` is the programmatic ``trimesh run sidecar``:

1. load ``--registry`` / ``--config`` files (a bad file is a user error at startup);
2. build the first Snapshot — config objects from files and the control, instances from the
   registry file plus the sidecar's own instance (its service, address, ``--port``, labels) — and
   compile it into a RouteTable for this sidecar's identity (``trimesh.routing.compile_routes``);
3. start inbound (``--address:--port`` → ``--app-address:--app-port``), outbound
   (``--address:--proxy-port``), admin (``--address:--admin-port``), the file poller and the control
   long-poll, then log one ready line and report ``task_status.started(sidecar)``;
4. on any source change, rebuild Snapshot + RouteTable and swap ``outbound.table`` — one reference,
   so requests in flight finish on the table they started with, new requests see the change at once
   (file changes within the 1 s poll, control changes as soon as the long poll answers);
5. :meth:`Sidecar.shutdown` (SIGTERM/SIGINT in the CLI): ``/ready`` turns 503, listeners stop
   accepting, idle connections close, busy ones finish up to ``drain_timeout``, then everything is
   cancelled (DESIGN.md: graceful shutdown is nested nurseries with a deadline).

With ``app_argv`` the app is started once the sidecar is ready, with ``HTTP_PROXY``/``http_proxy``
pointing at the outbound listener; SIGTERM/SIGINT are forwarded to it; when it exits the sidecar
drains and ``serve_sidecar`` returns the app's exit status.
"""

from __future__ import annotations

import logging
import os
import random
import signal
from dataclasses import dataclass, field
from typing import Any

import msgspec
import trio

from ..config import DEFAULT_DOMAIN, DEFAULT_NAMESPACE, Snapshot, make_instance
from ..proxy import AccessLog, HttpServer, InboundProxy, OutboundProxy, UpstreamPool
from ..routing import SourceIdentity, compile_routes
from ._admin import AdminApp, serve_admin
from ._sources import ControlSource, FileSource

DEFAULT_PROXY_PORT = 15001  # Istio's outbound capture port (DESIGN.md §1)
DEFAULT_ADMIN_PORT = 15000  # Envoy's admin port
DEFAULT_CONTROL_URL = "http://127.0.0.1:15010"  # CLI.md
DEFAULT_DRAIN_TIMEOUT = 5.0  # seconds; Envoy's --drain-time-s default is 600, too long for tests
APP_STOP_TIMEOUT = 10.0  # seconds an app gets after SIGTERM before SIGKILL

log = logging.getLogger("trimesh.sidecar")


@dataclass
class SidecarConfig:
    """Everything ``trimesh run sidecar`` takes (CLI.md). Ports may be 0 (any free port)."""

    service: str
    port: int
    app_port: int
    namespace: str = DEFAULT_NAMESPACE
    labels: dict[str, str] = field(default_factory=dict)
    service_account: str = "default"
    protocol: str = "http"
    app_address: str = "127.0.0.1"
    address: str = "127.0.0.1"
    proxy_port: int = DEFAULT_PROXY_PORT
    admin_port: int = DEFAULT_ADMIN_PORT
    control: str | None = DEFAULT_CONTROL_URL
    registry: str | None = None
    config_files: list[str] = field(default_factory=list)
    drain_timeout: float = DEFAULT_DRAIN_TIMEOUT
    domain: str = DEFAULT_DOMAIN
    app_argv: list[str] = field(default_factory=list)
    seed: int | None = None

    @property
    def name(self) -> str:
        version = self.labels.get("version")
        return f"{self.service}-{version}" if version else self.service


class Sidecar:
    """One sidecar's state. Built by :func:`serve_sidecar`; tests drive it in-process."""

    def __init__(self, config: SidecarConfig, *, access_log: AccessLog | None = None) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        labels = {"app": config.service}
        labels.update(config.labels)
        self.labels = labels
        self.source = SourceIdentity(service=config.service, namespace=config.namespace,
                                     labels=labels)
        self.access_log = access_log or AccessLog()
        self.pool = UpstreamPool()
        self.app_pool = UpstreamPool()
        self.files = FileSource(config.registry, config.config_files, self._rebuild)
        self.control = ControlSource(config.control, self._rebuild) if config.control else None
        self.snapshot: Snapshot | None = None
        self.table = None
        self.own_instance = None
        self.outbound = OutboundProxy(None, rng=self.rng, pool=self.pool,
                                      access_log=self.access_log)
        self.inbound = InboundProxy((config.app_address, config.app_port), rng=self.rng,
                                    pool=self.app_pool, access_log=self.access_log)
        self.outbound_server = HttpServer("outbound", self.outbound)
        self.inbound_server = HttpServer("inbound", self.inbound)
        self.admin = AdminApp(self)
        self.ready = False
        self.draining = False
        self.version = 0
        self.rebuilds = 0
        self.rebuild_errors = 0
        self.addresses: dict[str, tuple[str, int]] = {}
        self.app_status: int | None = None
        self._shutdown = trio.Event()

    # -- snapshots ------------------------------------------------------------------------------
    def _rebuild(self) -> None:
        objects = list(self.files.objects)
        if self.control is not None:
            objects.extend(self.control.objects)
        instances = list(self.files.instances)
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
        self.table = table
        self.outbound.table = table  # the swap: requests in flight keep the table they read
        self.rebuilds += 1

    def shutdown(self) -> None:
        """Start a graceful drain (idempotent)."""
        self._shutdown.set()

    # -- admin views ----------------------------------------------------------------------------
    def statistics(self) -> dict[str, Any]:
        return {
            "name": self.config.name, "ready": self.ready, "draining": self.draining,
            "snapshot": self.snapshot.statistics() if self.snapshot else None,
            "rebuilds": self.rebuilds, "rebuild_errors": self.rebuild_errors,
            "outbound": self.outbound.statistics(), "inbound": self.inbound.statistics(),
            "listeners": {"outbound": self.outbound_server.statistics(),
                          "inbound": self.inbound_server.statistics()},
            "upstream_pool": self.pool.statistics(), "app_pool": self.app_pool.statistics(),
            "access_log": self.access_log.statistics(), "files": self.files.statistics(),
            "control": self.control.statistics() if self.control else None,
        }

    def config_dump(self) -> dict[str, Any]:
        snap = self.snapshot
        if snap is None:
            return {"version": 0, "objects": [], "instances": []}
        return {
            "version": snap.version,
            "control_revision": self.control.revision if self.control else None,
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

    # -- running --------------------------------------------------------------------------------
    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> int | None:
        cfg = self.config
        self.files.load_initial()
        async with trio.open_nursery() as nursery:
            self.outbound.mirror_nursery = nursery
            inbound = await nursery.start(self.inbound_server.serve, cfg.address, cfg.port)
            self.own_instance = make_instance(
                cfg.service, inbound[0], inbound[1], labels=dict(cfg.labels),
                namespace=cfg.namespace, protocol=cfg.protocol,
                service_account=cfg.service_account, domain=cfg.domain)
            self._rebuild()
            outbound = await nursery.start(self.outbound_server.serve, cfg.address, cfg.proxy_port)
            admin = await nursery.start(serve_admin, self.admin, cfg.address, cfg.admin_port)
            self.addresses = {"inbound": inbound, "outbound": outbound, "admin": admin}
            await nursery.start(self.files.serve)
            if self.control is not None:
                await nursery.start(self.control.serve)
            await nursery.start(self.access_log.serve_flusher)
            self.ready = True
            log.info("sidecar %s ready: inbound %s:%d -> %s:%d, outbound %s:%d, admin %s:%d",
                     cfg.name, inbound[0], inbound[1], cfg.app_address, cfg.app_port,
                     outbound[0], outbound[1], admin[0], admin[1])
            task_status.started(self)
            if cfg.app_argv:
                nursery.start_soon(self._run_app, outbound)
            await self._shutdown.wait()
            await self._drain()
            nursery.cancel_scope.cancel()
        self.pool.close()
        self.app_pool.close()
        return self.app_status

    async def _drain(self) -> None:
        self.draining = True
        log.info("sidecar %s draining (up to %.1fs)", self.config.name, self.config.drain_timeout)
        self.inbound_server.drain()
        self.outbound_server.drain()
        with trio.move_on_after(self.config.drain_timeout):
            await self.inbound_server.wait_drained()
            await self.outbound_server.wait_drained()
        self.access_log.flush()

    async def _run_app(self, outbound: tuple[str, int]) -> None:
        proxy = f"http://{outbound[0]}:{outbound[1]}"
        env = dict(os.environ, HTTP_PROXY=proxy, http_proxy=proxy)
        env.setdefault("NO_PROXY", "")
        proc = await trio.lowlevel.open_process(self.config.app_argv, env=env)
        self._app = proc
        try:
            self.app_status = await proc.wait()
        finally:
            if proc.returncode is None:
                proc.terminate()
                with trio.move_on_after(APP_STOP_TIMEOUT) as scope:
                    scope.shield = True
                    await proc.wait()
                if proc.returncode is None:
                    proc.kill()
        log.info("sidecar %s: app exited with status %s", self.config.name, self.app_status)
        self.shutdown()

    def forward_signal(self, signum: int) -> bool:
        """Send ``signum`` to the app if one runs; True when it was forwarded."""
        proc = getattr(self, "_app", None)
        if proc is not None and proc.returncode is None:
            proc.send_signal(signum)
            return True
        return False


async def serve_sidecar(config: SidecarConfig, *, handle_signals: bool = False,
                        access_log: AccessLog | None = None,
                        task_status=trio.TASK_STATUS_IGNORED) -> int | None:
    """Run a sidecar until :meth:`Sidecar.shutdown` (or SIGTERM/SIGINT with ``handle_signals``).
    ``task_status.started(sidecar)`` once ready. Returns the app's exit status when it ran one."""
    sidecar = Sidecar(config, access_log=access_log)
    if not handle_signals:
        return await sidecar.serve(task_status=task_status)
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            async def watch() -> None:
                async for signum in signals:
                    if sidecar.forward_signal(signum):
                        continue  # the app exits; the sidecar drains after it
                    sidecar.shutdown()
            nursery.start_soon(watch)
            status = await sidecar.serve(task_status=task_status)
            nursery.cancel_scope.cancel()
    return status
