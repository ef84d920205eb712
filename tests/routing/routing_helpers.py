"""Builders shared by the routing tests: config objects from the docs' dict shape, BookInfo."""

from __future__ import annotations

import random
from typing import Any

import msgspec

from trimesh.config import (ConfigObject, Duration, Snapshot, lookup_kind, make_instance,
                            object_from_dict, parse_duration)
from trimesh.routing import RequestInfo, SourceIdentity, compile_routes

BOOKINFO = {  # service → versions (the docs' sample application)
    "productpage": ["v1"],
    "details": ["v1"],
    "reviews": ["v1", "v2", "v3"],
    "ratings": ["v1"],
}


def obj(kind: str, name: str, spec: dict[str, Any], namespace: str = "default"):
    return object_from_dict({"apiVersion": "config.istio.io/v1alpha2", "kind": kind,
                             "metadata": {"name": name, "namespace": namespace}, "spec": spec})


def unvalidated(kind: str, name: str, spec: dict[str, Any], namespace: str = "default"):
    """A config object built without validation: what a table must survive even though the
    loader would refuse it (validation and compile are separate steps)."""
    def dec_hook(typ, value):
        if typ is Duration:
            return parse_duration(value)
        raise NotImplementedError
    info = lookup_kind(kind)
    typed = msgspec.convert(spec, info.spec_type, dec_hook=dec_hook)
    return ConfigObject(kind=info.kind, name=name, namespace=namespace, spec=typed)


def route_rule(name: str, **spec: Any):
    return obj("RouteRule", name, spec)


def policy(name: str, **spec: Any):
    return obj("DestinationPolicy", name, spec)


def egress(name: str, **spec: Any):
    return obj("EgressRule", name, spec)


def bookinfo_instances(per_version: int = 1, **unhealthy: Any):
    """Each (service, version) gets ``per_version`` instances on its own loopback address."""
    out = []
    n = 1
    for svc, versions in BOOKINFO.items():
        for v in versions:
            for k in range(per_version):
                out.append(make_instance(svc, f"127.0.{n}.{k + 1}", 9080, labels={"version": v}))
            n += 1
    return out


def all_v1_rules():
    """samples/bookinfo/kube/route-rule-all-v1.yaml (traffic-tasks.md §2.2)."""
    return [route_rule(f"{svc}-default", destination={"name": svc}, precedence=1,
                       route=[{"labels": {"version": "v1"}}]) for svc in BOOKINFO]


JASON_REGEX = "^(.*?;)?(user=jason)(;.*)?$"


def jason_rule():
    """route-rule-reviews-test-v2.yaml (traffic-tasks.md §2.3)."""
    return route_rule("reviews-test-v2", destination={"name": "reviews"}, precedence=2,
                      match={"request": {"headers": {"cookie": {"regex": JASON_REGEX}}}},
                      route=[{"labels": {"version": "v2"}}])


def table(objects=(), instances=None, source: SourceIdentity | None = None, previous=None,
          version: int = 1):
    snap = Snapshot(objects, bookinfo_instances() if instances is None else instances,
                    version=version)
    return compile_routes(snap, source=source, previous=previous)


PRODUCTPAGE = SourceIdentity(service="productpage", namespace="default",
                             labels={"app": "productpage", "version": "v1"})


def req(authority: str = "reviews:9080", path: str = "/", method: str = "GET",
        scheme: str = "http", **headers: str) -> RequestInfo:
    return RequestInfo(method=method, authority=authority, path=path, scheme=scheme,
                       headers={k.replace("_", "-").lower(): v for k, v in headers.items()})


def req_h(authority: str, headers: dict[str, str], path: str = "/") -> RequestInfo:
    return RequestInfo(method="GET", authority=authority, path=path, headers=headers)


def rng(seed: int = 1) -> random.Random:
    return random.Random(seed)


def versions_of(decisions) -> list[str]:
    """The ``version`` label every instance of each decision's cluster carries (one per decision;
    fails if a cluster mixes versions)."""
    out = []
    for d in decisions:
        vs = {i.labels.get("version") for i in d.cluster.instances}
        assert len(vs) == 1, (d.cluster, vs)
        out.append(vs.pop())
    return out
