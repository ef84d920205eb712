"""The control as a gossip member: the mesh key, publishing the stores, the members view.

* **Mesh key.** ``STATE_DIR/gossip.key`` holds the AES-256 key every gossip packet is sealed with
  (base64, one line, mode 0600). The control creates it on first start (``O_EXCL``, so two starts
  cannot race to different keys) and uses it from then on; members on the same host read it from
  the default state directory, members elsewhere get a copy (``--gossip-key-file``).
* **Publishing.** The control is the writer of record (DESIGN.md §5). :class:`Publisher` runs
  :func:`~._publish.plan_publication` at start (republishing everything) and again after every
  config-store write, every (de)registration and every gossip config event, and applies the plan:
  each put is gossiped *and* sent straight to every live member (the first-hop accelerator,
  ``GossipAgent.push_direct``), so a change reaches every sidecar in one network hop while gossip
  and push/pull repair whatever datagram was lost. Wake-ups coalesce: a burst of writes is
  published by one pass.
* **Members.** :func:`member_rows` is what ``GET /v1/members`` and ``trimesh members`` show: every
  member the control knows (alive, suspect, dead or left until reaped) with its instances, then
  the static registrations (state ``static``).
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
from pathlib import Path
from typing import Any

import trio

from ..discovery import ConfigEvent, GossipAgent
from ..errors import TrimeshError
from ._instances import InstanceStore
from ._publish import desired_entries, plan_publication
from ._store import ConfigStore

log = logging.getLogger("trimesh.control.gossip")

MESH_KEY_FILE = "gossip.key"
MESH_KEY_BYTES = 32  # AES-256-GCM


class MeshKeyError(TrimeshError):
    """The mesh key file is missing, unreadable or malformed."""


def mesh_key_path(state_dir: str | os.PathLike[str]) -> Path:
    return Path(state_dir) / MESH_KEY_FILE


def read_mesh_key(path: str | os.PathLike[str]) -> bytes:
    """The key in ``path`` (base64 text); MeshKeyError says what is wrong and where."""
    try:
        text = Path(path).read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise MeshKeyError(f"{path}: no mesh key file (the control creates it in its state "
                           f"directory on first start; pass --gossip-key-file)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MeshKeyError(f"{path}: cannot read the mesh key: {exc}") from None
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise MeshKeyError(f"{path}: the mesh key is not base64") from None
    if len(key) not in (16, 24, 32):
        raise MeshKeyError(f"{path}: the mesh key must be 16, 24 or 32 bytes, got {len(key)}")
    return key


def load_or_create_mesh_key(state_dir: str | os.PathLike[str]) -> bytes:
    """Read ``STATE_DIR/gossip.key``, creating it (0600, random AES-256 key) if missing."""
    path = mesh_key_path(state_dir)
    Path(state_dir).mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_mesh_key(path)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(base64.b64encode(os.urandom(MESH_KEY_BYTES)).decode("ascii") + "\n")
        f.flush()
        os.fsync(f.fileno())
    log.info("control: created the mesh key %s (0600)", path)
    return read_mesh_key(path)


def member_rows(agent: GossipAgent | None, instances: InstanceStore) -> list[dict[str, Any]]:
    """Every member (name, address, state, service, namespace, labels, instances), then the
    static registrations."""
    rows: list[dict[str, Any]] = []
    if agent is not None and agent.node is not None:
        for m in sorted(agent.members(), key=lambda m: m.name):
            first = m.meta[0] if m.meta else None
            rows.append({
                "name": m.name, "address": m.addr, "state": m.state_name,
                "incarnation": m.incarnation,
                "service": first.service if first else "",
                "namespace": first.namespace if first else "",
                "labels": dict(first.labels) if first else {},
                "instances": [_instance_row(i) for i in m.meta],
            })
    for reg in instances.list():
        first = reg.instances[0]
        rows.append({
            "name": f"{reg.service}@{reg.address}", "address": reg.address, "state": "static",
            "incarnation": reg.revision, "service": reg.service, "namespace": reg.namespace,
            "labels": dict(first.labels), "instances": [_instance_row(i) for i in reg.instances],
        })
    return rows


def _instance_row(i) -> dict[str, Any]:
    return {"address": i.address, "port": i.port, "protocol": i.protocol,
            "healthy": i.healthy, "serviceAccount": i.service_account}


class Publisher:
    """Keeps gossip in line with the config store and the instance store (see the module doc)."""

    def __init__(self, store: ConfigStore, instances: InstanceStore, agent: GossipAgent, *,
                 direct: bool = True) -> None:
        self.store = store
        self.instances = instances
        self.agent = agent
        self.direct = direct
        self._dirty = trio.Event()
        self.passes = 0
        self.puts = 0
        self.tombstones = 0
        self.foreign: list[tuple[str, str, str]] = []

    def __repr__(self) -> str:
        return f"<Publisher passes={self.passes} puts={self.puts} tombstones={self.tombstones}>"

    def statistics(self) -> dict[str, Any]:
        return {"passes": self.passes, "puts": self.puts, "tombstones": self.tombstones,
                "foreign": len(self.foreign)}

    def wake(self) -> None:
        self._dirty.set()

    async def publish_once(self) -> int:
        """Apply one plan; returns the number of puts."""
        node = self.agent.node
        plan = plan_publication(
            desired_entries(self.store.list(), self.instances.list()),
            node.config_entries(include_deleted=True), origin=self.agent.name,
            config_floor=self.store.revision, instance_floor=self.instances.revision)
        self.passes += 1
        if plan.foreign != self.foreign:
            for key in plan.foreign:
                log.warning("control: gossip holds %s at a revision this store never wrote "
                            "(was the state directory replaced?); left alone", "/".join(key))
            self.foreign = plan.foreign
        for put in plan.puts:
            kind, namespace, name = put.key
            await self.agent.put_config(kind, namespace, name, put.revision, put.obj)
            if self.direct:
                await self.agent.push_direct(kind, namespace, name)
            self.puts += 1
            self.tombstones += put.obj is None
        return len(plan.puts)

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_store)
            nursery.start_soon(self._watch_instances)
            nursery.start_soon(self._watch_gossip, self.agent.subscribe())
            await self.publish_once()
            task_status.started(self)
            while True:
                await self._dirty.wait()
                self._dirty = trio.Event()
                await self.publish_once()

    async def _watch_store(self) -> None:
        revision = self.store.revision
        while True:
            revision = await self.store.wait_revision(revision)
            self.wake()

    async def _watch_instances(self) -> None:
        revision = self.instances.revision
        while True:
            revision = await self.instances.wait_revision(revision)
            self.wake()

    async def _watch_gossip(self, events: trio.MemoryReceiveChannel) -> None:
        async for event in events:
            if isinstance(event, ConfigEvent):
                self.wake()
