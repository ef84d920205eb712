"""The sidecar's discovery watcher: a gossip member that announces this sidecar's instance and
feeds the snapshot builder with the mesh's registry and config (docs/gossip.md §7).

Theory of operation:

* **Membership.** :class:`GossipSource` runs a :class:`~trimesh.discovery.GossipAgent` on
  ``--address:--gossip-port``, joins the ``--join`` seeds and announces the sidecar's own instance
  (service, namespace, address, port, protocol, labels, service account, health) as its member
  metadata. When the instance changes (the inbound listener rebound, a health change) a new
  incarnation carries it (``update_meta``): it spreads like any membership change.
* **One consistent view.** Each refresh takes ONE synchronous read of the agent —
  ``(registry incl. static instances, config objects, tombstones)`` — and swaps it in as one
  tuple; the properties the snapshot builder reads (:attr:`GossipSource.objects`,
  :attr:`GossipSource.instances`) are computed from that tuple only. A rebuild therefore never
  mixes two gossip states: no request is routed with half a change.
* **Prompt, coalesced rebuilds.** Every registry event (join, update — health included — fail,
  leave) and config event asks for a refresh. The first event after a quiet spell refreshes at
  once; events within :data:`COALESCE_INTERVAL` (50 ms) of the last refresh wait for its end and
  are drained into one refresh, so a burst (a join's push/pull, a republish) gives one rebuild.
* **Precedence.** With gossip on, this source takes the control's long-poll listing over and
  merges both views of the control's store per key, newer revision first, tombstones included
  (:func:`~._sources.merge_control_and_gossip`). ``--config`` / ``--registry`` files override
  both for the same key / endpoint (they stay their own source). The sidecar's own instance is
  always its own (the builder adds it if absent).
* **Leaving.** :meth:`GossipSource.leave` is registered as an ``on_draining`` hook: when the
  drain starts, before the listeners close, the member gossips its own departure and waits
  (bounded) until it went out, so other members stop routing here while it still answers,
  instead of after the failure detector's bound.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import trio

from ..config import ConfigObject, ServiceInstance, make_instance
from ..control import default_mesh_key_file, read_mesh_key
from ..discovery import (
    DEFAULT_PORT,
    ConfigEvent,
    GossipConfig,
    MemberEvent,
    gossip_profile,
    parse_addr,
    serve_discovery,
)
from ..errors import TrimeshError
from ..nursery import ChildSpec, wait_stop_requested
from ._sources import merge_control_and_gossip, merge_instances

log = logging.getLogger("trimesh.sidecar.gossip")

COALESCE_INTERVAL = 0.05  # seconds: at most one refresh (and rebuild) per 50 ms during a burst
JOIN_WAIT = 3.0  # seconds the start waits for the first push/pull with a seed
OWN_INSTANCE_POLL = 0.25  # seconds between checks of the sidecar's own instance (rebinds, health)
REGISTRY_EVENTS = frozenset({"join", "update", "fail", "leave"})  # suspect/recover: still live

Key = tuple[str, str, str]


@dataclass(frozen=True)
class GossipOptions:
    """The sidecar's gossip flags (``--gossip-port``, ``--join``, ``--gossip-key-file``,
    ``--gossip-profile``)."""
    port: int = DEFAULT_PORT
    join: tuple[str, ...] = ()
    key_file: str | None = None  # default: gossip.key in the control's default state dir
    profile: str = "lan"

    def __post_init__(self) -> None:
        for seed in self.join:
            parse_addr(seed)  # ValueError names the bad seed
        gossip_profile(self.profile)


class GossipSource:
    """A gossip member feeding the snapshot builder (see the module doc). ``own()`` returns the
    sidecar's instance (or ``None`` before the inbound listener is up); ``files`` and ``control``
    are the sidecar's other sources (for precedence)."""

    def __init__(self, name: str, *, host: str, port: int, seeds: tuple[str, ...] | list[str],
                 key: bytes | None, on_change: Callable[[], None],
                 own: Callable[[], ServiceInstance | None] = lambda: None,
                 config: GossipConfig | None = None, files: Any = None, control: Any = None,
                 coalesce: float = COALESCE_INTERVAL, transport: Any = None) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.seeds = list(seeds)
        self.key = key
        self.on_change = on_change
        self.own = own
        self.config = config or GossipConfig()
        self.files = files
        self.control = control
        self.coalesce = coalesce
        self.transport = transport
        self.agent: Any = None
        # (instances, config objects, tombstones): replaced as ONE tuple by refresh()
        self.view: tuple[list[ServiceInstance], list[ConfigObject], dict[Key, int]] = ([], [], {})
        self.refreshes = 0
        self.events = 0
        self.meta_updates = 0
        self.left = False
        self._last_refresh = -float("inf")

    def __repr__(self) -> str:
        return f"<GossipSource {self.name} refreshes={self.refreshes} agent={self.agent!r}>"

    # -- what the snapshot builder reads -------------------------------------------------------
    @property
    def instances(self) -> list[ServiceInstance]:
        static = list(self.files.instances) if self.files is not None else []
        return merge_instances(static, self.view[0])

    @property
    def objects(self) -> list[ConfigObject]:
        _, gossip_objects, tombstones = self.view
        control_objects: list[ConfigObject] = []
        control_revision = -1
        if self.control is not None:
            control_objects = list(self.control.objects)
            control_revision = self.control.revision
        exclude = {o.key for o in self.files.objects} if self.files is not None else set()
        return merge_control_and_gossip(control_objects, control_revision, gossip_objects,
                                        tombstones, exclude=exclude)

    def refresh(self) -> None:
        """Take one read of the agent's state (registry, static instances, config, tombstones)."""
        node = self.agent.node
        instances, objects = node.view()
        tombstones = {e.key: e.revision
                      for e in node.config_entries(include_deleted=True) if e.obj is None}
        self.view = (instances, objects, tombstones)
        self.refreshes += 1
        self._last_refresh = trio.current_time()

    # -- running -------------------------------------------------------------------------------
    def _own_meta(self) -> tuple[ServiceInstance, ...]:
        own = self.own()
        return (own,) if own is not None else ()

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Run the member until the supervisor asks us to stop; started once joined (or after
        :data:`JOIN_WAIT` if no seed answered: gossip repairs that later)."""
        async with trio.open_nursery() as nursery:
            try:
                self.agent = await nursery.start(partial(
                    serve_discovery, self.name, host=self.host, port=self.port,
                    seeds=self.seeds, key=self.key, meta=self._own_meta(), config=self.config,
                    transport=self.transport))
            except OSError as exc:
                raise TrimeshError(f"cannot listen on {self.host}:{self.port} (gossip): "
                                   f"{exc.strerror or exc}") from None
            events = self.agent.subscribe()
            if self.seeds:
                with trio.move_on_after(JOIN_WAIT):
                    while len(self.agent.node.live_members()) < 2:
                        await events.receive()
            self.left = False
            self.refresh()
            self.on_change()
            nursery.start_soon(self._watch, events)
            nursery.start_soon(self._watch_own)
            task_status.started(self.agent)
            await wait_stop_requested()
            nursery.cancel_scope.cancel()

    async def _watch(self, events: trio.MemoryReceiveChannel) -> None:
        async for event in events:
            if not _relevant(event):
                continue
            self.events += 1
            wait = self._last_refresh + self.coalesce - trio.current_time()
            if wait > 0:
                await trio.sleep(wait)
            while True:  # drain the burst: one refresh covers every event so far
                try:
                    events.receive_nowait()
                    self.events += 1
                except trio.WouldBlock:
                    break
            self.refresh()
            self.on_change()

    async def _watch_own(self) -> None:
        while True:
            meta = self._own_meta()
            if meta and meta != self.agent.node.meta and not self.left:
                await self.agent.update_meta(meta)
                self.meta_updates += 1
                self.refresh()
                self.on_change()
            await trio.sleep(OWN_INSTANCE_POLL)

    async def leave(self) -> None:
        """Graceful leave (an ``on_draining`` hook): gossip our departure, bounded wait."""
        if self.agent is None or self.agent.node is None or self.left:
            return
        self.left = True
        sent = await self.agent.leave()
        log.info("gossip member %s left the mesh%s", self.name, "" if sent else
                 " (the leave may not have gone out; the failure detector will remove us)")

    def statistics(self) -> dict[str, Any]:
        return {"name": self.name, "refreshes": self.refreshes, "events": self.events,
                "meta_updates": self.meta_updates, "left": self.left,
                "instances": len(self.view[0]), "objects": len(self.view[1]),
                "tombstones": len(self.view[2]),
                "agent": self.agent.statistics() if self.agent is not None else None}


def _relevant(event: Any) -> bool:
    if isinstance(event, ConfigEvent):
        return True
    return isinstance(event, MemberEvent) and event.kind in REGISTRY_EVENTS


def member_name(sidecar: Any, port: int) -> str:
    """``reviews-v1@127.0.0.3:7946``: stable across restarts, so a restarted sidecar refutes
    its old death instead of appearing twice."""
    cfg = sidecar.config
    return f"{cfg.name}@{cfg.address}:{port}" if port else f"{cfg.name}@{cfg.address}"


def install_gossip(sidecar: Any, options: GossipOptions) -> GossipSource:
    """Wire gossip into a sidecar before its tree starts (``serve_sidecar(setup=...)``): the
    source (taking the control's listing over), the ``gossip`` child at the source stage, and the
    graceful leave as an ``on_draining`` hook. Raises ``MeshKeyError`` for a bad key file."""
    key = read_mesh_key(options.key_file or default_mesh_key_file())
    cfg = sidecar.config
    # The gossip child starts before the inbound listener (sources come first in the tree), so
    # the first announcement uses the instance the sidecar will have — the same fields as
    # Sidecar._announce_own — when its port is fixed; the real one replaces it once known.
    predicted = None
    if cfg.port:
        predicted = make_instance(cfg.service, cfg.address, cfg.port, labels=dict(cfg.labels),
                                  namespace=cfg.namespace, protocol=cfg.protocol,
                                  service_account=cfg.service_account, domain=cfg.domain)
    source = GossipSource(
        member_name(sidecar, options.port), host=cfg.address, port=options.port,
        seeds=options.join, key=key, on_change=sidecar.request_rebuild,
        own=lambda: sidecar.own_instance or predicted, config=gossip_profile(options.profile),
        files=sidecar.files, control=sidecar.control)
    if sidecar.control is not None and sidecar.control in sidecar.sources:
        sidecar.sources.remove(sidecar.control)  # merged by the gossip source (precedence)
    sidecar.add_source(source)
    sidecar.add_child(ChildSpec("gossip", source.serve,
                                description=f"gossip member {source.name}"), stage="source")
    sidecar.on_draining.append(source.leave)
    sidecar.gossip = source
    return source
