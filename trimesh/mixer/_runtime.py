"""Mixer's config at run time: rules → actions → handler + instances, compiled once per snapshot.
PURE (``now`` is passed in).

:meth:`MixerConfig.compile` reads a snapshot's Mixer objects (``ConfigObject``s of any kind; the
rest are ignored) and resolves them the way Mixer's runtime does (concepts.md §12.7–§12.12):

* every object is named ``{name}.{kind}.{namespace}``; a rule's short references
  (``denyreviewsv3handler.denier``) are resolved in the rule's own namespace
  (:func:`trimesh.config.resolve_mixer_reference`). A reference that resolves to nothing, or to
  an object of the wrong role, drops that action — config validation refuses it at ``create``
  (:func:`trimesh.config.check_references`), so at run time it only happens to objects loaded
  around the check, and is counted in ``statistics()["unresolved"]``;
* rules in **istio-system** (Mixer's config default namespace) apply to every request; a rule in
  any other namespace applies only to requests whose destination is in that namespace
  (``destination.namespace``, or the second label of ``destination.service``);
* expressions (``match``, a ``listentry``'s ``value``, a ``quota``'s ``dimensions``) are compiled
  with one :class:`~trimesh.mixer.Compiler` over the vocabulary plus the snapshot's
  ``attributemanifest`` objects;
* handlers are built once: ``denier`` → :class:`~trimesh.mixer.Denier`, ``listchecker`` →
  :class:`~trimesh.mixer.ListChecker`, ``memquota`` → :class:`~trimesh.mixer.MemQuotaHandler`.
  Compiling against the ``previous`` config keeps a handler whose spec did not change (a memquota's
  counters, a listchecker's fetched list) and reconfigures a memquota whose limits changed, so a
  config push does not reset rate limits. Other adapters (prometheus, stdio …) take no part in
  check or quota.

**Check** (:meth:`MixerConfig.check`): every rule that applies and matches sends each of its
``checknothing`` / ``listentry`` instances to its handler; the answers are merged by
:meth:`CheckResult.combine` (first failure's code, messages ``handler:message``, smallest
cacheable duration and use count). No rule: OK, cacheable for a minute.

**Missing attributes** never crash a check: a ``match`` that reads a missing attribute (without a
``|`` default), or one with a value of the wrong type, does not match — the rule is skipped. A
``listentry`` value that cannot be evaluated answers ``INVALID_ARGUMENT`` ``"<instance>: value not
available"`` from that handler (a whitelist must not pass what it cannot see); a quota dimension
that cannot be evaluated is left out of the dimension tuple.

**Quota** (:meth:`MixerConfig.quota`): the quota named (the ``quota`` instance's name, as a
``QuotaSpec`` charges it, or its FQN) is charged through the rules that apply and match and send
that instance to a handler; no such rule grants the whole amount (nothing limits it).
:meth:`MixerConfig.decide` is what the service answers for one request: the check, then — when it
passed — the quotas ``QuotaSpec``/``QuotaSpecBinding`` charge (:class:`~trimesh.quota.QuotaCharges`),
with 429 ``RESOURCE_EXHAUSTED:Quota is exhausted for: <names>`` when one grants less than asked.

**Report** (:meth:`MixerConfig.report`): for one reported bag, every rule that applies and matches
sends its ``metric`` instances (value and dimensions evaluated) to their ``prometheus`` handler
and its ``logentry`` instances (variables, severity, timestamp) to their ``stdio`` handler
(trimesh/mixer/_telemetry.py). A metric whose value cannot be evaluated is skipped (counted); a
dimension or variable that cannot be evaluated is left out, as a quota dimension is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from trimesh.config import DEFAULT_DOMAIN, mixer_fqn, resolve_mixer_reference
from trimesh.quota import QuotaCharges, QuotaResult

from ._adapters import Denier, ListChecker, MemQuotaHandler, QuotaArgs
from ._attributes import MISSING, Manifest, ValueType
from ._expr import Compiler, EvaluationError, Expression
from ._status import ALLOW, CheckResult, RpcCode, quota_exhausted
from ._telemetry import Duration, PrometheusHandler, StdioHandler

__all__ = ["MixerConfig", "Decision", "GLOBAL_NAMESPACE", "destination_namespace"]

GLOBAL_NAMESPACE = "istio-system"  # Mixer's --configDefaultNamespace: its rules apply everywhere
CHECK_TEMPLATES = ("checknothing", "listentry")
QUOTA_TEMPLATES = ("quota",)
REPORT_TEMPLATES = ("metric", "logentry")
HANDLER_KINDS = {"denier": Denier, "listchecker": ListChecker, "memquota": MemQuotaHandler,
                 "prometheus": PrometheusHandler, "stdio": StdioHandler}
MISSING_VALUE_DURATION = 5.0  # an unevaluable listentry's answer: reused for the denier's 5 s


def destination_namespace(bag: Mapping[str, Any]) -> str | None:
    """The request's destination namespace: ``destination.namespace``, else the second label of
    ``destination.service`` (``ratings.default.svc.cluster.local`` → ``default``)."""
    ns = bag.get("destination.namespace")
    if isinstance(ns, str) and ns:
        return ns
    svc = bag.get("destination.service")
    if isinstance(svc, str):
        parts = svc.split(".")
        if len(parts) >= 2 and parts[1]:
            return parts[1]
    return None


@dataclass(slots=True)
class _Instance:
    fqn: str
    name: str
    template: str
    value: Expression | None = None  # listentry, metric
    dimensions: tuple[tuple[str, Expression], ...] = ()  # quota, metric; logentry: variables
    severity: Expression | None = None  # logentry
    timestamp: Expression | None = None  # logentry


@dataclass(slots=True)
class _Action:
    handler: Any
    checks: tuple[_Instance, ...]
    quotas: tuple[_Instance, ...]
    reports: tuple[_Instance, ...] = ()


@dataclass(slots=True)
class _Rule:
    fqn: str
    namespace: str
    match: Expression | None
    actions: tuple[_Action, ...]
    matched: int = 0


@dataclass(frozen=True, slots=True)
class Decision:
    """One request's answer: the check (denials first), then the quota outcome. ``result`` is what
    the caller gets (OK or the refusal); ``check`` alone is what a sidecar may cache."""

    check: CheckResult
    result: CheckResult
    quotas: tuple[tuple[str, int], ...] = field(default=())  # (quota name, granted)


class MixerConfig:
    """One snapshot's Mixer config, compiled. ``check``/``quota``/``decide`` answer requests."""

    def __init__(self, rules: Iterable[_Rule] = (), handlers: Mapping[str, Any] | None = None,
                 charges: QuotaCharges | None = None, *, revision: int = 0,
                 compiler: Compiler | None = None, unresolved: int = 0) -> None:
        self.revision = revision
        self.handlers = dict(handlers or {})
        self.specs: dict[str, Any] = {}  # handler FQN -> the spec it was built from
        self.charges = charges if charges is not None else QuotaCharges({}, (), (), False)
        self.compiler = compiler or Compiler()
        self.unresolved = unresolved
        self._global: tuple[_Rule, ...] = ()
        self._by_ns: dict[str, tuple[_Rule, ...]] = {}
        glob: list[_Rule] = []
        by_ns: dict[str, list[_Rule]] = {}
        for r in sorted(rules, key=lambda r: r.fqn):
            (glob if r.namespace == GLOBAL_NAMESPACE else by_ns.setdefault(r.namespace, [])).append(r)
        self._global = tuple(glob)
        self._by_ns = {ns: tuple(glob) + tuple(rs) for ns, rs in by_ns.items()}
        self.rules = tuple(glob) + tuple(r for rs in by_ns.values() for r in rs)
        attrs: set[str] = {"destination.namespace", "destination.service"}
        for r in self.rules:
            if not any(a.checks or a.quotas for a in r.actions):
                continue  # a telemetry-only rule plays no part in a check (nor in its cache key)
            if r.match is not None:
                attrs |= r.match.attributes
            for a in r.actions:
                for inst in a.checks:
                    if inst.value is not None:
                        attrs |= inst.value.attributes
        # the attributes a check depends on: a sidecar's check cache key
        self.check_attributes: tuple[str, ...] = tuple(sorted(attrs))
        self.has_quotas = any(a.quotas for r in self.rules for a in r.actions)
        self.has_reports = any(a.reports for r in self.rules for a in r.actions)
        self._stats = {"checks": 0, "denied": 0, "quotas": 0, "exhausted": 0, "reports": 0,
                       "report_errors": 0}

    # --- building --------------------------------------------------------------------------------

    @classmethod
    def compile(cls, objects: Iterable[Any], *, revision: int = 0,
                previous: "MixerConfig | None" = None, manifest: Manifest | None = None,
                domain: str = DEFAULT_DOMAIN, quota_share: float = 1.0) -> "MixerConfig":
        """From a snapshot's objects (a ``Snapshot``'s ``objects.values()`` or any iterable of
        ``ConfigObject``). ``previous``: the config this one replaces (handlers are kept).
        ``quota_share`` < 1 scales every memquota limit (a sidecar's local fallback)."""
        objs = list(objects.objects.values() if hasattr(objects, "objects") else objects)
        base = manifest if manifest is not None else Manifest.default()
        manifests = [o.spec for o in objs if o.kind == "attributemanifest"]
        compiler = Compiler(base.with_manifests(manifests) if manifests else base)
        old = previous.handlers if previous is not None else {}
        old_specs = previous.specs if previous is not None else {}
        handlers: dict[str, Any] = {}
        specs: dict[str, Any] = {}
        instances: dict[str, _Instance] = {}
        for o in objs:
            fqn = mixer_fqn(o.name, o.kind, o.namespace)
            make = HANDLER_KINDS.get(o.kind)
            if make is MemQuotaHandler and quota_share < 1.0:
                handlers[fqn] = MemQuotaHandler(fqn, o.spec, share=quota_share)
            elif make is not None:
                handlers[fqn] = _keep_or_build(old.get(fqn), old_specs.get(fqn), make, fqn,
                                               o.spec)
            if make is not None:
                specs[fqn] = o.spec
            elif o.kind in CHECK_TEMPLATES or o.kind in QUOTA_TEMPLATES or (
                    o.kind in REPORT_TEMPLATES):
                instances[fqn] = _instance(compiler, fqn, o)
        rules: list[_Rule] = []
        unresolved = 0
        for o in objs:
            if o.kind != "rule":
                continue
            match = compiler.compile(o.spec.match, expected="BOOL") if o.spec.match.strip() else None
            actions = []
            for a in o.spec.actions:
                handler = handlers.get(resolve_mixer_reference(a.handler, o.namespace))
                insts = [instances.get(resolve_mixer_reference(i, o.namespace))
                         for i in a.instances]
                if handler is None:
                    unresolved += 1
                    continue
                unresolved += sum(1 for i in insts if i is None)
                checks = tuple(i for i in insts if i is not None and i.template in CHECK_TEMPLATES)
                quotas = tuple(i for i in insts if i is not None and i.template in QUOTA_TEMPLATES)
                reports = tuple(i for i in insts if i is not None
                                and i.template in REPORT_TEMPLATES)
                if checks or quotas or reports:
                    actions.append(_Action(handler, checks, quotas, reports))
            if actions:
                rules.append(_Rule(mixer_fqn(o.name, o.kind, o.namespace), o.namespace, match,
                                   tuple(actions)))
        charges = QuotaCharges.compile(objs, domain=domain)
        config = cls(rules, handlers, charges, revision=revision, compiler=compiler,
                     unresolved=unresolved)
        config.specs = specs
        return config

    # --- answering -------------------------------------------------------------------------------

    def rules_for(self, bag: Mapping[str, Any]) -> tuple[_Rule, ...]:
        """The rules that apply to the request (its destination's namespace), matching or not."""
        ns = destination_namespace(bag)
        if ns is None:
            return self._global
        return self._by_ns.get(ns, self._global)

    def check(self, bag: Mapping[str, Any], now: float) -> CheckResult:
        """Mixer's Check for one attribute bag."""
        self._stats["checks"] += 1
        results = []
        for rule in self.rules_for(bag):
            if rule.match is not None and not rule.match.matches(bag):
                continue
            rule.matched += 1
            for action in rule.actions:
                handler = action.handler
                for inst in action.checks:
                    if inst.value is None:
                        results.append(handler.check(None, now))
                        continue
                    value = _evaluate(inst.value, bag)
                    if value is MISSING:
                        results.append(CheckResult(RpcCode.INVALID_ARGUMENT,
                                                   f"{inst.fqn}: value not available",
                                                   MISSING_VALUE_DURATION, 1000, handler.fqn))
                    else:
                        results.append(handler.check(value, now))
        result = CheckResult.combine(results) if results else ALLOW
        if not result.ok:
            self._stats["denied"] += 1
        return result

    def quota(self, bag: Mapping[str, Any], now: float, name: str,
              args: QuotaArgs = QuotaArgs()) -> QuotaResult:
        """Charge the quota ``name`` (instance name or FQN) for this request."""
        self._stats["quotas"] += 1
        for rule in self.rules_for(bag):
            if rule.match is not None and not rule.match.matches(bag):
                continue
            for action in rule.actions:
                for inst in action.quotas:
                    if name != inst.name and name != inst.fqn:
                        continue
                    dims = {}
                    for dim, expr in inst.dimensions:
                        value = _evaluate(expr, bag)
                        if value is not MISSING:
                            dims[dim] = value
                    result = action.handler.quota(inst.fqn, dims, args, now)
                    if result.granted < args.amount:
                        self._stats["exhausted"] += 1
                    return result
        return QuotaResult(args.amount, 0.0)

    def decide(self, bag: Mapping[str, Any], now: float, *,
               dedup_id: str | None = None) -> Decision:
        """Check, then (when allowed) the quotas the request is charged."""
        check = self.check(bag, now)
        if not check.ok or not self.has_quotas:
            return Decision(check, check)
        dest = bag.get("destination.service")
        reqs = self.charges.for_request(dest if isinstance(dest, str) else "", bag)
        granted = []
        exhausted = []
        for req in reqs:
            dedup = f"{dedup_id}:{req.quota}" if dedup_id else None
            r = self.quota(bag, now, req.quota, QuotaArgs(req.charge, dedup))
            granted.append((req.quota, r.granted))
            if r.granted < req.charge:
                exhausted.append(req.quota)
        result = quota_exhausted(exhausted) if exhausted else check
        return Decision(check, result, tuple(granted))

    def report(self, bag: Mapping[str, Any], now: float) -> None:
        """Mixer's Report for one attribute bag (module docstring)."""
        if not self.has_reports:
            return
        self._stats["reports"] += 1
        for rule in self.rules_for(bag):
            if not any(a.reports for a in rule.actions):
                continue
            if rule.match is not None and not rule.match.matches(bag):
                continue
            for action in rule.actions:
                handler = action.handler
                for inst in action.reports:
                    dims = {}
                    for dim, expr in inst.dimensions:
                        value = _evaluate(expr, bag)
                        if value is not MISSING:
                            dims[dim] = Duration(value) if expr.type is ValueType.DURATION \
                                and isinstance(value, (int, float)) else value
                    if inst.template == "metric":
                        value = _evaluate(inst.value, bag) if inst.value is not None else MISSING
                        if value is MISSING or not hasattr(handler, "record"):
                            self._stats["report_errors"] += 1
                            continue
                        handler.record(inst.fqn, value, dims)
                    elif hasattr(handler, "log"):
                        severity = (_evaluate(inst.severity, bag)
                                    if inst.severity is not None else None)
                        ts = _evaluate(inst.timestamp, bag) if inst.timestamp is not None else None
                        if isinstance(ts, bool) or not isinstance(ts, (int, float)):
                            ts = now  # no readable timestamp: the report's time
                        handler.log(inst.fqn, None if severity is MISSING else severity,
                                    ts, dims.items())

    def statistics(self) -> dict[str, Any]:
        return {"revision": self.revision, "rules": len(self.rules),
                "handlers": len(self.handlers), "unresolved": self.unresolved,
                "check_attributes": len(self.check_attributes), "has_quotas": self.has_quotas,
                **self._stats,
                "matched": {r.fqn: r.matched for r in self.rules}}

    def __repr__(self) -> str:
        return (f"<MixerConfig r{self.revision} {len(self.rules)} rules, "
                f"{len(self.handlers)} handlers{', quotas' if self.has_quotas else ''}>")


