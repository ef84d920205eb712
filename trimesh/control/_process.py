"""The control process (``trimesh run control``): the config store and its API in one nursery.

DESIGN.md §1 puts more services in the control (gossip member, CA, Mixer, service graph); they join
this nursery as their issues land. Ready means: the state is loaded and the API is accepting
connections, then ONE line is logged naming both.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import trio

from ..config import DEFAULT_DOMAIN
from ._api import DEFAULT_CONFIG_PORT, serve_config_api
from ._store import ConfigStore

log = logging.getLogger("trimesh.control")

DEFAULT_ADDRESS = "127.0.0.1"


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/trimesh/control``, i.e. ``~/.local/state/trimesh/control`` by default (the
    XDG Base Directory spec's place for state that survives restarts)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "trimesh" / "control"


async def serve_control(*, state_dir: str | os.PathLike[str] | None = None,
                        address: str = DEFAULT_ADDRESS, config_port: int = DEFAULT_CONFIG_PORT,
                        domain: str = DEFAULT_DOMAIN,
                        task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
    """Run the control until cancelled. ``task_status.started`` gets the config API's URL.
    Raises ``StateError`` if the state directory cannot be used."""
    state_path = Path(state_dir).expanduser() if state_dir is not None else default_state_dir()
    store = await trio.to_thread.run_sync(ConfigStore.open, state_path)
    with store:
        async with trio.open_nursery() as nursery:
            url = await nursery.start(serve_config_api, store, address, config_port)
            log.info("control ready: config API on %s, state in %s", url, state_path)
            log.debug("control: domain %s, %d objects at revision %d", domain,
                      len(store.list()), store.revision)
            task_status.started(url)
