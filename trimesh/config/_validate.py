"""Semantic checks of typed specs: the rules the models' types cannot say.

Each check yields ``(field path below spec, message)``; the loader reports the first one with its
line. Sources: the docs and the protos' comments as catalogued in concepts.md §8 and §17A
(route_rule.proto: "weight 0–100, sum across destinations SHOULD be 100", "MUST HAVE delay or abort",
"MatchCondition CANNOT be empty", "REQUIRED (route|redirect)"; dest_policy.proto ranges;
egress_rule.proto wildcard rule) and the Mixer adapters' validators (telemetry-security.md §11.2,
§15.2). Cross-object checks (a rule naming a handler that does not exist) live in
:func:`check_references`, which needs every object. The attribute expressions of Mixer objects
(``EXPRESSION_FIELDS``) are type-checked by the checker :mod:`trimesh.mixer` installs with
:func:`set_expression_checker`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..errors import ConfigError
from . import _adapters as ad
from . import _mesh, _mixer, _quota_spec
from . import _traffic as tr
from ._parse import camel

Problem = tuple[list[str | int], str]

HTTP_STATUS_MIN, HTTP_STATUS_MAX = 200, 599  # an abort must look like an HTTP response status
LOAD_BALANCERS = ("ROUND_ROBIN", "RANDOM", "LEAST_CONN", "PEAK_EWMA")  # dest_policy.proto + trimesh
EGRESS_PROTOCOLS = ("http", "https", "http2", "grpc", "tcp", "mongo")  # egress_rule.proto
ATTRIBUTE_NAME = re.compile(r"[_.a-z0-9]+\Z")  # docs L1397
_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?\Z")  # DNS-1123 subdomain (Kubernetes names)
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-z]+\Z")  # RFC 9110 token, lower-cased
_HOST_PORT = re.compile(r"(\[[0-9a-fA-F:.]+\]|[^\s:/]+):(\d{1,5})\Z")


def validate_object_name(name: str, *, mixer: bool = False, what: str = "name") -> str | None:
    """Why ``name`` is not a valid object name (``None`` when it is). Names are DNS-1123 subdomains
    (lower case, digits, ``-`` and ``.``, at most 253 characters); Mixer names may not contain ``.``
    because Mixer joins ``name.kind.namespace`` into one fully-qualified name (docs L1657)."""
    if len(name) > 253:
        return f"{what} {name[:20]!r}… is longer than 253 characters"
    if not _NAME.match(name):
        lower = " (names are lower case)" if name.lower() != name else ""
        return (f"{what} {name!r} is not a valid name{lower}: use lower-case letters, digits, '-' "
                "and '.', starting and ending with a letter or digit")
    if mixer and "." in name:
        return (f"{what} {name!r} may not contain '.': Mixer joins name.kind.namespace into one "
                "fully-qualified name")
    return None


def validate_spec(kind: str, spec: Any) -> Iterator[Problem]:
    """Every problem of one typed spec, as ``(path below $.spec, message)``."""
    check = _CHECKS.get(type(spec))
    if check is not None:
        yield from check(spec)
    if _expression_checker is not None and type(spec) in _mixer.EXPRESSION_FIELDS:
        yield from _expressions(spec, _expression_checker)


# --- attribute expressions (checked by trimesh.mixer) ---------------------------------------------

# (expression text, the ValueType name it must have or None for any) -> None, or (column, message)
ExpressionChecker = Callable[[str, str | None], tuple[int, str] | None]
_expression_checker: ExpressionChecker | None = None


def set_expression_checker(checker: ExpressionChecker | None) -> None:
    """Install the type checker of Mixer's attribute expressions (``import trimesh.mixer`` does it;
    ``None`` removes it). The expression language lives above config (DESIGN.md §3), so config
    calls it through this hook rather than importing it."""
    global _expression_checker
    _expression_checker = checker


def _expressions(spec: Any, checker: ExpressionChecker) -> Iterator[Problem]:
    for field, want in _mixer.EXPRESSION_FIELDS[type(spec)].items():
        value = getattr(spec, field)
        if value is None:
            continue
        items = value.items() if isinstance(value, dict) else [(None, value)]
        for key, text in items:
            if field == "match" and not text.strip():
                continue  # an empty match matches every request (docs L549)
            problem = checker(text, want or None)
            if problem is not None:
                column, message = problem
                at = [camel(field)] + ([key] if key is not None else [])
                yield at, f"column {column}: {message}"


# --- shared pieces --------------------------------------------------------------------------------


def _service(svc: tr.IstioService | None, at: list, *, what: str, labels_ok: bool = True,
             required: bool = True) -> Iterator[Problem]:
    if svc is None:
        if required:
            yield at, f"a {what} is required (name: <service>, or service: <FQDN>)"
        return
    if not (svc.name or svc.service):
        yield at, f"the {what} names no service: give 'name' (or 'service' with an FQDN)"
    if svc.labels and not labels_ok:
        yield at + ["labels"], (f"a RouteRule's {what} may not have labels (the rule covers every "
                                "version); put labels on the route entries")


def _percent(value: float | None, at: list) -> Iterator[Problem]:
    if value is not None and not 0 <= value <= 100:
        yield at, f"percent {value:g} is outside 0–100"


def _string_match(m: tr.StringMatch, at: list) -> Iterator[Problem]:
    given = [k for k in ("exact", "prefix", "regex") if getattr(m, k) is not None]
    if len(given) != 1:
        yield at, ("a match needs exactly one of exact, prefix or regex" if not given else
                   f"a match takes one of exact, prefix or regex, not {' and '.join(given)}")
        return
    if m.regex is not None:
        try:
            re.compile(m.regex)
        except re.error as exc:
            yield at + ["regex"], f"regex {m.regex!r} does not compile: {exc}"


def _host_port(value: str | None, at: list, what: str) -> Iterator[Problem]:
    if value is None:
        return
    m = _HOST_PORT.match(value)
    if m is None or not 0 < int(m.group(2)) < 65536:
        yield at, f"{what} {value!r} must be host:port"


# --- traffic kinds --------------------------------------------------------------------------------


def _external_service(dest: tr.IstioService | None) -> str | None:
    """The host a rule names with ``destination.service`` when it is not a mesh service FQDN
    (``<name>.<namespace>.svc.<domain>``): an external service such as ``httpbin.org``."""
    host = dest.service if dest is not None else None
    if not host or ".svc." in f".{host}.":
        return None
    return host


def _route_rule(r: tr.RouteRule) -> Iterator[Problem]:
    yield from _service(r.destination, ["destination"], what="destination", labels_ok=False)
    if r.match is not None:
        m = r.match
        if m.source is None and m.tcp is None and m.udp is None and (
                m.request is None or not m.request.headers):
            yield ["match"], ("an empty match matches nothing in particular: give a source or "
                              "request headers, or leave 'match' out")
        if m.source is not None:
            yield from _service(m.source, ["match", "source"], what="match source")
        if m.request is not None:
            for name, sm in m.request.headers.items():
                at = ["match", "request", "headers", name]
                if not _HEADER_NAME.match(name):
                    yield at, f"{name!r} is not a valid header name"
                yield from _string_match(sm, at)
        for proto in ("tcp", "udp"):
            l4 = getattr(m, proto)
            if l4 is not None:
                for field in ("source_subnet", "destination_subnet"):
                    for i, cidr in enumerate(getattr(l4, field)):
                        try:
                            ipaddress.ip_network(cidr, strict=False)
                        except ValueError:
                            yield (["match", proto, camel(field), i],
                                   f"{cidr!r} is not an IP address or CIDR range")
    if r.redirect is not None and r.route:
        yield ["redirect"], "a rule either redirects or routes: remove 'route' or 'redirect'"
    if r.redirect is not None and r.rewrite is not None:
        yield ["rewrite"], "a redirect cannot be combined with a rewrite"
    if r.redirect is not None and not (r.redirect.uri or r.redirect.authority):
        yield ["redirect"], "a redirect needs a uri or an authority"
    external = _external_service(r.destination)
    total = 0
    for i, dw in enumerate(r.route):
        if external is not None and dw.labels:
            yield ["route", i, "labels"], (
                f"{external} is an external service (reached under an EgressRule): a route to "
                "it cannot pick versions by labels; remove the labels (the docs: no versioned "
                "routing for external services)")
        if dw.weight is not None:
            if not 0 <= dw.weight <= 100:
                yield ["route", i, "weight"], f"weight {dw.weight} is outside 0–100"
            total += dw.weight
        if dw.destination is not None:
            yield from _service(dw.destination, ["route", i, "destination"],
                                what="route destination")
    if len(r.route) > 1 and total != 100:
        yield ["route"], (f"the weights of {len(r.route)} routes add up to {total}, not 100 "
                          "(a route without a weight counts as 0)")
    if r.http_req_retries is not None and r.http_req_retries.simple_retry is not None:
        if r.http_req_retries.simple_retry.attempts < 0:
            yield (["httpReqRetries", "simpleRetry", "attempts"],
                   "attempts must be 0 or more")
    fault = r.http_fault
    if fault is not None:
        if fault.delay is None and fault.abort is None:
            yield ["httpFault"], "a fault needs a delay, an abort, or both"
        if fault.delay is not None:
            d, at = fault.delay, ["httpFault", "delay"]
            yield from _percent(d.percent, at + ["percent"])
            if d.exponential_delay is not None:
                yield at + ["exponentialDelay"], "exponentialDelay is reserved upstream and not supported"
            elif d.fixed_delay is None:
                yield at + ["fixedDelay"], "a delay needs a fixedDelay (e.g. '5s')"
        if fault.abort is not None:
            a, at = fault.abort, ["httpFault", "abort"]
            yield from _percent(a.percent, at + ["percent"])
            if a.grpc_status is not None or a.http2_error is not None:
                which = "grpcStatus" if a.grpc_status is not None else "http2Error"
                yield at + [which], f"{which} is reserved upstream and not supported: use httpStatus"
            elif a.http_status is None:
                yield at + ["httpStatus"], "an abort needs an httpStatus (e.g. 503)"
            elif not HTTP_STATUS_MIN <= a.http_status <= HTTP_STATUS_MAX:
                yield (at + ["httpStatus"],
                       f"httpStatus {a.http_status} is outside {HTTP_STATUS_MIN}–{HTTP_STATUS_MAX}")
    if r.mirror is not None:
        yield from _service(r.mirror, ["mirror"], what="mirror")
    for name in r.append_headers:
        if not _HEADER_NAME.match(name.lower()):
            yield ["appendHeaders", name], f"{name!r} is not a valid header name"


def _destination_policy(p: tr.DestinationPolicy) -> Iterator[Problem]:
    yield from _service(p.destination, ["destination"], what="destination")
    if p.source is not None:
        yield from _service(p.source, ["source"], what="source")
    if p.load_balancing is not None and p.load_balancing.name.upper() not in LOAD_BALANCERS:
        yield (["loadBalancing", "name"],
               f"unknown load balancer {p.load_balancing.name!r}: use one of "
               f"{', '.join(LOAD_BALANCERS)}")
    cb = p.circuit_breaker.simple_cb if p.circuit_breaker is not None else None
    if cb is not None:
        at = ["circuitBreaker", "simpleCb"]
        for field in ("max_connections", "http_max_pending_requests", "http_max_requests",
                      "http_consecutive_errors", "http_max_requests_per_connection",
                      "http_max_retries"):
            if getattr(cb, field) < 0:
                yield at + [camel(field)], f"{camel(field)} must be 0 or more"
        if not 0 <= cb.http_max_ejection_percent <= 100:
            yield (at + ["httpMaxEjectionPercent"],
                   f"httpMaxEjectionPercent {cb.http_max_ejection_percent} is outside 0–100")


_WILDCARD = re.compile(r"\*[^*]+\Z")


def _egress_rule(e: tr.EgressRule) -> Iterator[Problem]:
    dest = e.destination
    if dest is None or not dest.service:
        yield ["destination", "service"], ("an EgressRule needs destination.service: an external "
                                           "host (httpbin.org) or a wildcard (*.foo.com)")
    else:
        host = dest.service
        if "*" in host and not (_WILDCARD.match(host) and host[1:2] in (".", "-")):
            yield (["destination", "service"],
                   f"wildcard {host!r}: '*' may only start the name, as in *.foo.com or "
                   "*-bar.foo.com")
    if not e.ports:
        yield ["ports"], "an EgressRule needs at least one port (port: 80, protocol: http)"
    for i, port in enumerate(e.ports):
        if not 0 < port.port < 65536:
            yield ["ports", i, "port"], f"port {port.port} is outside 1–65535"
        if port.protocol.lower() not in EGRESS_PROTOCOLS:
            yield (["ports", i, "protocol"],
                   f"protocol {port.protocol!r} is not one of {', '.join(EGRESS_PROTOCOLS)}")


_REGEX_CHARS = re.compile(r"[\\()\[\]{}+?|^$]")


def _ingress(ing: tr.Ingress) -> Iterator[Problem]:
    if ing.backend is None and not ing.rules:
        yield [], "an Ingress needs rules or a default backend"
    for i, rule in enumerate(ing.rules):
        paths = rule.http.paths if rule.http is not None else []
        for j, p in enumerate(paths):
            at = ["rules", i, "http", "paths", j]
            if p.path is not None:
                plain = p.path[:-2] if p.path.endswith(".*") else p.path
                if _REGEX_CHARS.search(plain) or "*" in plain or not plain.startswith("/"):
                    yield (at + ["path"],
                           f"path {p.path!r}: Ingress paths are exact ('/status') or prefixes "
                           "written with a trailing '.*' ('/status/.*'); other regular expressions "
                           "are not supported")
            if isinstance(p.backend.service_port, int) and not 0 < p.backend.service_port < 65536:
                yield at + ["backend", "servicePort"], "servicePort is outside 1–65535"


# --- Mixer kinds ----------------------------------------------------------------------------------


def _reference(ref: str, at: list, what: str) -> Iterator[Problem]:
    parts = ref.split(".")
    if len(parts) < 2 or not all(parts):
        yield at, (f"{what} {ref!r} must be written <name>.<kind>[.<namespace>], e.g. "
                   f"{'handler.prometheus' if what == 'handler' else 'requestcount.metric'}")


def _mixer_rule(r: _mixer.MixerRule) -> Iterator[Problem]:
    for i, action in enumerate(r.actions):
        yield from _reference(action.handler, ["actions", i, "handler"], "handler")
        if not action.instances:
            yield ["actions", i, "instances"], "an action needs at least one instance"
        for j, inst in enumerate(action.instances):
            yield from _reference(inst, ["actions", i, "instances", j], "instance")


def _manifest(m: _mixer.AttributeManifest) -> Iterator[Problem]:
    for name in m.attributes:
        if not ATTRIBUTE_NAME.match(name):
            yield (["attributes", name],
                   f"attribute name {name!r} may only use lower-case letters, digits, '_' and '.'")


def _listchecker(p: ad.ListCheckerParams) -> Iterator[Problem]:
    if p.refresh_interval < 1:
        yield ["refreshInterval"], "refreshInterval must be at least 1s"
    if p.ttl <= p.refresh_interval:
        yield ["ttl"], "ttl must be longer than refreshInterval"
    for i, entry in enumerate(p.overrides):
        if p.entry_type == "IP_ADDRESSES":
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                yield ["overrides", i], f"{entry!r} is not an IP address or CIDR range"
        elif p.entry_type == "REGEX":
            try:
                re.compile(entry)
            except re.error as exc:
                yield ["overrides", i], f"regex {entry!r} does not compile: {exc}"


def _memquota(p: ad.MemQuotaParams) -> Iterator[Problem]:
    for i, q in enumerate(p.quotas):
        if q.max_amount < 0:
            yield ["quotas", i, "maxAmount"], "maxAmount must be 0 or more"
        for j, o in enumerate(q.overrides):
            if o.max_amount < 0:
                yield ["quotas", i, "overrides", j, "maxAmount"], "maxAmount must be 0 or more"
            if not o.dimensions:
                yield ["quotas", i, "overrides", j, "dimensions"], "an override needs dimensions"


def _prometheus(p: ad.PrometheusParams) -> Iterator[Problem]:
    for i, m in enumerate(p.metrics):
        at = ["metrics", i]
        if m.instance_name.count(".") < 2:
            yield (at + ["instanceName"],
                   f"instance_name {m.instance_name!r} must be fully qualified: "
                   "<name>.metric.<namespace> (docs L529)")
        b = m.buckets
        if b is not None:
            forms = [f for f in ("explicit_buckets", "linear_buckets", "exponential_buckets")
                     if getattr(b, f) is not None]
            if len(forms) != 1:
                yield at + ["buckets"], "buckets take exactly one of explicitBuckets, linearBuckets, exponentialBuckets"
            if m.kind != "DISTRIBUTION":
                yield at + ["buckets"], f"buckets only apply to DISTRIBUTION metrics, not {m.kind}"
            if b.explicit_buckets is not None:
                bounds = b.explicit_buckets.bounds
                if not bounds or any(x >= y for x, y in zip(bounds, bounds[1:])):
                    yield (at + ["buckets", "explicitBuckets", "bounds"],
                           "bounds must be a non-empty, strictly increasing list")
            if b.linear_buckets is not None:
                if b.linear_buckets.num_finite_buckets <= 0 or b.linear_buckets.width <= 0:
                    yield at + ["buckets", "linearBuckets"], "numFiniteBuckets and width must be positive"
            if b.exponential_buckets is not None:
                e = b.exponential_buckets
                if e.num_finite_buckets <= 0 or e.growth_factor <= 1 or e.scale <= 0:
                    yield (at + ["buckets", "exponentialBuckets"],
                           "numFiniteBuckets and scale must be positive and growthFactor above 1")
        if len(set(m.label_names)) != len(m.label_names):
            yield at + ["labelNames"], "label_names lists a label twice"


_LEVELS = {0: "INFO", 1: "WARNING", 2: "ERROR"}


def _stdio(p: ad.StdioParams) -> Iterator[Problem]:
    for name, level in p.severity_levels.items():
        if isinstance(level, int) and level not in _LEVELS:
            yield ["severityLevels", name], f"level {level} is not 0 (INFO), 1 (WARNING) or 2 (ERROR)"
    for field in ("metric_level", "output_level"):
        level = getattr(p, field)
        if isinstance(level, int) and level not in _LEVELS:
            yield [camel(field)], f"level {level} is not 0 (INFO), 1 (WARNING) or 2 (ERROR)"
    if p.log_stream in ("FILE", "ROTATED_FILE") and not p.output_path:
        yield ["outputPath"], f"logStream {p.log_stream} needs an outputPath"


def _denier(p: ad.DenierParams) -> Iterator[Problem]:
    if p.status is not None and p.status.code not in ad.RPC_CODES:
        yield ["status", "code"], f"status code {p.status.code} is not a google.rpc.Code (0–16)"
    if p.valid_use_count < 0:
        yield ["validUseCount"], "validUseCount must be 0 or more"


def _fluentd(p: ad.FluentdParams) -> Iterator[Problem]:
    yield from _host_port(p.address, ["address"], "address")


def _check_quota_spec(q: _quota_spec.QuotaSpec) -> Iterator[Problem]:
    for i, rule in enumerate(q.rules):
        for j, m in enumerate(rule.match):
            for attr, sm in m.clause.items():
                yield from _string_match(sm, ["rules", i, "match", j, "clause", attr])
        if not rule.quotas:
            yield ["rules", i, "quotas"], "a quota rule needs at least one quota to charge"
        for j, charge in enumerate(rule.quotas):
            if charge.charge < 0:
                yield ["rules", i, "quotas", j, "charge"], "charge must be 0 or more"


def _check_quota_spec_binding(b: _quota_spec.QuotaSpecBinding) -> Iterator[Problem]:
    if not b.quota_specs:
        yield ["quotaSpecs"], "a binding needs at least one quota spec"
    for i, svc in enumerate(b.services):
        yield from _service(svc, ["services", i], what="service")


def _mesh_config(m: _mesh.MeshConfig) -> Iterator[Problem]:
    yield from _host_port(m.mixer_address, ["mixerAddress"], "mixerAddress")
    yield from _host_port(m.egress_proxy_address, ["egressProxyAddress"], "egressProxyAddress")
    pc = m.default_config
    for field in ("discovery_address", "zipkin_address", "statsd_udp_address"):
        yield from _host_port(getattr(pc, field), ["defaultConfig", camel(field)], camel(field))
    if not 0 < pc.proxy_admin_port < 65536:
        yield ["defaultConfig", "proxyAdminPort"], "proxyAdminPort is outside 1–65535"


_CHECKS: dict[type, Any] = {
    tr.RouteRule: _route_rule,
    tr.DestinationPolicy: _destination_policy,
    tr.EgressRule: _egress_rule,
    tr.Ingress: _ingress,
    _mixer.MixerRule: _mixer_rule,
    _mixer.AttributeManifest: _manifest,
    ad.ListCheckerParams: _listchecker,
    ad.MemQuotaParams: _memquota,
    ad.PrometheusParams: _prometheus,
    ad.StdioParams: _stdio,
    ad.DenierParams: _denier,
    ad.FluentdParams: _fluentd,
    _quota_spec.QuotaSpec: _check_quota_spec,
    _quota_spec.QuotaSpecBinding: _check_quota_spec_binding,
    _mesh.MeshConfig: _mesh_config,
}


# --- cross-object checks --------------------------------------------------------------------------


def check_references(objects: Iterable[Any]) -> list[ConfigError]:
    """Problems between Mixer objects (concepts.md §17 A15/A16/A21, telemetry-security.md §16.1.6):
    a rule's handler or instance that does not exist (or has the wrong role), a prometheus metric
    whose ``instance_name`` is not a metric instance, or whose ``label_names`` are not dimensions of
    that instance. One ConfigError per problem, naming the object in ``source``."""
    from ._kinds import lookup_kind

    objs = list(objects)
    by_fqn: dict[str, Any] = {}
    for o in objs:
        info = lookup_kind(o.kind)
        if info is not None and info.category == "mixer" and info.role:
            by_fqn[_mixer.mixer_fqn(o.name, o.kind, o.namespace)] = (o, info.role)
    errors: list[ConfigError] = []

    def fail(o: Any, path: str, message: str) -> None:
        errors.append(ConfigError(message, path=path, source=o.ref))

    for o in objs:
        if o.kind == "rule":
            for i, action in enumerate(o.spec.actions):
                fqn = _mixer.resolve_mixer_reference(action.handler, o.namespace)
                found = by_fqn.get(fqn)
                if found is None or found[1] != "handler":
                    fail(o, f"$.spec.actions[{i}].handler", f"no handler {fqn}"
                         + (" (that name is not a handler)" if found else ""))
                for j, inst in enumerate(action.instances):
                    fqn = _mixer.resolve_mixer_reference(inst, o.namespace)
                    found = by_fqn.get(fqn)
                    if found is None or found[1] != "instance":
                        fail(o, f"$.spec.actions[{i}].instances[{j}]", f"no instance {fqn}"
                             + (" (that name is not an instance)" if found else ""))
        elif o.kind == "prometheus":
            for i, metric in enumerate(o.spec.metrics):
                found = by_fqn.get(metric.instance_name)
                if found is None or found[0].kind != "metric":
                    fail(o, f"$.spec.metrics[{i}].instanceName",
                         f"no metric instance {metric.instance_name}")
                    continue
                dims = found[0].spec.dimensions
                for j, label in enumerate(metric.label_names):
                    if label not in dims:
                        fail(o, f"$.spec.metrics[{i}].labelNames[{j}]",
                             f"label {label!r} is not a dimension of {metric.instance_name}")
    return errors
