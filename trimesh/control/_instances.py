"""Static instances (``trimesh register`` / ``deregister``): VMs and other workloads without a
sidecar, registered through the control and published into gossip (docs/control.md).

A *registration* is keyed by (namespace, service, address) and holds one instance per port
(``[NAME:]PORT...`` on the command line; the port's name is its protocol, ``http`` unless given, as
Istio 0.x's ``istioctl register`` names ports). Registering the same key again replaces it, like
``istioctl register`` updating an endpoint. Registrations have their own revision counter, so gossip
can order them last-writer-wins exactly like config objects.

Persistence: ``STATE_DIR/instances.json`` holds every registration and the counter, written with the
same atomic-replace recipe as the config store (:mod:`._disk`: temp file, fsync, rename, fsync the
directory), under the lock the config store already holds on the state directory. A write is
answered only after it is durable; it is applied in memory (and wakes the watchers) only then.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import msgspec
import trio

from ..config import (AUTH_ANNOTATION, DEFAULT_NAMESPACE, PROTOCOLS, ServiceInstance,
                      annotation_problem, make_instance)
from ..errors import ConfigError, NotFoundError
from ._store import StoreIOError

INSTANCES_FILE = "instances.json"

InstanceKey = tuple[str, str, str]  # (namespace, service, address)


class Registration(msgspec.Struct, frozen=True, kw_only=True):
    """One ``trimesh register``: the instances of a service at one address, and its revision."""
    namespace: str
    service: str
    address: str
    revision: int
    instances: tuple[ServiceInstance, ...]

    @property
    def key(self) -> InstanceKey:
        return (self.namespace, self.service, self.address)

    @property
    def ref(self) -> str:
        return f"{self.service}@{self.address} in namespace {self.namespace}"

    def to_dict(self) -> dict[str, Any]:
        return {"service": self.service, "namespace": self.namespace, "address": self.address,
                "revision": self.revision,
                "ports": [{"name": i.protocol, "port": i.port} for i in self.instances],
                "labels": dict(self.instances[0].labels) if self.instances else {},
                "serviceAccount": self.instances[0].service_account if self.instances
                else "default",
                "annotations": dict(self.instances[0].annotations) if self.instances else {}}


class _File(msgspec.Struct):
    revision: int = 0
    registrations: list[Registration] = []


def parse_registration(body: Any) -> tuple[str, str, str, list[ServiceInstance]]:
    """Validate a ``POST /v1/instances`` body; ConfigError names the field.

    ``{"service": S, "address": IP, "ports": [{"name": "http", "port": 9080}, ...],
    "namespace": NS, "labels": {...}, "serviceAccount": SA, "annotations": {...}}``."""
    where = "request body"
    if not isinstance(body, dict):
        raise ConfigError("expected a JSON object", source=where, path="$")
    unknown = set(body) - {"service", "namespace", "address", "ports", "labels", "serviceAccount",
                           "annotations"}
    if unknown:
        field = sorted(unknown)[0]
        raise ConfigError(f"unknown field {field!r}", source=where, path=f"$.{field}")
    for name in ("service", "address"):
        if not isinstance(body.get(name), str) or not body[name]:
            raise ConfigError(f"{name} must be a non-empty string", source=where, path=f"$.{name}")
    namespace = body.get("namespace") or DEFAULT_NAMESPACE
    if not isinstance(namespace, str):
        raise ConfigError("namespace must be a string", source=where, path="$.namespace")
    labels = body.get("labels") or {}
    if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                               for k, v in labels.items()):
        raise ConfigError("labels must map strings to strings", source=where, path="$.labels")
    account = body.get("serviceAccount") or "default"
    if not isinstance(account, str):
        raise ConfigError("serviceAccount must be a string", source=where, path="$.serviceAccount")
    annotations = body.get("annotations") or {}
    bad = annotation_problem(annotations)
    if bad is not None:
        key, message = bad
        raise ConfigError(message, source=where,
                          path="$.annotations" + (f"[{key!r}]" if key else ""))
    annotations = {k: v.upper() if k.startswith(AUTH_ANNOTATION) else v
                   for k, v in annotations.items()}
    ports = body.get("ports")
    if not isinstance(ports, list) or not ports:
        raise ConfigError("ports must be a non-empty list", source=where, path="$.ports")
    instances = []
    seen = set()
    for i, entry in enumerate(ports):
        path = f"$.ports[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError("a port is {name, port}", source=where, path=path)
        port = entry.get("port")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise ConfigError(f"port must be 1..65535, got {port!r}", source=where,
                              path=f"{path}.port")
        protocol = str(entry.get("name") or "http").lower()
        if protocol not in PROTOCOLS:
            raise ConfigError(f"port name must be one of {', '.join(PROTOCOLS)}, got "
                              f"{protocol!r}", source=where, path=f"{path}.name")
        if port in seen:
            raise ConfigError(f"port {port} given twice", source=where, path=f"{path}.port")
        seen.add(port)
        instances.append(make_instance(body["service"], body["address"], port,
                                       labels=dict(labels), namespace=namespace,
                                       protocol=protocol, service_account=account,
                                       annotations=dict(annotations)))
    return namespace, body["service"], body["address"], instances


class InstanceStore:
    """Registrations persisted in ``STATE_DIR/instances.json`` (or in memory: ``root=None``)."""

    def __init__(self, root: str | os.PathLike[str] | None = None, *, offload: bool = True) -> None:
        self.root = Path(root) if root is not None else None
        self._offload = offload
        self._lock = trio.Lock()
        self._changed = trio.Event()
        self.revision = 0
        self._regs: dict[InstanceKey, Registration] = {}
        self.writes = 0
        if self.root is not None:
            path = self.root / INSTANCES_FILE
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                data = None
            if data:
                try:
                    loaded = msgspec.json.decode(data, type=_File)
                except msgspec.DecodeError as exc:
                    raise ConfigError(f"cannot load static instances: {exc}",
                                      source=str(path)) from None
                self.revision = loaded.revision
                self._regs = {r.key: r for r in loaded.registrations}

    def __repr__(self) -> str:
        return (f"<InstanceStore {self.root or 'memory'} revision={self.revision} "
                f"registrations={len(self._regs)}>")

    def list(self) -> list[Registration]:
        return sorted(self._regs.values(), key=lambda r: r.key)

    def get(self, key: InstanceKey) -> Registration | None:
        return self._regs.get(key)

    async def wait_revision(self, after: int, *, timeout: float = math.inf) -> int:
        with trio.move_on_after(timeout):
            while self.revision <= after:
                await self._changed.wait()
        return self.revision

    async def register(self, namespace: str, service: str, address: str,
                       instances: list[ServiceInstance]) -> tuple[Registration, bool]:
        """Store (or replace) a registration; returns it and whether it is new."""
        async with self._lock:
            reg = Registration(namespace=namespace, service=service, address=address,
                               revision=self.revision + 1, instances=tuple(instances))
            regs = dict(self._regs)
            created = reg.key not in regs
            regs[reg.key] = reg
            await self._commit(reg.revision, regs)
            return reg, created

    async def deregister(self, key: InstanceKey) -> int:
        """Remove a registration; NotFoundError if there is none. Returns the revision."""
        async with self._lock:
            if key not in self._regs:
                namespace, service, address = key
                raise NotFoundError(f"no instance of {service} at {address} is registered in "
                                    f"namespace {namespace}")
            regs = dict(self._regs)
            del regs[key]
            revision = self.revision + 1
            await self._commit(revision, regs)
            return revision

    async def _commit(self, revision: int, regs: dict[InstanceKey, Registration]) -> None:
        if self.root is not None:
            data = msgspec.json.encode(_File(revision, sorted(regs.values(), key=lambda r: r.key)))
            try:
                if self._offload:
                    await trio.to_thread.run_sync(_write_atomic, self.root, data)
                else:
                    _write_atomic(self.root, data)
            except OSError as exc:
                raise StoreIOError(f"cannot persist the static instances: {exc}") from exc
        self.revision = revision
        self._regs = regs
        self.writes += 1
        self._changed.set()
        self._changed = trio.Event()

    def statistics(self) -> dict[str, Any]:
        return {"revision": self.revision, "registrations": len(self._regs),
                "instances": sum(len(r.instances) for r in self._regs.values()),
                "writes": self.writes}


def _write_atomic(root: Path, data: bytes) -> None:
    root.mkdir(parents=True, exist_ok=True)
    final = root / INSTANCES_FILE
    tmp = root / f".tmp-{INSTANCES_FILE}"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    dfd = os.open(root, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
