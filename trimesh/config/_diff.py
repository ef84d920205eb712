"""What changed between two snapshots: keys of added, changed and removed config objects. PURE.

Two objects with the same key are "changed" when anything but the store's ``revision`` differs
(spec, labels, annotations, apiVersion): a ``replace`` that writes the same content again bumps the
revision but changes nothing a sidecar must act on. Keys are ``(kind, namespace, name)``, sorted so
every member logs and applies changes in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import msgspec

from ._object import ConfigObject

__all__ = ["SnapshotDiff", "diff_snapshots"]

Key = tuple[str, str, str]


@dataclass(frozen=True)
class SnapshotDiff:
    added: tuple[Key, ...] = ()
    changed: tuple[Key, ...] = ()
    removed: tuple[Key, ...] = ()
    instances_changed: bool = False

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed or self.instances_changed)

    @property
    def keys(self) -> tuple[Key, ...]:
        """Every key that differs, sorted."""
        return tuple(sorted(self.added + self.changed + self.removed))

    def kinds(self) -> set[str]:
        """The kinds touched (e.g. to skip recompiling routes when only Mixer config changed)."""
        return {k[0] for k in self.added + self.changed + self.removed}

    def __repr__(self) -> str:
        return (f"<SnapshotDiff +{len(self.added)} ~{len(self.changed)} -{len(self.removed)}"
                f"{' instances' if self.instances_changed else ''}>")


def _objects(snap: Any) -> Mapping[Key, ConfigObject]:
    if snap is None:
        return {}
    if isinstance(snap, Mapping):
        return snap
    return snap.objects


def _content(obj: ConfigObject) -> ConfigObject:
    return msgspec.structs.replace(obj, revision=0) if obj.revision else obj


def diff_snapshots(old: Any, new: Any) -> SnapshotDiff:
    """Compare two Snapshots (or ``{key: ConfigObject}`` mappings; ``None`` is empty)."""
    a, b = _objects(old), _objects(new)
    added = sorted(k for k in b if k not in a)
    removed = sorted(k for k in a if k not in b)
    changed = sorted(k for k in b if k in a and a[k] is not b[k] and _content(a[k]) != _content(b[k]))
    inst = False
    if old is not None and new is not None and hasattr(old, "instances") and hasattr(new, "instances"):
        inst = old.instances is not new.instances and sorted(map(repr, old.instances)) != sorted(
            map(repr, new.instances))
    return SnapshotDiff(tuple(added), tuple(changed), tuple(removed), inst)
