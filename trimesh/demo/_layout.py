"""Where every process of the demo mesh lives, and the command line that starts it (PURE).

One host, one loopback block: each instance gets its own address in ``<block>.0/24`` (all of
127.0.0.0/8 reaches the loopback interface on Linux, so nothing needs configuring), which lets every
instance keep the docs' ports, exactly as DESIGN.md §1 suggests:

- ``<block>.1``: the control's config API on :data:`CONTROL_PORT` and its gossip member on
  :data:`GOSSIP_PORT` (unless the demo puts both on the default ``127.0.0.1``, see
  :mod:`trimesh.demo._mesh`);
- ``<block>.2`` … : one BookInfo instance each, in the order of ``trimesh.samples.BOOKINFO``. The sidecar's
  inbound listener keeps the service port (9080), its outbound proxy and admin server keep the
  sidecar defaults (15001, 15000), and the app listens on the same address one port above the
  service port (9081), reached only by its sidecar. Each sidecar's gossip member also keeps the
  default port (7946) on its own address.

Sidecars learn each other by gossip (docs/gossip.md §7): each one joins the control's member
(``--join CONTROL_ADDRESS:7946``) with the mesh key the control wrote into its state directory
(``--gossip-key-file STATE_DIR/gossip.key``) and announces its own instance. They use memberlist's
``local`` profile (:data:`GOSSIP_PROFILE`): on one host, 200 ms probe timeouts and 100 ms gossip
keep the start-up and the failure detection quick. Rules come from the control's API
(``--control``), merged with the gossiped copies by revision. :func:`gossip_progress` (pure) says
how far the mesh's gossip has converged, from the control's ``/v1/members`` and each sidecar's
``/config_dump``. ``trimesh demo`` uses :data:`DEMO_BLOCK`; the tests pass their own blocks so a
demo running on the same machine and the test suite never collide (each block's control has its
own address, so every control's gossip member keeps port 7946 too).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Iterable, Protocol, Sequence

DEMO_BLOCK = "127.0.10"  # trimesh demo's addresses: 127.0.10.1 … 127.0.10.254
CONTROL_PORT = 15010  # CLI.md: the control's config API
DEFAULT_CONTROL_ADDRESS = "127.0.0.1"  # where `trimesh create` looks without --control
PROXY_PORT = 15001  # the sidecar's outbound listener (Istio's capture port)
ADMIN_PORT = 15000  # the sidecar's admin server (Envoy's admin port)
APP_PORT_OFFSET = 1  # the app listens on its sidecar's address, service port + 1
DRAIN_TIMEOUT = 1.0  # seconds a sidecar drains on SIGTERM (a demo has no long requests to finish)
FIRST_HOST = 2  # <block>.1 is the control's
GOSSIP_PORT = 7946  # memberlist / Serf default gossip port (trimesh.discovery.DEFAULT_PORT)
GOSSIP_PROFILE = "local"  # memberlist's DefaultLocalConfig: fast probes on one host (gossip.md §7)
CONTROL_MEMBER = "control@{address}"  # the control's member name (trimesh/control/_process.py)
INGRESS_HOST = 100  # the ingress (BookInfo's edge) listens on <block>.100
INGRESS_PORT = 8080  # its HTTP port (the docs' 80 needs root)
INGRESS_SERVICE = "productpage"  # the BookInfo gateway Ingress sends everything there


class WorkloadLike(Protocol):
    """``trimesh.samples.Workload``'s shape: a service, a version, a port and how to run it."""

    service: str
    version: str
    port: int

    def argv(self, *, address: str = ..., port: int | None = ..., python: str = ...) -> list[str]: ...


@dataclass(frozen=True)
class ClientWorkload:
    """A workload that only calls others (the docs' ``sleep`` pod): it listens on nothing, its
    sidecar still gets an inbound port. ``argv`` ignores address and port."""

    service: str
    version: str
    module: str
    args: tuple[str, ...] = ()
    port: int = 9080
    listens: bool = False

    def argv(self, *, address: str = "127.0.0.1", port: int | None = None,
             python: str = "python3") -> list[str]:
        return [python, "-m", self.module, *self.args]


