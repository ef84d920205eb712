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
* **Rejoining after a restart** (Serf's snapshot file). A control with a persistent store
  remembers the addresses of the live members in ``STATE_DIR/members.json`` (rewritten at most
  every :data:`MEMBER_SNAPSHOT_INTERVAL` seconds, only when the set changed) and, when it starts
  again, pushes/pulls with up to :data:`REJOIN_MAX` of them. Without it, a restarted control that
  is itself the mesh's seed (no ``--join``) would wait for the members' reconnect attempts (Serf's
  ``ReconnectInterval``, 30 s, with probability failed/live each) to find it again.
* **Members.** :func:`member_rows` is what ``GET /v1/members`` and ``trimesh members`` show: every
  member the control knows (alive, suspect, dead or left until reaped) with its instances, then
  the static registrations (state ``static``).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import random
from pathlib import Path
from typing import Any

import trio

from ..discovery import ConfigEvent, GossipAgent, parse_addr
from ..errors import TrimeshError
from ._instances import InstanceStore
from ._publish import desired_entries, plan_publication
from ._store import ConfigStore

log = logging.getLogger("trimesh.control.gossip")

MESH_KEY_FILE = "gossip.key"
MESH_KEY_BYTES = 32  # AES-256-GCM
MEMBERS_FILE = "members.json"  # live members' addresses, for rejoining after a restart
MEMBER_SNAPSHOT_INTERVAL = 5.0  # seconds between checks of the live member set
REJOIN_MAX = 8  # remembered members contacted at start (each is one TCP push/pull)


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


def load_known_members(path: str | os.PathLike[str]) -> list[str]:
    """Addresses saved by a previous run (an unreadable or malformed file counts as none)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(data, list):
        return []
    out = []
    for addr in data:
        try:
            parse_addr(addr)
        except (ValueError, TypeError, AttributeError):
            continue
        out.append(addr)
    return out


def save_known_members(path: str | os.PathLike[str], addrs: list[str]) -> None:
    """Atomically replace the file (temp file, fsync, rename)."""
    path = Path(path)
    tmp = path.with_name(f".tmp-{path.name}")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(addrs, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Publisher:
    """Keeps gossip in line with the config store and the instance store (see the module doc)."""

    def __init__(self, store: ConfigStore, instances: InstanceStore, agent: GossipAgent, *,
                 direct: bool = True, members_file: str | os.PathLike[str] | None = None,
                 rng: random.Random | None = None) -> None:
        self.store = store
        self.instances = instances
        self.agent = agent
        self.direct = direct
        if members_file is None and store.state_dir is not None:
            members_file = Path(store.state_dir) / MEMBERS_FILE
        self.members_file = members_file
        self.rng = rng or random.Random()
        self.rejoined: list[str] = []
        self.snapshots = 0
        self._dirty = trio.Event()
        self.passes = 0
        self.puts = 0
        self.tombstones = 0
        self.foreign: list[tuple[str, str, str]] = []

    def __repr__(self) -> str:
        return f"<Publisher passes={self.passes} puts={self.puts} tombstones={self.tombstones}>"

    def statistics(self) -> dict[str, Any]:
        return {"passes": self.passes, "puts": self.puts, "tombstones": self.tombstones,
                "foreign": len(self.foreign), "rejoined": len(self.rejoined),
                "member_snapshots": self.snapshots}

    def wake(self) -> None:
        self._dirty.set()

    async def publish_once(self) -> int:
        """Apply one plan; returns the number of puts."""
        node = self.agent.node
        plan = plan_publication(
            desired_entries(self.store.list(), self.instances.list()),
            node.config_entries(include_deleted=True), origin=self.agent.name,
            config_floor=self.store.revision, instance_floor=self.instances.revision,
            shared=getattr(self.store, "shared", False))
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
            if self.members_file is not None:
                known = await trio.to_thread.run_sync(load_known_members, self.members_file)
                known = [a for a in known if a != self.agent.addr]
                self.rejoined = self.rng.sample(known, min(REJOIN_MAX, len(known)))
                if self.rejoined:
                    log.info("control: rejoining %d remembered gossip members", len(self.rejoined))
                    await self.agent.join(self.rejoined)
                nursery.start_soon(self._snapshot_members)
            await self.publish_once()
            task_status.started(self)
            while True:
                await self._dirty.wait()
                self._dirty = trio.Event()
                await self.publish_once()

    async def _snapshot_members(self) -> None:
        saved: list[str] | None = None
        while True:
            await trio.sleep(MEMBER_SNAPSHOT_INTERVAL)
            addrs = sorted(m.addr for m in self.agent.members()
                           if m.live and m.name != self.agent.name)
            if addrs != saved and (addrs or saved is not None):
                try:
                    await trio.to_thread.run_sync(save_known_members, self.members_file, addrs)
                except OSError as exc:
                    log.warning("control: cannot save %s: %s", self.members_file, exc)
                    continue
                saved = addrs
                self.snapshots += 1

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
