"""The config store: the pure decisions of :mod:`._state` plus persistence and change notification.

A write takes the store's ``trio.Lock`` (writes are serialised, so revisions are assigned in order),
asks :class:`~._state.StoreState` to plan it (a refused write raises here and changes nothing),
persists the planned change in a worker thread (:class:`~._disk.StateDir`: temp file, fsync, rename,
fsync the directory) and only then applies it in memory and wakes every watcher. Readers never take
the lock: they read the in-memory state, which shows only persisted changes, so a slow fsync delays
the next write but no read. The worker thread is not abandoned on cancellation: once a commit has
started, the change is applied when it completes even if the client has gone.

Watchers (the API's long-poll ``GET /v1/objects?after=N``) wait with :meth:`ConfigStore.wait_revision`;
each change sets the current ``trio.Event`` and installs a new one, so every waiter wakes on every
change and re-checks its condition.
"""

from __future__ import annotations

import math
import os
from typing import Any

import trio

from ..config import ConfigObject
from ..errors import TrimeshError
from ._disk import StateDir
from ._state import Change, Key, StoreState


class StoreIOError(TrimeshError):
    """A write could not be persisted (disk full, permissions...): it was not applied, but it may
    or may not be on disk (its revision is never reused)."""


class ConfigStore:
    """Config objects keyed by (kind, namespace, name), with one revision counter.

    Open a persistent store with :meth:`open` (``with ConfigStore.open(dir) as store:``) or make a
    throw-away one with :meth:`in_memory` (tests, embedded controls)."""

    def __init__(self, state: StoreState | None = None, disk: StateDir | None = None, *,
                 offload: bool = True) -> None:
        self._state = state if state is not None else StoreState()
        self._disk = disk
        # offload=False runs commits on the event loop thread (tests under a virtual clock).
        self._offload = offload
        self._write_lock = trio.Lock()
        self._changed = trio.Event()
        self._io_errors = 0

    @classmethod
    def open(cls, state_dir: str | os.PathLike[str], *, offload: bool = True) -> ConfigStore:
        """Load the store persisted under ``state_dir`` (created if missing). Raises
        ``StateError`` if another control holds it or a stored file is unreadable."""
        disk = StateDir(state_dir)
        objects, revision = disk.open()
        return cls(StoreState(objects, revision), disk, offload=offload)

    @classmethod
    def in_memory(cls, objects: list[ConfigObject] | None = None) -> ConfigStore:
        return cls(StoreState(objects or ()))

    def close(self) -> None:
        if self._disk is not None:
            self._disk.close()

    def __enter__(self) -> ConfigStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = str(self._disk.directory) if self._disk else "memory"
        return f"<ConfigStore {where} revision={self.revision} objects={len(self._state)}>"

    # -- reads (never blocked by a write in progress) ------------------------------------------

    @property
    def revision(self) -> int:
        return self._state.revision

    @property
    def state_dir(self) -> str | None:
        return str(self._disk.root) if self._disk else None

    def get(self, key: Key) -> ConfigObject | None:
        return self._state.get(key)

    def list(self, *, kind: str | None = None, namespace: str | None = None) -> list[ConfigObject]:
        return self._state.objects(kind=kind, namespace=namespace)

    async def wait_revision(self, after: int, *, timeout: float = math.inf) -> int:
        """Wait until the store's revision is greater than ``after`` or ``timeout`` seconds pass;
        return the revision then."""
        with trio.move_on_after(timeout):
            while self._state.revision <= after:
                await self._changed.wait()
        return self._state.revision

    # -- writes --------------------------------------------------------------------------------

    async def create(self, obj: ConfigObject) -> ConfigObject:
        """Store a new object; ConflictError if it exists. Returns it with its revision."""
        change = await self._write(lambda: self._state.plan_create(obj))
        assert change.object is not None
        return change.object

    async def replace(self, obj: ConfigObject) -> ConfigObject:
        """Replace an existing object; NotFoundError if it does not exist."""
        change = await self._write(lambda: self._state.plan_replace(obj))
        assert change.object is not None
        return change.object

    async def delete(self, key: Key) -> int:
        """Delete an object; NotFoundError if it does not exist. Returns the delete's revision."""
        change = await self._write(lambda: self._state.plan_delete(key))
        return change.revision

    async def _write(self, plan: Any) -> Change:
        async with self._write_lock:
            change: Change = plan()  # raises (and changes nothing) if refused
            if self._disk is not None:
                try:
                    if self._offload:
                        await trio.to_thread.run_sync(self._disk.commit, change)
                    else:
                        self._disk.commit(change)
                except OSError as exc:
                    self._state.skip(change.revision)
                    self._io_errors += 1
                    self._notify()
                    raise StoreIOError(f"cannot persist {change.ref}: {exc}") from exc
            self._state.apply(change)
            self._notify()
            return change

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def statistics(self) -> dict[str, Any]:
        stats: dict[str, Any] = dict(self._state.statistics())
        stats["io_errors"] = self._io_errors
        stats["write_waiters"] = self._write_lock.statistics().tasks_waiting
        if self._disk is not None:
            stats["disk"] = self._disk.statistics()
        return stats
