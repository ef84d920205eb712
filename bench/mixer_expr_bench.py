"""Micro-benchmark: nanoseconds per evaluation of compiled Mixer attribute expressions.

Cases are the docs' expressions (concepts.md §12.10–12.11, telemetry-security.md §3.2, §11): the
two-clause match the issue budgets (< 1 µs), the three-clause deny rule of the access-control task,
a ``|`` default chain with its left sides missing, and a rule whose attribute is missing. Each
evaluates over a bag of a realistic inbound request (~20 attributes). Run:

    .venv/bin/python bench/mixer_expr_bench.py [N]

Prints one line per case: the best of 5 runs of N calls of ``evaluate`` (and of ``matches``, the
rule-match path, for BOOL cases) and the compile time of the expression.
"""

from __future__ import annotations

import sys
import time

from trimesh.mixer import Bag, compile_expression

CASES = [
    ("match, 2 clauses (budget < 1 µs)", "BOOL",
     'destination.service == "ratings.default.svc.cluster.local" && source.labels["version"] == "v3"'),
    ("deny rule, 3 clauses", "BOOL",
     'destination.labels["app"] == "ratings" && source.labels["app"]=="reviews" && '
     'source.labels["version"] == "v3"'),
    ("default chain, 2 misses", None, 'source.labels["team"] | source.name | "unknown"'),
    ("missing attribute", "BOOL", 'request.auth.principal == "admin"'),
    ("match() glob", "BOOL", 'match(destination.service, "*.default.svc.cluster.local")'),
    ("regex .matches", "BOOL", '"^ratings\\\\.".matches(destination.service)'),
]

REQUEST = {
    "source.service": "reviews.default.svc.cluster.local",
    "source.namespace": "default",
    "source.labels": {"app": "reviews", "version": "v3"},
    "source.user": "cluster.local/ns/default/sa/default",
    "source.ip": "127.0.0.12",
    "destination.service": "ratings.default.svc.cluster.local",
    "destination.namespace": "default",
    "destination.labels": {"app": "ratings", "version": "v1"},
    "destination.ip": "127.0.0.13",
    "destination.port": 9080,
    "request.headers": {"host": "ratings:9080", "user-agent": "python", "x-request-id": "abc"},
    "request.path": "/ratings/0",
    "request.host": "ratings:9080",
    "request.method": "GET",
    "request.scheme": "http",
    "request.size": 0,
    "request.useragent": "python",
    "request.id": "abc",
    "context.protocol": "http",
    "connection.mtls": False,
}


def best_ns(fn, bag, n: int) -> float:
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter_ns()
        for _ in range(n):
            fn(bag)
        best = min(best, (time.perf_counter_ns() - t0) / n)
    return best


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    bag = Bag(REQUEST)
    for label, expected, text in CASES:
        t0 = time.perf_counter_ns()
        expr = compile_expression(text, expected=expected)
        compile_us = (time.perf_counter_ns() - t0) / 1e3
        result = expr.evaluate(bag)
        matches = (f"{best_ns(expr.matches, bag, n):6.0f} ns/matches" if expected == "BOOL"
                   else " " * 16)
        print(f"{label:34s} {best_ns(expr.evaluate, bag, n):6.0f} ns/evaluate {matches}  "
              f"(compile {compile_us:4.0f} µs) -> {result!r}")


if __name__ == "__main__":
    main()
