"""The control process (``trimesh run control``): the config store and its services as one
supervision tree (trimesh.nursery, docs/supervision.md).

Children, in start order (stop order is the reverse)::

    config-api   the config API over the store
    gossip       the gossip member (only with ``gossip_port``)
    publisher    keeps gossip in line with the store (depends on gossip: restarted with it)
    ca           the CA service (only with ``ca_port``; trimesh/ca/_service.py), its state in
                 ``<state dir>/ca`` and the mesh token in ``<state dir>/mesh-token``
    mixer        Mixer (only with ``mixer_port``; trimesh/mixer/_service.py), its config from
                 the config API (docs/mixer.md)
    <children>   ``serve_control(children=[ChildSpec, ...])``: the place for the CA, Mixer and
                 service-graph services (DESIGN.md §1) as their issues land

A crashing child is restarted (at most :data:`CONTROL_INTENSITY`); one that crashes more often
takes the control down with an error naming it. Ready means: the state is loaded and every child
is up, then ONE line is logged naming the API and the state directory (the gossip member and the
CA log their own ready lines).

Gossip (``gossip_port`` not ``None``): the control reads or creates the mesh key in its state
directory, joins the seeds as member ``control@ADDRESS``, and runs the :class:`~._gossip.Publisher`
that keeps gossip in line with the config store and the static instances (docs/gossip.md §7). The
gossip member logs its own ready line.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import trio

from ..ca import serve_ca
from ..config import DEFAULT_DOMAIN
from ..discovery import GossipConfig, serve_discovery
from ..errors import TrimeshError
from ..nursery import ChildSpec, Supervisor, SupervisorError, cancel_on_stop
from ._api import DEFAULT_CONFIG_PORT, Mesh, serve_config_api
from ._gossip import Publisher, load_or_create_mesh_key, mesh_key_path
from ._instances import InstanceStore
from ._etcd import open_config_store

log = logging.getLogger("trimesh.control")

DEFAULT_ADDRESS = "127.0.0.1"
CONTROL_INTENSITY = (3, 10.0)  # restarts in seconds, as a sidecar's (trimesh/sidecar/_sidecar.py)


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/trimesh/control``, i.e. ``~/.local/state/trimesh/control`` by default (the
    XDG Base Directory spec's place for state that survives restarts)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "trimesh" / "control"


def default_mesh_key_file() -> Path:
    """The mesh key a member on this host uses by default: ``gossip.key`` in the control's
    default state directory (``--gossip-key-file`` overrides it)."""
    return mesh_key_path(default_state_dir())


async def serve_control(*, state_dir: str | os.PathLike[str] | None = None,
                        address: str = DEFAULT_ADDRESS, config_port: int = DEFAULT_CONFIG_PORT,
                        domain: str = DEFAULT_DOMAIN, gossip_port: int | None = None,
                        join: list[str] | tuple[str, ...] = (),
                        gossip_config: GossipConfig | None = None,
                        children: Sequence[ChildSpec] = (),
                        store_url: str | None = None,
                        ca_port: int | None = None, ca_options: dict | None = None,
                        mixer_port: int | None = None, prometheus_port: int | None = None,
                        task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
    """Run the control until cancelled. ``task_status.started`` gets the config API's URL.
    Raises ``StateError`` if the state directory cannot be used. ``gossip_port`` (0: any free
    port; ``None``: no gossip) runs the gossip member, joining the ``join`` seeds. ``children``
    are extra supervised services started after the built-in ones. ``store_url``
    (``etcd://HOST:PORT,...``) keeps the config in etcd instead of under ``state_dir``, which then
    holds only this control's own files (mesh key, static instances, gossip members).
    ``ca_port`` (0: any free port; ``None``: no CA) runs the CA service on ``address``; ``ca_options`` are ``serve_ca``'s
    (``workload_ttl``, ``plugin``, ...; the trust domain is ``domain``). ``mixer_port`` (0: any
    free port; ``None``: none) runs the Mixer service on ``address``, with its Prometheus scrape
    endpoint on ``prometheus_port`` (0: any; ``None``: none)."""
    state_path = Path(state_dir).expanduser() if state_dir is not None else default_state_dir()
    async with open_config_store(store_url, state_path) as store:
        instances = InstanceStore(state_path)
        mesh = Mesh(instances)
        specs = [ChildSpec("config-api", cancel_on_stop(partial(
            serve_config_api, store, address, config_port, mesh=mesh)), description="config API")]
        if gossip_port is not None:
            key = await trio.to_thread.run_sync(load_or_create_mesh_key, state_path)

            async def serve_gossip(*, task_status=trio.TASK_STATUS_IGNORED) -> None:
                try:
                    await serve_discovery(f"control@{address}", host=address, port=gossip_port,
                                          seeds=list(join), key=key, config=gossip_config,
                                          task_status=_Then(task_status, mesh))
                except OSError as exc:
                    raise TrimeshError(f"cannot listen on {address}:{gossip_port} (gossip): "
                                       f"{exc.strerror or exc}") from None

            async def serve_publisher(*, task_status=trio.TASK_STATUS_IGNORED) -> None:
                await Publisher(store, instances, mesh.agent).serve(task_status=task_status)

            specs.append(ChildSpec("gossip", cancel_on_stop(serve_gossip),
                                   description="gossip member"))
            specs.append(ChildSpec("publisher", cancel_on_stop(serve_publisher),
                                   depends_on=("gossip",),
                                   description="publishes the store into gossip"))
        if ca_port is not None:
            specs.append(ChildSpec("ca", cancel_on_stop(partial(
                serve_ca, state_dir=state_path, address=address, port=ca_port, ready_line=False,
                **{"trust_domain": domain, **(ca_options or {})})),
                description="CA service (trimesh/ca/_service.py)"))
        # --- Mixer (docs/mixer.md): a child of the tree on --address; its config comes from this
        # control's own API (the same long poll a standalone `trimesh run mixer` makes) ---
        if mixer_port is not None:
            from ..mixer import serve_mixer

            specs.append(ChildSpec("mixer", cancel_on_stop(partial(
                serve_mixer, address, mixer_port,
                control=lambda: supervisor.started_value("config-api"),
                ready_level=logging.DEBUG, prometheus_port=prometheus_port)),
                description="Mixer (check, quota, report)"))
        # --- end of the Mixer block ---
        specs.extend(children)
        supervisor = Supervisor(specs, intensity=CONTROL_INTENSITY, name="control")
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(supervisor.serve)
                url = supervisor.started_value("config-api")
                log.info("control ready: config API on %s, %sstate in %s", url,
                         f"config in {store_url}, " if store_url else "", state_path)
                log.debug("control: domain %s, %d objects at revision %d", domain,
                          len(store.list()), store.revision)
                task_status.started(url)
        except BaseExceptionGroup as group:
            if len(group.exceptions) == 1 and isinstance(group.exceptions[0], SupervisorError):
                only = group.exceptions[0]
                cause = only.__cause__
                while isinstance(cause, BaseExceptionGroup) and len(cause.exceptions) == 1:
                    cause = cause.exceptions[0]  # a child's own nursery wraps its error
                if isinstance(cause, TrimeshError):  # e.g. "cannot listen on ..."
                    raise cause from None
                raise only from only.__cause__
            raise


class _Then:
    """The gossip child's task_status: records the agent on the API's Mesh, then reports."""

    def __init__(self, status, mesh: Mesh) -> None:
        self._status = status
        self._mesh = mesh

    def started(self, agent=None) -> None:
        self._mesh.agent = agent
        self._status.started(agent)
