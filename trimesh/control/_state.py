"""The config store's decisions, as plain code: which writes are allowed and which revision they get.

PURE: no I/O, no clock, no trio. The Trio shell (:mod:`._store`) asks this module for a
:class:`Change`, persists it, and only then applies it here, so a write that is refused (conflict,
missing object) or that fails to persist changes nothing a reader can see.

Revisions. One monotonic counter for the whole store, like etcd's revision (the number Kubernetes
exposes as ``metadata.resourceVersion``): every acknowledged write takes ``revision + 1``, deletes
included, so "the store's revision" is the highest revision ever assigned and a watcher asking for
"anything after N" never misses a delete. The counter only moves forward; after a restart it continues
from the persisted value (see :mod:`._disk`).

The rules of the three writes (kubectl/istioctl semantics: ``create`` fails if the object exists,
``replace`` and ``delete`` if it does not) are one table, :data:`WRITE_RULES`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from ..config import ConfigObject, lookup_kind
from ..errors import ConflictError, NotFoundError

Key = tuple[str, str, str]  # (kind, namespace, name), kind canonical ("RouteRule")

CREATE = "create"
REPLACE = "replace"
DELETE = "delete"

#: (operation, does the object exist?) -> what happens. "store" writes the new object, "remove"
#: deletes it; an exception class means the write is refused with that error.
WRITE_RULES: dict[tuple[str, bool], Any] = {
    (CREATE, False): "store",
    (CREATE, True): ConflictError,
    (REPLACE, True): "store",
    (REPLACE, False): NotFoundError,
    (DELETE, True): "remove",
    (DELETE, False): NotFoundError,
}

_REFUSAL_TEXT = {
    ConflictError: "already exists",
    NotFoundError: "does not exist",
}


def key_ref(key: Key) -> str:
    """``route-rule/default/reviews-default``: how messages name an object key."""
    kind, namespace, name = key
    info = lookup_kind(kind)
    return f"{info.type_name if info else kind}/{namespace}/{name}"


@dataclass(frozen=True)
class Change:
    """One write the store has decided to make: ``object`` is the object to store (carrying its new
    revision) or ``None`` for a delete."""

    op: str
    key: Key
    revision: int
    object: ConfigObject | None

    @property
    def ref(self) -> str:
        return key_ref(self.key)


class StoreState:
    """Every object by key and the store's revision. Decide with :meth:`plan`, then :meth:`apply`."""

    def __init__(self, objects: Iterable[ConfigObject] = (), revision: int = 0) -> None:
        self._objects: dict[Key, ConfigObject] = {}
        for obj in objects:
            if obj.key in self._objects:
                raise ValueError(f"duplicate object {obj.ref}")
            self._objects[obj.key] = obj
        highest = max((o.revision for o in self._objects.values()), default=0)
        # The counter never goes backwards, even if the caller's counter lags the objects.
        self.revision = max(revision, highest)
        self._writes = {CREATE: 0, REPLACE: 0, DELETE: 0}
        self._refused = 0

    def __repr__(self) -> str:
        return f"<StoreState revision={self.revision} objects={len(self._objects)}>"

    def __len__(self) -> int:
        return len(self._objects)

    def get(self, key: Key) -> ConfigObject | None:
        return self._objects.get(key)

    def objects(self, *, kind: str | None = None, namespace: str | None = None) -> list[ConfigObject]:
        """The stored objects, filtered, in a stable order (kind, namespace, name)."""
        return sorted(
            (o for o in self._objects.values()
             if (kind is None or o.kind == kind) and (namespace is None or o.namespace == namespace)),
            key=lambda o: o.key,
        )

    def plan(self, op: str, key: Key, obj: ConfigObject | None = None) -> Change:
        """The change ``op`` would make, or raise ConflictError/NotFoundError (nothing changes)."""
        if op != DELETE:
            if obj is None or obj.key != key:
                raise ValueError("create/replace need the object, with the same key")
        outcome = WRITE_RULES[(op, key in self._objects)]
        if not isinstance(outcome, str):
            self._refused += 1
            raise outcome(f"{key_ref(key)} {_REFUSAL_TEXT[outcome]}")
        revision = self.revision + 1
        stored = msgspec.structs.replace(obj, revision=revision) if outcome == "store" else None
        return Change(op, key, revision, stored)

    def plan_create(self, obj: ConfigObject) -> Change:
        return self.plan(CREATE, obj.key, obj)

    def plan_replace(self, obj: ConfigObject) -> Change:
        return self.plan(REPLACE, obj.key, obj)

    def plan_delete(self, key: Key) -> Change:
        return self.plan(DELETE, key)

    def apply(self, change: Change) -> None:
        """Make a planned change visible. It must be the next revision: plans are applied in order,
        one at a time (the shell serialises writes)."""
        if change.revision != self.revision + 1:
            raise ValueError(f"change at revision {change.revision} does not follow {self.revision}")
        if change.object is None:
            del self._objects[change.key]
        else:
            self._objects[change.key] = change.object
        self.revision = change.revision
        self._writes[change.op] += 1

    def skip(self, revision: int) -> None:
        """Never hand out ``revision`` again (a write that failed to persist may have left it on
        disk)."""
        self.revision = max(self.revision, revision)

    def statistics(self) -> dict[str, int]:
        return {
            "objects": len(self._objects),
            "revision": self.revision,
            "created": self._writes[CREATE],
            "replaced": self._writes[REPLACE],
            "deleted": self._writes[DELETE],
            "refused": self._refused,
        }
