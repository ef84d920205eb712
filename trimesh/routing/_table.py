"""The route table: every routing decision of one sidecar for one config Snapshot.

How a request is routed (docs/routing.md tells the same story for users):

1. **Destination.** The request's ``Host`` (``reviews``, ``reviews.default``, the FQDN, any of them
   with ``:port``) is expanded to a service FQDN in the caller's namespace (DESIGN.md §4,
   :func:`trimesh.config.host_to_fqdn`). A known mesh service is routed by its RouteRules. Otherwise
   the host must match an EgressRule (exact name or ``*`` wildcard, port listed in the rule; no port
   means 80) or the request is refused with 404 ``NR`` — the mesh is a whitelist for external hosts
   (concepts.md §8.14, acceptance G.80).
2. **Rule.** The destination's RouteRules, highest ``precedence`` first (Snapshot orders them, ties
   by namespace/name), are tried in turn; the first whose ``match`` holds wins and evaluation stops
   (§8.10 L951). ``match.source`` is settled when the table is compiled (the caller is fixed);
   header criteria are precompiled closures. No rule matching means every instance of the service.
3. **Backend.** A rule's weighted ``route`` backends are chosen with one ``rng`` draw over a
   precomputed cumulative array (a single backend needs none; a lone backend without a weight has
   100). The backend's labels select a :class:`~trimesh.routing.Cluster`; an empty subset is a
   cluster without instances (the proxy answers 503 ``UH``). Egress destinations ignore weights and
   labels (§8.14 L1071): their backend is the external host itself.
4. **Policy.** Timeout, retries, faults, mirror, rewrite, CORS, WebSocket and appended headers come
   from the winning rule; the per-request headers ``x-envoy-upstream-rq-timeout-ms`` and
   ``x-envoy-max-retries`` override timeout and retry count. Faults are rolled here.
5. **DestinationPolicy** (§8.13), fixed per cluster at compile time: a policy applies when its
   ``source`` (if any) names the caller and its destination ``labels`` (if any) are all among the
   labels a route rule *explicitly* routed to — default routing to "all instances" never activates a
   labelled policy, as the docs' subtlety says. Among several, the one with the most labels wins,
   then one with a ``source``, then namespace/name order. Its ``loadBalancing.name`` selects the
   cluster's balancer (unknown names fall back to ROUND_ROBIN and are listed in ``problems``).

Everything that does not depend on the request is done by :func:`compile_routes`; ``decide`` is
dict lookups, the precompiled matchers and at most one draw for the backend plus one per fault.
A ``Forward`` that needs no per-request change is built once and returned as is.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from typing import Any

import msgspec

from ..config import DEFAULT_NAMESPACE, resolve_service, service_domain
from ._balancers import DEFAULT_BALANCER, HostState, make_balancer
from ._cluster import Cluster, ClusterState, cluster_name
from ._health import HealthState
from ._mtls import secure_endpoints
from ._match import compile_l4_match, compile_string_match, host_pattern_matches, mesh_fqdn, \
    source_matches, split_host_port
from ._policy import DEFAULT_TIMEOUT, RETRIES_HEADER, TIMEOUT_HEADER, FaultRoll, RetryPolicy, \
    compile_fault, retries_override, timeout_override
from ._types import Forward, Redirect, Reject, RequestInfo, SourceIdentity

DEFAULT_EGRESS_PORT = 80  # concepts.md §8.14: an app calls http://host (port 80) or http://host:443
AUTHORITY_CACHE_SIZE = 4096  # distinct Host values remembered per table (cleared when full)
REDIRECT_STATUS = 302  # route_rule.proto HTTPRedirect: "301 or 302"; Istio 0.x sent 302

_replace = msgspec.structs.replace


class _Backend:
    __slots__ = ("cluster", "forward")

    def __init__(self, cluster: Cluster, forward: Forward) -> None:
        self.cluster = cluster
        self.forward = forward


class _Core:
    """The request-independent part of one RouteRule (compiled once per table)."""

    __slots__ = ("name", "obj", "matchers", "uri_prefix", "timeout", "retry", "fault", "redirect",
                 "rewrite_uri", "rewrite_authority", "append_headers", "cors", "websocket_upgrade",
                 "mirror", "_retries")

    def __init__(self, obj: Any) -> None:
        self.obj = obj
        self.name = obj.name
        self.matchers: tuple = ()
        self.uri_prefix: str | None = None
        self.mirror: Cluster | None = None
        spec = obj.spec
        t = spec.http_req_timeout
        self.timeout = float(t.simple_timeout.timeout) if t is not None and t.simple_timeout \
            is not None else DEFAULT_TIMEOUT
        r = spec.http_req_retries
        sr = r.simple_retry if r is not None else None
        self.retry = RetryPolicy(sr.attempts, float(sr.per_try_timeout) if sr.per_try_timeout
                                 is not None else None) if sr is not None and sr.attempts > 0 \
            else None
        self.fault: FaultRoll | None = compile_fault(spec.http_fault)
        self.redirect = spec.redirect
        rw = spec.rewrite
        self.rewrite_uri = rw.uri if rw is not None else None
        self.rewrite_authority = rw.authority if rw is not None else None
        self.append_headers = tuple((k.lower(), v) for k, v in (spec.append_headers or {}).items())
        self.cors = spec.cors_policy
        self.websocket_upgrade = bool(spec.websocket_upgrade)
        self._retries: dict[int, RetryPolicy | None] = {}

    def retry_with(self, attempts: int) -> RetryPolicy | None:
        """The rule's retry policy with ``attempts`` from ``x-envoy-max-retries`` (memoised: a
        handful of distinct values occur in practice; the header is bounded)."""
        policy = self._retries.get(attempts, False)
        if policy is False:
            base = self.retry
            policy = None if attempts == 0 else (base.with_attempts(attempts) if base is not None
                                                  else RetryPolicy(attempts))
            if len(self._retries) < 64:
                self._retries[attempts] = policy
        return policy


class _Rule:
    """A rule as applied to one destination: its core, its backends and their weights."""

    __slots__ = ("core", "name", "matchers", "backends", "cum", "total", "last", "dynamic")

    def __init__(self, core: _Core | None, backends: list[_Backend], weights: list[float]) -> None:
        self.core = core
        self.name = core.name if core is not None else None
        self.matchers = core.matchers if core is not None else ()
        self.backends = tuple(backends)
        cum, total = [], 0.0
        for w in weights:
            total += w
            cum.append(total)
        self.cum = cum
        self.total = total
        # The last backend with a positive weight: where a draw that rounds up to `total` lands.
        self.last = max((i for i, w in enumerate(weights) if w > 0), default=0)
        # Needs per-request work beyond the header overrides (a fault roll or a path rewrite).
        self.dynamic = core is not None and (core.fault is not None or core.rewrite_uri is not None)


class _Dest:
    __slots__ = ("fqdn", "rules", "reject")

    def __init__(self, fqdn: str, rules: list[_Rule], reject: Reject | None = None) -> None:
        self.fqdn = fqdn
        self.rules = tuple(rules)
        self.reject = reject


class _Egress:
    __slots__ = ("obj", "pattern", "ports")

    def __init__(self, obj: Any, pattern: str) -> None:
        self.obj = obj
        self.pattern = pattern
        self.ports = {p.port: p.protocol.lower() for p in obj.spec.ports}


class RouteTable:
    """Compiled routing for one Snapshot and one caller; see the module docstring. Built by
    :func:`compile_routes`; the proxy calls :meth:`decide` per request."""

    def __init__(self, snapshot: Any, source: SourceIdentity | None,
                 previous: "RouteTable | None") -> None:
        self.snapshot = snapshot
        self.version = snapshot.version
        self.domain = snapshot.domain
        self.source = source
        self.problems: list[str] = []
        self._namespace = source.namespace if source is not None else DEFAULT_NAMESPACE
        self._mesh_suffix = "." + service_domain(self.domain)
        self._host_states: dict[tuple[str, int], HostState] = {}
        prev_hosts = previous._host_states if previous is not None else {}
        for inst in snapshot.instances:
            ep = inst.endpoint
            if ep not in self._host_states:
                self._host_states[ep] = prev_hosts.get(ep) or HostState()
        self._prev_clusters = previous._clusters if previous is not None else {}
        self._clusters: dict[str, Cluster] = {}
        self._cores: dict[tuple[str, str, str], _Core | None] = {}
        self._mesh: dict[str, _Dest] = {}
        self._cache: dict[str, _Dest] = {}
        self._decisions = {"forward": 0, "redirect": 0, "reject": 0}
        self._decides = 0

        # Egress rules: exact names by dict, wildcards longest suffix first.
        self._egress_exact: dict[str, _Egress] = {}
        self._egress_wild: list[_Egress] = []
        for obj in snapshot.of_kind("EgressRule"):
            dest = obj.spec.destination
            pattern = (dest.service or "").strip().lower() if dest is not None else ""
            if not pattern:
                self.problems.append(f"{obj.ref}: no destination.service; ignored")
                continue
            eg = _Egress(obj, pattern)
            if pattern.startswith("*"):
                self._egress_wild.append(eg)
            else:
                self._egress_exact.setdefault(pattern, eg)
        self._egress_wild.sort(key=lambda e: (-len(e.pattern), e.obj.namespace, e.obj.name))

        # Mesh services: every service with instances, and every mesh-named rule destination.
        fqdns = set(snapshot.services())
        for obj in snapshot.of_kind("RouteRule"):
            d = obj.spec.destination
            f = resolve_service(d, obj.namespace, self.domain) if d is not None else None
            if f is not None and f.endswith(self._mesh_suffix):
                fqdns.add(f)
        for fqdn in sorted(fqdns):
            self._mesh[fqdn] = self._compile_mesh_dest(fqdn)

    # --- compile -----------------------------------------------------------------------------

    def _policy_for(self, fqdn: str, labels: dict[str, str]) -> Any:
        best, best_key = None, None
        for obj in self.snapshot.destination_policies_for(fqdn):
            spec = obj.spec
            if spec.source is not None and not source_matches(spec.source, obj.namespace,
                                                              self.source, self.domain):
                continue
            want = spec.destination.labels if spec.destination is not None else {}
            if any(labels.get(k) != v for k, v in (want or {}).items()):
                continue
            key = (-len(want or {}), spec.source is None, obj.namespace, obj.name)
            if best_key is None or key < best_key:
                best, best_key = obj, key
        return best

    def _balancer_for(self, policy: Any):
        lb = getattr(policy.spec, "load_balancing", None) if policy is not None else None
        try:
            return make_balancer(lb.name if lb is not None else None)
        except ValueError as exc:
            problem = f"{policy.ref}: {exc}; using {DEFAULT_BALANCER}"
            if problem not in self.problems:
                self.problems.append(problem)
            return make_balancer(DEFAULT_BALANCER)

    def cluster(self, fqdn: str, labels: dict[str, str] | None = None) -> Cluster:
        """The cluster for a service subset (built on first use, shared afterwards)."""
        labels = dict(labels or {})
        name = cluster_name(fqdn, labels)
        c = self._clusters.get(name)
        if c is None:
            policy = self._policy_for(fqdn, labels)
            insts = [i for i in self.snapshot.instances_of(fqdn) if i.has_labels(labels)]
            prev = self._prev_clusters.get(name)
            c = Cluster(fqdn, labels, insts, self._balancer_for(policy), policy=policy,
                        host_states=self._host_states,
                        state=prev.state if prev is not None else ClusterState(), name=name,
                        secure=secure_endpoints(self.snapshot.mesh_config, insts))
            self._clusters[name] = c
        return c

    def _egress_cluster(self, eg: _Egress, port: int) -> Cluster:
        name = f"{eg.pattern}:{port}"
        c = self._clusters.get(name)
        if c is None:
            policy = self._policy_for(eg.pattern, {})
            prev = self._prev_clusters.get(name)
            c = Cluster(eg.pattern, None, (), self._balancer_for(policy), policy=policy,
                        host_states=self._host_states,
                        state=prev.state if prev is not None else ClusterState(), name=name)
            self._clusters[name] = c
        return c

    def _core(self, obj: Any) -> _Core | None:
        """Compile a rule's request-independent part; ``None`` if it can never match this
        caller (source mismatch, L4-only match) or is broken (bad regex, listed in problems)."""
        if obj.key in self._cores:
            return self._cores[obj.key]
        core: _Core | None = _Core(obj)
        m = obj.spec.match
        if m is not None:
            if m.udp is not None:
                core = None  # UDP is not proxied: the rule never applies
            elif not source_matches(m.source, obj.namespace, self.source, self.domain):
                core = None
            elif m.tcp is not None or m.request is not None:
                # match.tcp: the rule applies only to TCP connections, from / to the subnets
                hname = None
                try:
                    matchers = compile_l4_match(m.tcp) if m.tcp is not None else []
                    for hname, sm in (m.request.headers if m.request is not None else {}).items():
                        fn, prefix = compile_string_match(hname, sm)
                        matchers.append(fn)
                        if prefix is not None:
                            core.uri_prefix = prefix
                except re.error as exc:
                    self.problems.append(f"{obj.ref}: invalid regex for header {hname!r}: {exc}; "
                                         "rule ignored")
                    core = None
                except ValueError as exc:  # an unvalidated object's subnet
                    self.problems.append(f"{obj.ref}: match.tcp: {exc}; rule ignored")
                    core = None
                else:
                    core.matchers = tuple(matchers)
        if core is not None and obj.spec.mirror is not None:
            mf = resolve_service(obj.spec.mirror, obj.namespace, self.domain)
            if mf is not None:
                core.mirror = self.cluster(mf, obj.spec.mirror.labels)
        self._cores[obj.key] = core
        return core

    def _forward(self, core: _Core | None, fqdn: str, cluster: Cluster, **egress: Any) -> Forward:
        if core is None:
            return Forward(fqdn, None, cluster, DEFAULT_TIMEOUT, **egress)
        return Forward(fqdn, core.name, cluster, core.timeout, core.retry, None, None, core.mirror,
                       None, core.rewrite_authority, core.append_headers, core.cors,
                       core.websocket_upgrade, **egress)

    def _compile_mesh_dest(self, fqdn: str) -> _Dest:
        rules = []
        for obj in self.snapshot.route_rules_for(fqdn):
            core = self._core(obj)
            if core is None:
                continue
            backends, weights = [], []
            routes = obj.spec.route
            lone = len(routes) == 1
            for dw in routes:
                bf = fqdn
                if dw.destination is not None:
                    bf = resolve_service(dw.destination, obj.namespace, self.domain) or fqdn
                cl = self.cluster(bf, dw.labels)
                backends.append(_Backend(cl, self._forward(core, bf, cl)))
                # A lone backend has 100 (whatever its weight says); with several, an unset
                # weight is 0 (validation wants a sum of 100; the draw normalises anyway).
                weights.append(1.0 if lone else float(dw.weight or 0))
            if not backends:
                cl = self.cluster(fqdn)
                backends.append(_Backend(cl, self._forward(core, fqdn, cl)))
                weights.append(1.0)
            if sum(weights) <= 0:
                self.problems.append(f"{obj.ref}: every route weight is 0; rule ignored")
                continue
            rules.append(_Rule(core, backends, weights))
        cl = self.cluster(fqdn)
        rules.append(_Rule(None, [_Backend(cl, self._forward(None, fqdn, cl))], [1.0]))
        return _Dest(fqdn, rules)

    def _compile_egress_dest(self, eg: _Egress, host: str, port: int) -> _Dest:
        protocol = eg.ports.get(port)
        cl = self._egress_cluster(eg, port)
        extra = dict(egress_tls=protocol == "https", external_host=host, external_port=port)
        objs = list(self.snapshot.route_rules_for(eg.pattern))
        if host != eg.pattern:
            objs += self.snapshot.route_rules_for(host)
            objs.sort(key=lambda o: (-o.spec.precedence, o.namespace, o.name))
        rules = []
        for obj in objs:
            core = self._core(obj)
            if core is None:
                continue
            rules.append(_Rule(core, [_Backend(cl, self._forward(core, host, cl, **extra))], [1.0]))
        rules.append(_Rule(None, [_Backend(cl, self._forward(None, host, cl, **extra))], [1.0]))
        return _Dest(host, rules)

    def _find_egress(self, host: str) -> _Egress | None:
        eg = self._egress_exact.get(host)
        if eg is not None:
            return eg
        for eg in self._egress_wild:
            if host_pattern_matches(eg.pattern, host):
                return eg
        return None

    def _resolve(self, authority: str) -> _Dest:
        host, port = split_host_port(authority)
        if not host or port == -1:
            return _Dest("", [], Reject(404, "NR", f"no route to host {authority!r}"))
        fqdn = mesh_fqdn(host, self._namespace, self.domain)
        dest = self._mesh.get(fqdn)
        if dest is not None:
            return dest
        eg = self._find_egress(host)
        if eg is None:
            return _Dest(host, [], Reject(404, "NR", f"no route to host {authority}"))
        port = DEFAULT_EGRESS_PORT if port is None else port
        if port not in eg.ports:
            return _Dest(host, [], Reject(
                404, "NR", f"no route to host {authority}: egress rule {eg.obj.name} allows ports "
                f"{', '.join(str(p) for p in sorted(eg.ports))}"))
        return self._compile_egress_dest(eg, host, port)

    # --- decide ------------------------------------------------------------------------------

    def decide(self, req: RequestInfo, rng) -> Forward | Redirect | Reject:
        """Route one request: a :class:`Forward`, :class:`Redirect` or :class:`Reject`."""
        self._decides += 1
        dest = self._cache.get(req.authority)
        if dest is None:
            dest = self._resolve(req.authority)
            if len(self._cache) >= AUTHORITY_CACHE_SIZE:
                self._cache.clear()
            self._cache[req.authority] = dest
        if dest.reject is not None:
            self._decisions["reject"] += 1
            return dest.reject
        for rule in dest.rules:
            for m in rule.matchers:
                if not m(req):
                    break
            else:
                break
        core = rule.core
        if core is not None and core.redirect is not None:
            self._decisions["redirect"] += 1
            return _redirect(core, req)
        backends = rule.backends
        if len(backends) == 1:
            fwd = backends[0].forward
        else:
            i = bisect_right(rule.cum, rng.random() * rule.total)
            fwd = backends[i if i < len(backends) else rule.last].forward
        headers = req.headers
        if rule.dynamic or TIMEOUT_HEADER in headers or RETRIES_HEADER in headers:
            fwd = _personalise(fwd, core, req, rng)
        self._decisions["forward"] += 1
        return fwd

    # --- introspection -----------------------------------------------------------------------

    def clusters(self) -> dict[str, Cluster]:
        """Every cluster built so far, by name (admin ``/clusters``)."""
        return dict(self._clusters)

    def health_states(self) -> dict[tuple[str, int], HealthState]:
        """Every mesh endpoint's active health-check state, by ``(address, port)``: what the
        sidecar's health-checker probes and feeds (``record_probe``). Carried to the next table
        with the endpoint, like the balancer's host state."""
        return {ep: hs.health for ep, hs in self._host_states.items()}

    def destination_of(self, authority: str) -> str | None:
        """The service FQDN (or external host) a Host value routes to; ``None`` if refused."""
        dest = self._cache.get(authority) or self._resolve(authority)
        return None if dest.reject is not None else dest.fqdn

    def statistics(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "source": self.source.fqdn(self.domain) if self.source is not None else None,
            "services": len(self._mesh),
            "rules": sum(len(d.rules) - 1 for d in self._mesh.values()),
            "egress_rules": len(self._egress_exact) + len(self._egress_wild),
            "clusters": len(self._clusters),
            "decisions": self._decides,
            **self._decisions,
            "cached_hosts": len(self._cache),
            "problems": len(self.problems),
        }

    def __repr__(self) -> str:
        who = self.source.fqdn(self.domain) if self.source is not None else "unknown caller"
        return (f"<RouteTable v{self.version} for {who}: services={len(self._mesh)} "
                f"clusters={len(self._clusters)} decisions={self._decides}>")