def _evaluate(expr: Expression, bag: Mapping[str, Any]) -> Any:
    try:
        return expr.evaluate(bag)
    except EvaluationError:
        return MISSING


def _instance(compiler: Compiler, fqn: str, o: Any) -> _Instance:
    if o.kind == "listentry":
        return _Instance(fqn, o.name, o.kind, value=compiler.compile(o.spec.value,
                                                                      expected="STRING"))
    if o.kind == "quota":
        dims = tuple((k, compiler.compile(v)) for k, v in sorted(o.spec.dimensions.items()))
        return _Instance(fqn, o.name, o.kind, dimensions=dims)
    if o.kind == "metric":
        dims = tuple((k, compiler.compile(v)) for k, v in sorted(o.spec.dimensions.items()))
        return _Instance(fqn, o.name, o.kind, value=compiler.compile(o.spec.value),
                         dimensions=dims)
    if o.kind == "logentry":
        spec = o.spec
        variables = tuple((k, compiler.compile(v)) for k, v in sorted(spec.variables.items()))
        return _Instance(fqn, o.name, o.kind, dimensions=variables,
                         severity=compiler.compile(spec.severity) if spec.severity else None,
                         timestamp=compiler.compile(spec.timestamp) if spec.timestamp else None)
    return _Instance(fqn, o.name, o.kind)


def _keep_or_build(old: Any, old_spec: Any, make: Any, fqn: str, spec: Any) -> Any:
    """The previous snapshot's handler when its spec is the same (counters, fetched lists kept);
    a memquota whose limits changed is reconfigured in place; otherwise a new one."""
    if old is not None and type(old) is make:
        if old_spec == spec:
            return old
        if make is MemQuotaHandler:
            old.reconfigure(spec)
            return old
    return make(fqn, spec)
