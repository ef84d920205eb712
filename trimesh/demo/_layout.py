"""Where every process of the demo mesh lives, and the command line that starts it (PURE).

One host, one loopback block: each instance gets its own address in ``<block>.0/24`` (all of
127.0.0.0/8 reaches the loopback interface on Linux, so nothing needs configuring), which lets every
instance keep the docs' ports, exactly as DESIGN.md §1 suggests:

- ``<block>.1``: the control's config API on :data:`CONTROL_PORT` (unless the demo puts it on the
  default ``127.0.0.1:15010``, see :mod:`trimesh.demo._mesh`);
- ``<block>.2`` … : one BookInfo instance each, in the order of ``examples.BOOKINFO``. The sidecar's
  inbound listener keeps the service port (9080), its outbound proxy and admin server keep the
  sidecar defaults (15001, 15000), and the app listens on the same address one port above the
  service port (9081), reached only by its sidecar.

Sidecars learn each other from one shared static registry file (``--registry``, the list
:func:`registry_entries` builds; gossip will replace it) and their rules from the control
(``--control``). ``trimesh demo`` uses :data:`DEMO_BLOCK`; the tests pass their own blocks so a demo
running on the same machine and the test suite never collide.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

DEMO_BLOCK = "127.0.10"  # trimesh demo's addresses: 127.0.10.1 … 127.0.10.254
CONTROL_PORT = 15010  # CLI.md: the control's config API
DEFAULT_CONTROL_ADDRESS = "127.0.0.1"  # where `trimesh create` looks without --control
PROXY_PORT = 15001  # the sidecar's outbound listener (Istio's capture port)
ADMIN_PORT = 15000  # the sidecar's admin server (Envoy's admin port)
APP_PORT_OFFSET = 1  # the app listens on its sidecar's address, service port + 1
DRAIN_TIMEOUT = 1.0  # seconds a sidecar drains on SIGTERM (a demo has no long requests to finish)
FIRST_HOST = 2  # <block>.1 is the control's


class WorkloadLike(Protocol):
    """``examples.Workload``'s shape: a service, a version, a port and how to run it."""

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


SLEEP = ClientWorkload("sleep", "v1", "examples.sleep")


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

    def registry_entry(self) -> dict[str, Any]:
        """This instance as an entry of the ``--registry`` file (trimesh/sidecar/_sources.py)."""
        return {"service": self.service, "namespace": self.namespace, "address": self.address,
                "port": self.port, "protocol": "http", "serviceAccount": "default",
                "labels": {"app": self.service, "version": self.version}}

    def sidecar_argv(self, trimesh: Sequence[str], *, control_url: str, registry: str,
                     access_log: str, seed: int | None = None) -> list[str]:
        """``trimesh run sidecar … -- APP`` for this instance (``seed``: its routing RNG's seed,
        for reproducible weighted picks in tests; None draws from the OS)."""
        seeded = [] if seed is None else ["--seed", str(seed)]
        return [*trimesh, "run", "sidecar", "--service", self.service, "-n", self.namespace, *seeded,
                "--version", self.version, "--address", self.address, "--port", str(self.port),
                "--app-address", self.address, "--app-port", str(self.app_port),
                "--proxy-port", str(self.proxy_port), "--admin-port", str(self.admin_port),
                "--control", control_url, "--registry", registry,
                "--drain-timeout", str(DRAIN_TIMEOUT), "--access-log", access_log,
                "--", *self.app_argv]


@dataclass(frozen=True)
class MeshPlan:
    """Every member of a mesh and the control's place."""

    block: str
    control_address: str
    control_port: int
    members: tuple[Member, ...] = field(default_factory=tuple)

    @property
    def control_url(self) -> str:
        return f"http://{self.control_address}:{self.control_port}"

    def member(self, service: str, version: str | None = None) -> Member:
        for m in self.members:
            if m.service == service and (version is None or m.version == version):
                return m
        raise KeyError(f"no {service} {version or ''} in the mesh".replace("  ", " "))

    def registry_entries(self) -> list[dict[str, Any]]:
        """The shared ``--registry`` file's contents: every member that serves."""
        return [m.registry_entry() for m in self.members]


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
              control_address: str | None = None, control_port: int = CONTROL_PORT) -> MeshPlan:
    """Give each workload the next address of ``block`` (from ``.2``) and its command line;
    the control goes on ``control_address`` (default ``<block>.1``)."""
    check_block(block)
    if len(workloads) > 254 - FIRST_HOST:
        raise ValueError(f"{len(workloads)} workloads do not fit in {block}.0/24")
    members = []
    for i, w in enumerate(workloads):
        address = f"{block}.{FIRST_HOST + i}"
        app_port = w.port + APP_PORT_OFFSET
        members.append(Member(
            service=w.service, version=w.version, address=address, port=w.port,
            app_port=app_port, app_argv=tuple(w.argv(address=address, port=app_port, python=python)),
            listens=getattr(w, "listens", True)))
    return MeshPlan(block=block, control_address=control_address or f"{block}.1",
                    control_port=control_port, members=tuple(members))