SLEEP = ClientWorkload("sleep", "v1", "trimesh.samples.sleep")


@dataclass(frozen=True)
class Member:
    """One instance of the mesh: a sidecar and its app on one loopback address."""

    service: str
    version: str
    address: str
    port: int  # the service port (the sidecar's inbound listener)
    app_port: int  # the app's port on the same address
    app_argv: tuple[str, ...]
    listens: bool = True  # whether the app serves app_port (the sleep client does not)
    namespace: str = "default"
    proxy_port: int = PROXY_PORT
    admin_port: int = ADMIN_PORT

    @property
    def name(self) -> str:
        return f"{self.service}-{self.version}"

    @property
    def url(self) -> str:
        """The inbound URL other services (and a browser) reach this instance at."""
        return f"http://{self.address}:{self.port}"

    @property
    def proxy_url(self) -> str:
        return f"http://{self.address}:{self.proxy_port}"

    @property
    def admin_url(self) -> str:
        return f"http://{self.address}:{self.admin_port}"

    @property
    def member_name(self) -> str:
        """This sidecar's gossip member, ``reviews-v2@127.0.10.5:7946`` (sidecar/_gossip.py)."""
        return f"{self.name}@{self.address}:{GOSSIP_PORT}"

    def sidecar_argv(self, trimesh: Sequence[str], *, control_url: str, join: str, key_file: str,
                     access_log: str, seed: int | None = None) -> list[str]:
        """``trimesh run sidecar … -- APP`` for this instance: a gossip member joining ``join``
        (the control's member) with the mesh key in ``key_file`` (``seed``: its routing RNG's seed,
        for reproducible weighted picks in tests; None draws from the OS)."""
        seeded = [] if seed is None else ["--seed", str(seed)]
        return [*trimesh, "run", "sidecar", "--service", self.service, "-n", self.namespace, *seeded,
                "--version", self.version, "--address", self.address, "--port", str(self.port),
                "--app-address", self.address, "--app-port", str(self.app_port),
                "--proxy-port", str(self.proxy_port), "--admin-port", str(self.admin_port),
                "--control", control_url, "--join", join, "--gossip-key-file", key_file,
                "--gossip-profile", GOSSIP_PROFILE,
                "--drain-timeout", str(DRAIN_TIMEOUT), "--access-log", access_log,
                "--", *self.app_argv]


@dataclass(frozen=True)
class MeshPlan:
    """Every member of a mesh and the control's place."""

    block: str
    control_address: str
    control_port: int
    members: tuple[Member, ...] = field(default_factory=tuple)
    gossip_port: int = GOSSIP_PORT  # the control's gossip member, the sidecars' seed

    @property
    def control_url(self) -> str:
        return f"http://{self.control_address}:{self.control_port}"

    @property
    def join(self) -> str:
        """The seed every sidecar joins: the control's gossip member (``HOST:PORT``)."""
        return f"{self.control_address}:{self.gossip_port}"

    def control_argv(self, trimesh: Sequence[str], *, state_dir: str) -> list[str]:
        """``trimesh run control …``: config API and gossip member on the control's address."""
        return [*trimesh, "run", "control", "--address", self.control_address,
                "--config-port", str(self.control_port), "--state-dir", state_dir,
                "--gossip-port", str(self.gossip_port), "--gossip-profile", GOSSIP_PROFILE]

    @property
    def ingress_address(self) -> str | None:
        """Where the demo's ingress listens, or None when no member is BookInfo's productpage
        (the gateway Ingress's one backend)."""
        if not any(m.service == INGRESS_SERVICE for m in self.members):
            return None
        return f"{self.block}.{INGRESS_HOST}"

    def ingress_argv(self, trimesh: Sequence[str], *, registry: str, config: str,
                     access_log: str) -> list[str]:
        """``trimesh run ingress …`` on :attr:`ingress_address`: the Ingress objects of ``config``,
        productpage from the static ``registry`` (its sidecar's inbound), no control."""
        assert self.ingress_address is not None
        return [*trimesh, "run", "ingress", "--address", self.ingress_address,
                "--port", str(INGRESS_PORT), "--admin-port", str(ADMIN_PORT), "--control", "none",
                "--registry", registry, "--config", config,
                "--drain-timeout", str(DRAIN_TIMEOUT), "--access-log", access_log]

    def member_names(self) -> list[str]:
        """Every gossip member of the mesh: the control's, then one per sidecar."""
        return [CONTROL_MEMBER.format(address=self.control_address),
                *(m.member_name for m in self.members)]

    def member(self, service: str, version: str | None = None) -> Member:
        for m in self.members:
            if m.service == service and (version is None or m.version == version):
                return m
        raise KeyError(f"no {service} {version or ''} in the mesh".replace("  ", " "))


