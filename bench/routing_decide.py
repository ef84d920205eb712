"""Micro-benchmark: microseconds per ``RouteTable.decide`` with the BookInfo rules.

Rules: route-rule-all-v1 (4 rules), the jason cookie rule (regex), a 50/50 reviews split, a ratings
delay fault at 10 %, an egress rule. Requests: a mix of the common cases. Run:

    /work/venv/bin/python bench/routing_decide.py [N]

Prints one line per case and the compile time of the table. Target: < 5 µs per decide.
"""

from __future__ import annotations

import random
import sys
import time

from trimesh.config import Snapshot, make_instance, object_from_dict
from trimesh.routing import RequestInfo, SourceIdentity, compile_routes


def rule(kind, name, spec):
    return object_from_dict({"kind": kind, "metadata": {"name": name}, "spec": spec})


def bookinfo_snapshot() -> Snapshot:
    objs = [rule("RouteRule", f"{s}-default", {"destination": {"name": s}, "precedence": 1,
                                               "route": [{"labels": {"version": "v1"}}]})
            for s in ("productpage", "details", "ratings")]
    objs.append(rule("RouteRule", "reviews-default", {
        "destination": {"name": "reviews"}, "precedence": 1,
        "route": [{"labels": {"version": "v1"}, "weight": 50},
                  {"labels": {"version": "v3"}, "weight": 50}]}))
    objs.append(rule("RouteRule", "reviews-test-v2", {
        "destination": {"name": "reviews"}, "precedence": 2,
        "match": {"request": {"headers": {"cookie": {"regex": "^(.*?;)?(user=jason)(;.*)?$"}}}},
        "route": [{"labels": {"version": "v2"}}]}))
    objs.append(rule("RouteRule", "ratings-delay", {
        "destination": {"name": "ratings"}, "precedence": 2,
        "match": {"source": {"name": "reviews"}},
        "route": [{"labels": {"version": "v1"}}],
        "httpFault": {"delay": {"percent": 10, "fixedDelay": "5s"}}}))
    objs.append(rule("EgressRule", "foo", {"destination": {"service": "*.foo.com"},
                                           "ports": [{"port": 80, "protocol": "http"}]}))
    insts = []
    for i, (svc, versions) in enumerate({"productpage": ["v1"], "details": ["v1"],
                                         "reviews": ["v1", "v2", "v3"],
                                         "ratings": ["v1"]}.items()):
        for j, v in enumerate(versions):
            for k in range(3):
                insts.append(make_instance(svc, f"127.{i}.{j}.{k + 1}", 9080,
                                           labels={"version": v}))
    return Snapshot(objs, insts, version=1)


CASES = {
    "details (single v1 rule)": RequestInfo(method="GET", authority="details:9080",
                                            path="/details/0", headers={"user-agent": "bench"}),
    "reviews, no cookie (regex miss, 50/50 draw)": RequestInfo(
        method="GET", authority="reviews:9080", path="/reviews/0",
        headers={"cookie": "session=abc; theme=dark", "user-agent": "bench"}),
    "reviews, jason (regex hit)": RequestInfo(method="GET", authority="reviews:9080",
                                              path="/reviews/0", headers={"cookie": "user=jason"}),
    "ratings from reviews (10 % delay roll)": RequestInfo(method="GET", authority="ratings:9080",
                                                          path="/ratings/0", headers={}),
    "reviews + x-envoy-max-retries header": RequestInfo(
        method="GET", authority="reviews:9080", path="/reviews/0",
        headers={"x-envoy-max-retries": "2"}),
    "egress a.foo.com": RequestInfo(method="GET", authority="a.foo.com", path="/", headers={}),
    "unknown host (404 NR)": RequestInfo(method="GET", authority="nowhere:80", path="/",
                                         headers={}),
}


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    snap = bookinfo_snapshot()
    t0 = time.perf_counter()
    table = compile_routes(snap, source=SourceIdentity(service="reviews",
                                                       labels={"version": "v2"}))
    compile_ms = (time.perf_counter() - t0) * 1000
    rng = random.Random(1)
    print(f"compile_routes: {compile_ms:.2f} ms for {len(snap.objects)} objects, "
          f"{len(snap.instances)} instances")
    decide = table.decide
    for name, req in CASES.items():
        decide(req, rng)  # warm the host cache
        t0 = time.perf_counter()
        for _ in range(n):
            decide(req, rng)
        us = (time.perf_counter() - t0) / n * 1e6
        print(f"{us:6.2f} µs/decide  {name}")


if __name__ == "__main__":
    main()