def _redirect(core: _Core, req: RequestInfo) -> Redirect:
    rd = core.redirect
    authority = rd.authority or req.authority
    path = req.path
    if rd.uri is not None:
        q = path.find("?")
        path = rd.uri if ("?" in rd.uri or q < 0) else rd.uri + path[q:]
    return Redirect(REDIRECT_STATUS, f"{req.scheme}://{authority}{path}", core.name)


def _personalise(fwd: Forward, core: _Core | None, req: RequestInfo, rng) -> Forward:
    """The per-request parts of a Forward: header overrides, fault rolls, path rewrite."""
    changes: dict[str, Any] = {}
    headers = req.headers
    if TIMEOUT_HEADER in headers:
        t = timeout_override(headers)
        if t is not None:
            changes["timeout"] = t
    if RETRIES_HEADER in headers:
        n = retries_override(headers)
        if n is not None:
            if core is not None:
                changes["retry"] = core.retry_with(n)
            else:
                changes["retry"] = None if n == 0 else RetryPolicy(n)
    if core is not None:
        if core.fault is not None:
            delay, abort = core.fault.roll(rng)
            if delay is not None:
                changes["delay"] = delay
            if abort is not None:
                changes["abort_status"] = abort
        if core.rewrite_uri is not None:
            path = req.path
            if core.uri_prefix is not None and path.startswith(core.uri_prefix):
                changes["rewrite_path"] = core.rewrite_uri + path[len(core.uri_prefix):]
            else:
                q = path.find("?")
                changes["rewrite_path"] = core.rewrite_uri + (path[q:] if q >= 0 else "")
    return _replace(fwd, **changes) if changes else fwd


def compile_routes(snapshot: Any, *, source: SourceIdentity | None = None,
                   previous: RouteTable | None = None) -> RouteTable:
    """Compile a Snapshot into the :class:`RouteTable` of the sidecar ``source`` (``None``: an
    unknown caller, e.g. the ingress). ``previous`` carries balancer state (round-robin cursors,
    in-flight counts, latency estimates, circuit-breaker accounting, outlier ejections, health)
    over to clusters and hosts that still exist."""
    return RouteTable(snapshot, source, previous)