@dataclass(frozen=True)
class GossipProgress:
    """How far the mesh's gossip has converged (:func:`gossip_progress`)."""

    alive: int  # members the control sees alive
    total: int  # members the mesh has (the control and every sidecar)
    not_alive: tuple[str, ...] = ()  # member names the control does not see alive
    missing: tuple[str, ...] = ()  # "reviews-v1 lacks ratings-v1 (127.0.10.7:9080)", ...

    @property
    def done(self) -> bool:
        return not self.not_alive and not self.missing

    def describe(self) -> str:
        """What is still missing, for an error message."""
        parts = []
        if self.not_alive:
            parts.append(f"not alive at the control: {', '.join(self.not_alive)}")
        parts.extend(self.missing)
        return "; ".join(parts) or "nothing"


def gossip_progress(plan: MeshPlan, member_rows: Iterable[dict[str, Any]] | None,
                    dumps: dict[str, Iterable[dict[str, Any]] | None]) -> GossipProgress:
    """Compare the control's ``/v1/members`` rows (None: not read) and each sidecar's
    ``/config_dump`` instances (by member name; None: not read) with the plan: done when the
    control sees every member alive and every sidecar lists every instance of the mesh."""
    states = {row.get("name"): row.get("state") for row in member_rows or ()}
    names = plan.member_names()
    not_alive = tuple(n for n in names if states.get(n) != "alive")
    missing = []
    for m in plan.members:
        seen = {(i.get("address"), i.get("port")) for i in dumps.get(m.name) or ()}
        lacks = [f"{o.name} ({o.address}:{o.port})" for o in plan.members
                 if (o.address, o.port) not in seen]
        if lacks:
            missing.append(f"{m.name} lacks {', '.join(lacks)}")
    return GossipProgress(alive=len(names) - len(not_alive), total=len(names),
                          not_alive=not_alive, missing=tuple(missing))


def check_block(block: str) -> str:
    """``127.0.10`` (three octets inside 127.0.0.0/8), or ValueError saying what is wrong."""
    try:
        first = ipaddress.IPv4Address(f"{block}.1")
    except ValueError:
        raise ValueError(f"address block {block!r} must be three octets, like {DEMO_BLOCK}") from None
    if not first.is_loopback:
        raise ValueError(f"address block {block!r} must be inside 127.0.0.0/8 (loopback)")
    return block


def plan_mesh(workloads: Sequence[WorkloadLike], *, python: str, block: str = DEMO_BLOCK,
              control_address: str | None = None, control_port: int = CONTROL_PORT,
              gossip_port: int = GOSSIP_PORT) -> MeshPlan:
    """Give each workload the next address of ``block`` (from ``.2``) and its command line;
    the control goes on ``control_address`` (default ``<block>.1``), its gossip member on
    ``gossip_port`` there."""
    check_block(block)
    if len(workloads) > INGRESS_HOST - FIRST_HOST:  # the hosts below the ingress's
        raise ValueError(f"{len(workloads)} workloads do not fit in {block}.0/24 below the "
                         f"ingress's .{INGRESS_HOST}")
    members = []
    for i, w in enumerate(workloads):
        address = f"{block}.{FIRST_HOST + i}"
        app_port = w.port + APP_PORT_OFFSET
        members.append(Member(
            service=w.service, version=w.version, address=address, port=w.port,
            app_port=app_port, app_argv=tuple(w.argv(address=address, port=app_port, python=python)),
            listens=getattr(w, "listens", True)))
    return MeshPlan(block=block, control_address=control_address or f"{block}.1",
                    control_port=control_port, members=tuple(members), gossip_port=gossip_port)
