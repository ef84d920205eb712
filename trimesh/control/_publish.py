"""What the control must publish into gossip so it matches its stores. PURE.

The control is the writer of record (DESIGN.md §5): gossip must hold, for every stored config
object and every static registration, an entry at the stored revision, and a tombstone for every
key it holds alive that the stores no longer have. :func:`plan_publication` compares the two views
and returns the puts and tombstones that make gossip agree. The shell runs it at start (which
republishes everything: after a restart, or to members that were away longer than the tombstone
TTL) and after every store change or gossip config event, so a stale copy that comes back is
deleted again.

Tombstone revision: a key deleted at revision R is tombstoned at the store's *current* revision
``floor`` (≥ R, and above the live entry's revision), which still loses to any later create of the
key (it gets ``floor + 1`` or more). A live entry at or above ``floor`` that the store does not
have was not written by this store (e.g. a state directory that was wiped): it is left alone and
counted as ``foreign``, since no tombstone this store can write would beat it without also
beating its own next create.

Shared stores (``shared=True``: the etcd store, where several controls publish the same objects at
the same revisions, each under its own origin): an entry at or above the stored revision is a copy
of the same write (or a newer one this control's watch has not shown yet), whoever published it,
so it is neither republished nor reported as foreign; a live entry the store lacks is tombstoned
only below ``floor``. Without this, two controls would republish each other's entries and report
them foreign on every change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import msgspec

from ..config import ConfigObject
from ..discovery import INSTANCE_KIND, ConfigEntry

if TYPE_CHECKING:  # annotations only: the value type lives with the (Trio) instance store
    from ._instances import Registration

EntryKey = tuple[str, str, str]


class Put(NamedTuple):
    key: EntryKey
    revision: int
    obj: dict[str, Any] | None  # None: a tombstone


class Plan(NamedTuple):
    puts: list[Put]
    foreign: list[EntryKey]


def registration_key(reg: Registration) -> EntryKey:
    return (INSTANCE_KIND, reg.namespace, f"{reg.service}@{reg.address}")


def registration_entry(reg: Registration) -> dict[str, Any]:
    return {"instances": msgspec.to_builtins(list(reg.instances))}


def desired_entries(objects: Iterable[ConfigObject],
                    registrations: Iterable[Registration]) -> dict[EntryKey, tuple[int, Any]]:
    """key → (revision, entry object) for everything the stores hold."""
    out: dict[EntryKey, tuple[int, Any]] = {}
    for obj in objects:
        out[obj.key] = (obj.revision, obj)
    for reg in registrations:
        out[registration_key(reg)] = (reg.revision, reg)
    return out


def plan_publication(desired: Mapping[EntryKey, tuple[int, Any]],
                     entries: Iterable[ConfigEntry], *, origin: str,
                     config_floor: int, instance_floor: int, shared: bool = False) -> Plan:
    """The puts that make gossip (``entries``, tombstones included) agree with ``desired``.

    ``origin`` is the control's member name; ``config_floor`` / ``instance_floor`` the current
    revisions of the config store and of the instance store; ``shared`` says the config store is
    shared with other controls (see the module doc)."""
    held = {e.key: e for e in entries}
    puts: list[Put] = []
    foreign: list[EntryKey] = []
    for key, (revision, value) in desired.items():
        entry = held.get(key)
        if shared and entry is not None and key[0] != INSTANCE_KIND and entry.revision >= revision:
            continue
        if entry is not None and entry.version >= (revision, origin):
            if entry.version > (revision, origin):
                foreign.append(key)
            continue
        if isinstance(value, ConfigObject):
            puts.append(Put(key, revision, value.to_dict()))
        else:
            puts.append(Put(key, revision, registration_entry(value)))
    for key, entry in held.items():
        if entry.obj is None or key in desired:
            continue
        floor = instance_floor if key[0] == INSTANCE_KIND else config_floor
        if entry.revision < floor:
            puts.append(Put(key, floor, None))
        elif not (shared and key[0] != INSTANCE_KIND):
            foreign.append(key)
    puts.sort()
    return Plan(puts, sorted(foreign))
