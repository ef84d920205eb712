"""Micro-benchmark: quota decisions per second of trimesh.quota.MemQuota with the docs' handler.

The docs' ``ratelimit-handler.yaml`` (5000/s default, 1/s override for reviews v2 -> ratings) and
the four dimensions of ``ratelimit-rule.yaml``, already evaluated. Cases: one hot counter under its
limit, the 1/s override refusing, a dedup-id replay, and a fresh dimension tuple per call (counter
creation and the automatic idle sweep). Virtual time: ``now`` advances 10 µs per decision. Run:

    .venv/bin/python bench/quota_bench.py [N]

Prints decisions per second and microseconds per decision for each case.
"""

from __future__ import annotations

import pathlib
import sys
import time

from trimesh.config import load_file
from trimesh.quota import MemQuota

FIXTURE = pathlib.Path(__file__).resolve().parents[1] / "tests/fixtures/ratelimit-handler.yaml"
Q = "requestcount.quota.istio-system"


def dims(source_version: str, destination_version: str = "v1") -> dict[str, str]:
    return {"source": "reviews", "sourceVersion": source_version, "destination": "ratings",
            "destinationVersion": destination_version}


def run(label: str, n: int, call) -> None:
    mq = MemQuota.from_params(load_file(str(FIXTURE))[0].spec)
    start = time.perf_counter()
    for i in range(n):
        call(mq, i, i * 1e-5)
    elapsed = time.perf_counter() - start
    print(f"{label:<34} {n / elapsed:>12,.0f} decisions/s {elapsed / n * 1e6:>8.2f} µs")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    hot = dims("v3")
    limited = dims("v2")
    run("default counter (5000/s)", n, lambda mq, i, now: mq.alloc(Q, hot, 1, now))
    run("override refusing (1/s)", n, lambda mq, i, now: mq.alloc(Q, limited, 1, now))
    run("dedup replay", n, lambda mq, i, now: mq.alloc(Q, hot, 1, now, dedup_id=str(i >> 1)))
    run("fresh tuple per call", n,
        lambda mq, i, now: mq.alloc(Q, dims("v3", str(i)), 1, now))


if __name__ == "__main__":
    main()
