"""The control process (``trimesh run control``): the config store and its API in one nursery.

DESIGN.md §1 puts more services in the control (gossip member, CA, Mixer, service graph); they join
this nursery as their issues land. Ready means: the state is loaded and the API is accepting
connections, then ONE line is logged naming both.

Gossip (``gossip_port`` not ``None``): the control reads or creates the mesh key in its state
directory, joins the seeds as member ``control@ADDRESS``, and runs the :class:`~._gossip.Publisher`
that keeps gossip in line with the config store and the static instances (docs/gossip.md §7). The
gossip member logs its own ready line.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from functools import partial

import trio

from ..config import DEFAULT_DOMAIN
from ..errors import TrimeshError
from ..discovery import GossipConfig, serve_discovery
from ._api import DEFAULT_CONFIG_PORT, Mesh, serve_config_api
from ._gossip import Publisher, load_or_create_mesh_key, mesh_key_path
from ._instances import InstanceStore
from ._store import ConfigStore

log = logging.getLogger("trimesh.control")

DEFAULT_ADDRESS = "127.0.0.1"


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
                        task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
    """Run the control until cancelled. ``task_status.started`` gets the config API's URL.
    Raises ``StateError`` if the state directory cannot be used. ``gossip_port`` (0: any free
    port; ``None``: no gossip) runs the gossip member, joining the ``join`` seeds."""
    state_path = Path(state_dir).expanduser() if state_dir is not None else default_state_dir()
    store = await trio.to_thread.run_sync(ConfigStore.open, state_path)
    with store:
        instances = InstanceStore(state_path)
        mesh = Mesh(instances)
        async with trio.open_nursery() as nursery:
            url = await nursery.start(partial(serve_config_api, store, address, config_port,
                                              mesh=mesh))
            if gossip_port is not None:
                key = await trio.to_thread.run_sync(load_or_create_mesh_key, state_path)
                try:
                    mesh.agent = await nursery.start(partial(
                        serve_discovery, f"control@{address}", host=address, port=gossip_port,
                        seeds=list(join), key=key, config=gossip_config))
                except OSError as exc:
                    raise TrimeshError(f"cannot listen on {address}:{gossip_port} (gossip): "
                                       f"{exc.strerror or exc}") from None
                await nursery.start(Publisher(store, instances, mesh.agent).serve)
            log.info("control ready: config API on %s, state in %s", url, state_path)
            log.debug("control: domain %s, %d objects at revision %d", domain,
                      len(store.list()), store.revision)
            task_status.started(url)
