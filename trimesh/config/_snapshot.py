"""Snapshot: one immutable, versioned view of every config object and every service instance.

The proxy holds one Snapshot reference and swaps it on change; requests in flight keep the one they
started with. Indexes (rules by destination FQDN, instances by service, Mixer objects by their
fully-qualified name ``name.kind.namespace``) are built once here, never per request. Routing compiles
its own structures from a Snapshot (``trimesh.routing``); :func:`trimesh.config.diff_snapshots` says
what changed between two.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Mapping

from ._instances import ServiceInstance
from ._kinds import lookup_kind
from ._mesh import MeshConfig
from ._mixer import mixer_fqn, resolve_mixer_reference
from ._names import DEFAULT_DOMAIN, resolve_service
from ._object import ConfigObject


class Snapshot:
    __slots__ = ("version", "domain", "objects", "instances", "_by_kind", "_rules_by_dest",
                 "_policies_by_dest", "_instances_by_fqdn", "_by_fqn", "_mesh")

    def __init__(self, objects: Iterable[ConfigObject] = (), instances: Iterable[ServiceInstance] = (),
                 *, version: int = 0, domain: str = DEFAULT_DOMAIN) -> None:
        self.version = version
        self.domain = domain
        self.objects: Mapping[tuple[str, str, str], ConfigObject] = {o.key: o for o in objects}
        self.instances: tuple[ServiceInstance, ...] = tuple(instances)
        by_kind: dict[str, list[ConfigObject]] = defaultdict(list)
        rules: dict[str, list[ConfigObject]] = defaultdict(list)
        policies: dict[str, list[ConfigObject]] = defaultdict(list)
        by_fqn: dict[str, ConfigObject] = {}
        mesh: list[ConfigObject] = []
        for obj in self.objects.values():
            by_kind[obj.kind].append(obj)
            info = lookup_kind(obj.kind)
            if info is not None and info.category == "mixer":
                by_fqn[mixer_fqn(obj.name, obj.kind, obj.namespace)] = obj
            elif obj.kind == "MeshConfig":
                mesh.append(obj)
            dest = getattr(obj.spec, "destination", None)
            fqdn = resolve_service(dest, obj.namespace, domain) if dest is not None and hasattr(
                dest, "labels") else None
            if fqdn is None:
                continue
            if obj.kind == "RouteRule":
                rules[fqdn].append(obj)
            elif obj.kind == "DestinationPolicy":
                policies[fqdn].append(obj)
        for lst in rules.values():
            # Higher precedence first; ties broken by name so the order is stable across members.
            lst.sort(key=lambda o: (-o.spec.precedence, o.namespace, o.name))
        by_inst: dict[str, list[ServiceInstance]] = defaultdict(list)
        for inst in self.instances:
            by_inst[inst.fqdn].append(inst)
        self._by_kind = {k: tuple(v) for k, v in by_kind.items()}
        self._rules_by_dest = {k: tuple(v) for k, v in rules.items()}
        self._policies_by_dest = {k: tuple(v) for k, v in policies.items()}
        self._instances_by_fqdn = {k: tuple(v) for k, v in by_inst.items()}
        self._by_fqn = by_fqn
        # One mesh config is expected; with several, the last by (namespace, name) wins, the same
        # on every member.
        mesh.sort(key=lambda o: (o.namespace, o.name))
        self._mesh: MeshConfig = mesh[-1].spec if mesh else MeshConfig()

    def of_kind(self, kind: str) -> tuple[ConfigObject, ...]:
        return self._by_kind.get(kind, ())

    def get(self, kind: str, namespace: str, name: str) -> ConfigObject | None:
        """The object with this key (``kind`` in any spelling lookup_kind accepts), or None."""
        info = lookup_kind(kind)
        return self.objects.get((info.kind if info else kind, namespace, name))

    def mixer_object(self, reference: str, namespace: str | None = None) -> ConfigObject | None:
        """A Mixer object by fully-qualified name (``handler.prometheus.istio-system``), or by a
        rule's short reference (``handler.prometheus``) resolved in ``namespace``."""
        fqn = resolve_mixer_reference(reference, namespace) if namespace else reference
        return self._by_fqn.get(fqn)

    @property
    def mesh_config(self) -> MeshConfig:
        """The mesh config object's spec, or the defaults when the snapshot has none."""
        return self._mesh

    def route_rules_for(self, fqdn: str) -> tuple[ConfigObject, ...]:
        """RouteRules whose destination is ``fqdn``, highest precedence first."""
        return self._rules_by_dest.get(fqdn, ())

    def destination_policies_for(self, fqdn: str) -> tuple[ConfigObject, ...]:
        return self._policies_by_dest.get(fqdn, ())

    def instances_of(self, fqdn: str) -> tuple[ServiceInstance, ...]:
        return self._instances_by_fqdn.get(fqdn, ())

    def services(self) -> list[str]:
        return sorted(self._instances_by_fqdn)

    def replace(self, *, objects: Iterable[ConfigObject] | None = None,
                instances: Iterable[ServiceInstance] | None = None, version: int | None = None
                ) -> "Snapshot":
        """A new Snapshot with some parts replaced (and a new version)."""
        return Snapshot(self.objects.values() if objects is None else objects,
                        self.instances if instances is None else instances,
                        version=self.version + 1 if version is None else version, domain=self.domain)

    def statistics(self) -> dict[str, object]:
        return {"version": self.version, "objects": len(self.objects),
                "instances": len(self.instances), "services": len(self._instances_by_fqdn),
                "kinds": {k: len(v) for k, v in sorted(self._by_kind.items())}}

    def __repr__(self) -> str:
        return (f"<Snapshot v{self.version} objects={len(self.objects)} "
                f"instances={len(self.instances)}>")
