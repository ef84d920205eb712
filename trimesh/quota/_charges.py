"""Which quotas a request is charged, and how much: ``QuotaSpec`` and ``QuotaSpecBinding``.

Istio 0.6/0.7 (istio/api ``mixer/v1/config/client/quota.proto``, traffic-tasks.md §9.8): a
``QuotaSpec`` has rules, each an optional list of attribute matches and the quotas to charge
(``quota`` names a quota *instance* by its short name, ``charge`` the amount: unset or 0 means 1);
a ``QuotaSpecBinding`` attaches specs (``quotaSpecs[] {name, namespace}``, the namespace defaulting
to the binding's) to services (``services[]``, IstioService naming as in route rules, the namespace
defaulting to the binding's; ``service: '*'`` binds every service).

For a request to destination ``D`` the charges are those of every rule of every spec bound to ``D``
whose match applies: a rule without match always applies; otherwise any one of its
``AttributeMatch`` entries must hold, which means all of its clauses hold. A clause names an
attribute (``request.method``) or one key of a map attribute (``request.headers[cookie]``,
``source.labels[app]``) and a StringMatch: ``exact``, ``prefix``, or ``regex`` matching the whole
value (as everywhere in the mesh's string matches); a missing or non-string attribute never
matches. A spec bound twice is charged once; when several rules charge the same quota the last
one's amount counts, as the proxy's map of quota parameters keyed by name does.

With **no binding at all** in the config, every request of every service is charged 1 unit of each
quota instance (the 0.5 behaviour, docs/config.md). Everything is compiled once per snapshot
(:meth:`QuotaCharges.compile`); :meth:`QuotaCharges.for_request` is a dictionary lookup plus the
matches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from trimesh.config import DEFAULT_DOMAIN, resolve_service
from trimesh.errors import ConfigError

DEFAULT_CHARGE = 1  # quota.proto: a charge unset or 0 counts 1 (istio/proxy)
_KEYED = re.compile(r"^([^\[\]]+)\[([^\[\]]*)\]$")

Clause = Callable[[Mapping[str, Any]], bool]


@dataclass(frozen=True, slots=True)
class QuotaRequirement:
    """Charge ``charge`` units of the quota instance named ``quota`` (its short name)."""

    quota: str
    charge: int = DEFAULT_CHARGE


@dataclass(frozen=True, slots=True)
class _Rule:
    matches: tuple[tuple[Clause, ...], ...]  # OR of ANDs; empty: always
    requirements: tuple[QuotaRequirement, ...]

    def applies(self, attributes: Mapping[str, Any]) -> bool:
        if not self.matches:
            return True
        return any(all(c(attributes) for c in clauses) for clauses in self.matches)


def _getter(name: str) -> Callable[[Mapping[str, Any]], Any]:
    keyed = _KEYED.match(name.strip())
    if keyed is None:
        attr = name.strip()
        return lambda attrs: attrs.get(attr)
    attr, key = keyed.group(1).strip(), keyed.group(2).strip().strip("\"'")

    def get(attrs: Mapping[str, Any]) -> Any:
        m = attrs.get(attr)
        return m.get(key) if isinstance(m, Mapping) else None
    return get


def _clause(name: str, sm: Any, path: str) -> Clause:
    get = _getter(name)
    if isinstance(sm, str):
        exact, prefix, regex = sm, None, None
    else:
        exact, prefix, regex = sm.exact, sm.prefix, sm.regex
    if exact is not None:
        return lambda attrs: get(attrs) == exact
    if prefix is not None:
        def has_prefix(attrs: Mapping[str, Any]) -> bool:
            v = get(attrs)
            return isinstance(v, str) and v.startswith(prefix)
        return has_prefix
    if regex is not None:
        try:
            full = re.compile(regex).fullmatch
        except re.error as exc:
            raise ConfigError(f"bad regex {regex!r}: {exc}", path=path) from None

        def matches(attrs: Mapping[str, Any]) -> bool:
            v = get(attrs)
            return isinstance(v, str) and full(v) is not None
        return matches
    return lambda attrs: isinstance(get(attrs), str)  # an empty StringMatch: present


def _compile_spec(spec: Any) -> tuple[_Rule, ...]:
    rules = []
    for i, rule in enumerate(spec.rules):
        matches = tuple(
            tuple(_clause(attr, sm, f'$.spec.rules[{i}].match[{j}].clause["{attr}"].regex')
                  for attr, sm in m.clause.items())
            for j, m in enumerate(rule.match))
        reqs = tuple(QuotaRequirement(q.quota, q.charge or DEFAULT_CHARGE) for q in rule.quotas)
        rules.append(_Rule(matches, reqs))
    return tuple(rules)


class QuotaCharges:
    """The charging table of one snapshot: destination FQDN → the rules of the specs bound to it."""

    __slots__ = ("_by_service", "_everywhere", "_implicit", "bound")

    def __init__(self, by_service: Mapping[str, tuple[_Rule, ...]], everywhere: tuple[_Rule, ...],
                 implicit: tuple[QuotaRequirement, ...], bound: bool) -> None:
        self._by_service = dict(by_service)
        self._everywhere = everywhere
        self._implicit = implicit
        self.bound = bound  # whether any QuotaSpecBinding exists

    @classmethod
    def compile(cls, objects: Iterable[Any], *, domain: str = DEFAULT_DOMAIN) -> "QuotaCharges":
        """From a snapshot's objects (``ConfigObject``s of any kinds: ``QuotaSpec``,
        ``QuotaSpecBinding`` and the ``quota`` instances are read, the rest ignored). A binding
        that names a missing spec charges nothing for it (config validation reports it)."""
        specs: dict[tuple[str, str], tuple[_Rule, ...]] = {}
        bindings = []
        quota_names: list[str] = []
        for obj in objects:
            if obj.kind == "QuotaSpec":
                specs[(obj.namespace, obj.name)] = _compile_spec(obj.spec)
            elif obj.kind == "QuotaSpecBinding":
                bindings.append(obj)
            elif obj.kind == "quota":
                quota_names.append(obj.name)
        by_service: dict[str, list[tuple[str, str]]] = {}
        everywhere: list[tuple[str, str]] = []
        for b in bindings:
            refs = [(r.namespace or b.namespace, r.name) for r in b.spec.quota_specs]
            for svc in b.spec.services:
                if svc.service == "*":
                    targets = everywhere
                else:
                    fqdn = resolve_service(svc, b.namespace, domain)
                    if fqdn is None:
                        continue
                    targets = by_service.setdefault(fqdn, [])
                targets.extend(r for r in refs if r not in targets)
        all_rules = tuple(rule for ref in dict.fromkeys(everywhere) for rule in specs.get(ref, ()))
        per_service = {}
        for fqdn, refs in by_service.items():
            extra = [r for r in refs if r not in everywhere]
            per_service[fqdn] = all_rules + tuple(rule for ref in extra
                                                  for rule in specs.get(ref, ()))
        implicit = tuple(QuotaRequirement(n) for n in dict.fromkeys(sorted(quota_names)))
        return cls(per_service, all_rules, implicit, bool(bindings))

    def for_request(self, destination: str, attributes: Mapping[str, Any]) -> tuple[
            QuotaRequirement, ...]:
        """The quotas to charge for a request to ``destination`` (its FQDN) with ``attributes``
        (the request's attribute values: ``request.headers`` a map, ``source.labels`` a map, ...)."""
        if not self.bound:
            return self._implicit
        rules = self._by_service.get(destination.lower(), self._everywhere)
        charged: dict[str, QuotaRequirement] = {}
        for rule in rules:
            if rule.applies(attributes):
                for req in rule.requirements:
                    charged.pop(req.quota, None)
                    charged[req.quota] = req
        return tuple(charged.values())

    def statistics(self) -> dict[str, Any]:
        return {"bound": self.bound, "services": len(self._by_service),
                "rules_everywhere": len(self._everywhere), "implicit": len(self._implicit)}

    def __repr__(self) -> str:
        if not self.bound:
            return f"<QuotaCharges implicit: {', '.join(r.quota for r in self._implicit) or '-'}>"
        return (f"<QuotaCharges {len(self._by_service)} services,"
                f" {len(self._everywhere)} rules for every service>")
