"""The sidecar's health-checker: active checks of the instances it routes to, and of its own app.

Theory of operation (docs/resilience.md §5; concepts.md §6 L538–540; Envoy ``HealthCheck``):

- Every :data:`HEALTH_INTERVAL` seconds one *round* runs. A round probes, concurrently, the
  sidecar's own app (``--app-address:--app-port``) and, in mode ``all``, every endpoint of the
  sidecar's current :class:`~trimesh.routing.RouteTable` — ``table.health_states()``: the
  endpoints of the clusters this sidecar has routed to so far. Rounds start on a fixed grid
  (``start + k × interval``); a round that overruns starts the next one at once.
- Modes (:data:`HEALTH_MODES`, ``--health-checks``): ``app`` (the default) probes only the own
  app — the sidecar's analogue of the Kubernetes readiness probe whose verdict Istio 0.x's
  endpoints carried; with gossip the verdict reaches every other sidecar, so N sidecars do not
  each probe M endpoints, and Istio 0.x's Pilot configured no active checks of peers either.
  ``all`` also probes the peers directly: what a mesh of static (``--registry``) instances, with
  nobody announcing their health, needs. ``off`` probes nothing.
- A probe of an ``http`` endpoint is ``GET <path>`` over a fresh HTTP/1.1 connection with
  ``user-agent:`` :data:`USER_AGENT` and ``connection: close``, bounded by :data:`HEALTH_TIMEOUT`.
  It **passes** when the answer's status is below 500: any answer that is not a server error shows
  an app that is up and serving, and an app with no health endpoint (``404``, httpbin's case) must
  not leave the pool. It **fails** on a 5xx, a timeout, a refused or reset connection. Endpoints
  of other protocols (``tcp``, ``http2``, ``grpc``), and peers called with mutual TLS, get a TCP
  connect check: it passes when the connection opens.
- Each result goes to the endpoint's :class:`~trimesh.routing.HealthState` with
  ``record_probe(ok, status, now)``. The thresholds live there (2 failures out, 2 passes back); an
  answer of **503** takes the endpoint out *at once* — the docs' way for a service to shed load —
  so traffic stops within one interval. Every cluster holding the endpoint sees the change on its
  next pick; below 50 % healthy a cluster balances across all its instances (Envoy's panic
  threshold, in ``trimesh.routing``).
- The health path is :data:`HEALTH_PATH` (``/health``). Istio 0.x has no config field for it, so a
  sidecar sets it with :class:`HealthCheckConfig` (``path``, and ``paths`` keyed by service name,
  short or fully qualified, for services that serve health elsewhere).
- The own app is probed directly (not through the inbound listener). Its state is kept in
  :attr:`HealthChecker.own`, fed into the own endpoint's state when the table has it (a sidecar
  that calls its own service), and after every check the app's health is reported to
  ``on_own_change(healthy)`` — the hook through which the sidecar announces it in gossip, so other
  sidecars stop choosing it. Reporting every check, not only flips, repairs an announcement that
  something else reset (a restarted inbound listener re-creates the own instance); the callee acts
  on changes only. Until the app first passes a check, failures within :data:`APP_START_GRACE` of the start
  are not counted: an app that is still starting (the sidecar starts it once ready) is not sick.

The timing and I/O are here; the decisions (thresholds, shedding, panic) are the pure state machines
of ``trimesh.routing``. The probe function is injectable so the loop runs in virtual time in tests.

Sources: Envoy ``config.core.v3.HealthCheck`` (``interval``, ``timeout``, ``http_health_check.path``,
``expected_statuses``), Envoy architecture overview *Health checking* ("Envoy/HC" user agent,
immediate failure on an unexpected status), Kubernetes HTTP probes (a status outside 2xx–3xx fails;
trimesh widens that to < 500, see above).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import trio

from ..errors import ProtocolError
from ..routing import HealthState
from ..service import http_request

HEALTH_INTERVAL = 1.0  # seconds between rounds (trimesh choice; Envoy's `interval` is required,
#                        Istio 1.x outlier/HC examples and Kubernetes probes use 1–10 s)
HEALTH_TIMEOUT = 1.0  # seconds a probe may take (Kubernetes' timeoutSeconds default: 1)
HEALTH_PATH = "/health"  # trimesh default; Envoy's http_health_check.path is required
USER_AGENT = "trimesh-health-checker/1"  # Envoy sends "Envoy/HC"; apps can spot checks by it
APP_START_GRACE = 10.0  # seconds the own app may fail its checks before its first pass (Kubernetes'
#                        initialDelaySeconds plays this role): an app still starting is not sick
PROBE_RESPONSE_LIMIT = 64 * 1024  # bytes read from a probe's answer at most (the body is ignored)
HTTP_PROTOCOLS = frozenset({"http"})  # probed with GET; others get a TCP connect check
HEALTH_MODES = ("app", "all", "off")  # what a sidecar probes; see the module docstring
DEFAULT_HEALTH_MODE = "app"  # Istio 0.x configured no active checks of peers (module docstring)

log = logging.getLogger("trimesh.sidecar")

# probe(address, port, path, host, timeout) -> (ok, status)
Probe = Callable[[str, int, "str | None", str, float], Awaitable["tuple[bool, int | None]"]]


def probe_passes(status: int | None) -> bool:
    """A probe passes when the endpoint answered with a status below 500 (module docstring)."""
    return status is not None and status < 500


async def probe_endpoint(address: str, port: int, path: str | None, host: str,
                         timeout: float) -> tuple[bool, int | None]:
    """One active check: ``GET path`` (or, with ``path=None``, a TCP connect) bounded by
    ``timeout``. Returns ``(ok, status)``; ``status`` is ``None`` when nothing came back."""
    with trio.move_on_after(timeout):
        try:
            stream = await trio.open_tcp_stream(address, port)
        except OSError:
            return False, None
        try:
            if path is None:
                return True, None
            return _verdict(await _http_get(stream, path, host))
        except (OSError, trio.BrokenResourceError, ProtocolError):
            return False, None
        finally:
            with trio.CancelScope(shield=True):
                with trio.move_on_after(0.5):
                    await stream.aclose()
    return False, None


def _verdict(status: int | None) -> tuple[bool, int | None]:
    return probe_passes(status), status


async def _http_get(stream: trio.SocketStream, path: str, host: str) -> int | None:
    """The status of ``GET path`` (the answer's body is not read)."""
    answer = await http_request(stream, "GET", path, host=host, read_body=False,
                                max_body=PROBE_RESPONSE_LIMIT,
                                headers=[("user-agent", USER_AGENT), ("accept", "*/*"),
                                         ("connection", "close")])
    return answer.status


@dataclass(frozen=True)
class HealthCheckConfig:
    """How a sidecar checks health. ``paths`` overrides ``path`` per service (short name such as
    ``reviews`` or the FQDN ``reviews.default.svc.cluster.local``)."""

    interval: float = HEALTH_INTERVAL
    timeout: float = HEALTH_TIMEOUT
    path: str = HEALTH_PATH
    paths: Mapping[str, str] = field(default_factory=dict)
    mode: str = DEFAULT_HEALTH_MODE

    def __post_init__(self) -> None:
        if self.mode not in HEALTH_MODES:
            raise ValueError(f"health-check mode must be one of {', '.join(HEALTH_MODES)}, "
                             f"got {self.mode!r}")
        if not self.interval > 0:
            raise ValueError(f"health-check interval must be positive, got {self.interval!r}")
        if not self.timeout > 0:
            raise ValueError(f"health-check timeout must be positive, got {self.timeout!r}")
        for where, p in [("path", self.path), *((f"paths[{k!r}]", v) for k, v in self.paths.items())]:
            if not p.startswith("/"):
                raise ValueError(f"health-check {where} must start with '/', got {p!r}")

    def path_for(self, service: str | None, fqdn: str | None) -> str:
        paths = self.paths
        if paths:
            for key in (fqdn, service):
                if key is not None and key in paths:
                    return paths[key]
        return self.path


@dataclass
class _Target:
    address: str
    port: int
    path: str | None  # None: TCP connect check
    host: str
    states: list[HealthState]


class HealthChecker:
    """State and statistics of one sidecar's health-checker; :func:`serve_health_checker` runs it.

    ``tables`` returns the sidecar's current RouteTable (or ``None`` before the first one); it is
    read at the start of every round, so a snapshot swap is followed at once. ``own_app`` is the
    app's ``(address, port)`` (``None``: no app to check); ``own_endpoint`` the sidecar's own
    instance endpoint (its inbound listener), which is not probed as a peer — the app behind it is
    probed directly and that verdict is fed to it. ``on_own_change(healthy)`` is called with the
    app's health after every counted check of it (the callee acts on changes).
    """

    def __init__(self, tables: Callable[[], Any], *, own_app: tuple[str, int] | None = None,
                 own_endpoint: tuple[str, int] | None = None, own_service: str | None = None,
                 config: HealthCheckConfig | None = None, probe: Probe | None = None,
                 on_own_change: Callable[[bool], Any] | None = None, name: str = "sidecar",
                 own_http: bool = True) -> None:
        self.tables = tables
        self.own_http = own_http  # False: the own app speaks TCP, so it gets a connect check
        self.own_app = own_app
        self.own_endpoint = own_endpoint
        self.own_service = own_service
        self.config = config or HealthCheckConfig()
        self.probe: Probe = probe or probe_endpoint
        self.on_own_change = on_own_change
        self.name = name
        self.own = HealthState()
        self.rounds = 0
        self.probes = 0
        self.failures = 0
        self.flips = 0
        self.overruns = 0
        self.last_round_at: float | None = None
        self.last_round_duration: float | None = None
        self.started_at: float | None = None
        self.app_passed = False  # the own app has passed a check at least once
        self.startup_failures = 0

    # -- what to probe --------------------------------------------------------------------------
    def targets(self) -> list[_Target]:
        """The endpoints of one round (the own app first, if any)."""
        cfg = self.config
        if cfg.mode == "off":
            return []
        table = self.tables()
        states: dict[tuple[str, int], HealthState] = table.health_states() if table else {}
        info: dict[tuple[str, int], Any] = {}
        secure: set[tuple[str, int]] = set()
        if table is not None and states:
            for cluster in table.clusters().values():
                for inst in cluster.instances:
                    info.setdefault(inst.endpoint, inst)
                if cluster.secure:
                    secure.update(cluster.secure)
        out: list[_Target] = []
        if self.own_app is not None:
            own_states = [self.own]
            if self.own_endpoint is not None and self.own_endpoint in states:
                own_states.append(states[self.own_endpoint])
            path = cfg.path_for(self.own_service, None) if self.own_http else None
            out.append(_Target(self.own_app[0], self.own_app[1], path,
                               f"{self.own_app[0]}:{self.own_app[1]}", own_states))
        for ep, state in states.items():
            if cfg.mode != "all":
                break
            if ep == self.own_endpoint and self.own_app is not None:
                continue
            inst = info.get(ep)
            if inst is None:
                path, host = cfg.path, f"{ep[0]}:{ep[1]}"
            else:
                # a peer behind mutual TLS gets a TCP connect check (a plaintext GET would
                # be refused by its inbound listener)
                http = inst.protocol in HTTP_PROTOCOLS and ep not in secure
                path = cfg.path_for(inst.service, inst.fqdn) if http else None
                host = f"{inst.service}:{ep[1]}"
            out.append(_Target(ep[0], ep[1], path, host, [state]))
        return out

    # -- one round ------------------------------------------------------------------------------
    async def check_once(self) -> int:
        """Probe every target once, concurrently; returns how many endpoints changed state."""
        targets = self.targets()
        started = trio.current_time()
        flips = [0]
        async with trio.open_nursery() as nursery:
            for target in targets:
                nursery.start_soon(self._check, target, flips)
        self.rounds += 1
        self.last_round_at = started
        self.last_round_duration = trio.current_time() - started
        return flips[0]

    async def _check(self, target: _Target, flips: list[int]) -> None:
        cfg = self.config
        ok, status = await self.probe(target.address, target.port, target.path, target.host,
                                      cfg.timeout)
        now = trio.current_time()
        self.probes += 1
        if not ok:
            self.failures += 1
        if target.states[0] is self.own:
            if ok:
                self.app_passed = True
            elif (not self.app_passed and self.started_at is not None
                  and now - self.started_at < APP_START_GRACE):
                self.startup_failures += 1  # still starting: not counted against it
                return
        for state in target.states:
            if not state.record_probe(ok, status, now):
                continue
            flips[0] += 1
            self.flips += 1
            what = "app" if state is self.own else "endpoint"
            log.info("health: %s %s:%d is now %s (status %s)", what, target.address, target.port,
                     state.state, status if status is not None else "none")
        if target.states[0] is self.own and self.on_own_change is not None:
            self.on_own_change(self.own.healthy)

    # -- introspection --------------------------------------------------------------------------
    def statistics(self) -> dict[str, Any]:
        table = self.tables()
        states = table.health_states() if table is not None else {}
        return {
            "interval": self.config.interval, "timeout": self.config.timeout,
            "path": self.config.path, "rounds": self.rounds, "probes": self.probes,
            "failures": self.failures, "flips": self.flips, "overruns": self.overruns,
            "startup_failures": self.startup_failures,
            "last_round_duration": self.last_round_duration,
            "app": self.own.statistics() if self.own_app is not None else None,
            "endpoints": {f"{a}:{p}": s.state for (a, p), s in states.items()},
            "unhealthy": sum(1 for s in states.values() if not s.healthy),
        }

    def __repr__(self) -> str:
        return (f"<HealthChecker {self.name} every {self.config.interval}s "
                f"rounds={self.rounds} probes={self.probes} failures={self.failures} "
                f"app={self.own.state if self.own_app is not None else None}>")


async def serve_health_checker(checker: HealthChecker, *,
                               task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Run ``checker`` until cancelled: a round every ``checker.config.interval`` seconds on a
    fixed grid, the first one at once. Reports ``task_status.started(checker)`` before it."""
    cfg = checker.config
    log.info("health checker %s ready: %s, GET %s every %gs (timeout %gs)%s", checker.name,
             {"all": "the app and every routed endpoint", "app": "the app only",
              "off": "nothing (off)"}[cfg.mode], cfg.path, cfg.interval, cfg.timeout,
             f", app at {checker.own_app[0]}:{checker.own_app[1]}" if checker.own_app else "")
    task_status.started(checker)
    next_round = checker.started_at = trio.current_time()
    while True:
        await checker.check_once()
        next_round += cfg.interval
        now = trio.current_time()
        if next_round < now:  # the round overran the interval: start the next one now
            checker.overruns += 1
            next_round = now
        await trio.sleep_until(next_round)
