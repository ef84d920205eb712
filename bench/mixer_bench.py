"""Benchmark: what Mixer's policy stage costs a request (docs/mixer.md "Caching", issue 13).

1. **Cached check, added CPU per request**: the sidecar's :class:`trimesh.mixer.PolicyCheck` with
   the docs' ``denyreviewsv3`` rule (which does not match these requests: reviews v1 → ratings)
   and a warm cache, called on a prepared exchange — the whole stage (bag, key, lookup), measured
   as process CPU time per call. "No policy" costs nothing (the inbound skips the stage), so the
   per-call figure is the added CPU.
2. **Uncached check round trip**: the same stage with a cache that never hits (every request a
   new ``request.path`` and a rule reading it), against a :class:`trimesh.mixer.MixerService` on
   loopback in the same process: p50 / p99 wall time of one Check (encode, TCP, decide, decode).
3. **Quota decisions per second**: :meth:`MixerConfig.decide` with the docs' rate-limit files
   (check, QuotaSpec charges, memquota), in process; and through the service.

Run: ``.venv/bin/python bench/mixer_bench.py [N]`` (default 20000). Addresses: 127.0.170.1.
"""

from __future__ import annotations

import pathlib
import sys
import time

import trio

import trimesh.mixer  # noqa: F401
from trimesh.config import Snapshot, load_text, make_instance
from trimesh.mixer import SOURCE_HEADER, MixerClient, MixerConfig, MixerService, PolicyCheck
from trimesh.mixer import source_header_value

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "mixer"))
from test_runtime import DENY_LABEL, RATE, docs  # noqa: E402  (the docs' YAML, as the tests load it)
from test_service import RATINGS, FakeExchange  # noqa: E402

HOST = "127.0.170.1"
PEER = "127.0.170.9"
PATH_RULE = """apiVersion: config.istio.io/v1alpha2
kind: rule
metadata:
  name: bypath
spec:
  match: request.path == "/never" && source.labels["version"] == "v3"
  actions:
  - handler: denyreviewsv3handler.denier.default
    instances: [ denyreviewsv3request.checknothing.default ]
"""


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


async def cached(n: int, svc: MixerService) -> None:
    snap = Snapshot(docs(text=DENY_LABEL), [make_instance("reviews", PEER, 9080)], version=1)
    policy = PolicyCheck(MixerClient([svc.address]), RATINGS, snapshot=lambda: snap)
    ex = FakeExchange("v1")
    assert await policy.check(ex) is None  # the one call that fills the cache
    start = time.process_time()
    for _ in range(n):
        await policy.check(ex)
    cpu = time.process_time() - start
    st = policy.statistics()
    # an OK answer is reusable 10000 times (Mixer's default use count): a refill every 10000
    print(f"cached check (non-matching deny rule): {cpu / n * 1e6:6.2f} µs CPU added per request"
          f" ({n} requests, {st['cache_hits']} cache hits, {st['calls'] - 1} refills)")
    await policy.client.aclose()


async def uncached(n: int, svc: MixerService) -> None:
    objs = docs(text=DENY_LABEL + "---\n" + PATH_RULE)
    svc.set_objects(objs, 2)
    snap = Snapshot(objs, [make_instance("reviews", PEER, 9080)], version=2)
    policy = PolicyCheck(MixerClient([svc.address]), RATINGS, snapshot=lambda: snap)
    src = source_header_value("reviews", "default", {"app": "reviews", "version": "v1"})
    times = []
    for i in range(n):
        ex = FakeExchange("v1", path=f"/ratings/{i}")
        ex.head.headers[1] = (SOURCE_HEADER, src)
        t = time.perf_counter()
        await policy.check(ex)
        times.append(time.perf_counter() - t)
    assert policy.statistics()["cache_hits"] == 0
    print(f"uncached check round trip: p50 {pct(times, 50) * 1e6:7.1f} µs, "
          f"p99 {pct(times, 99) * 1e6:7.1f} µs ({n} checks)")
    await policy.client.aclose()


async def quotas(n: int, svc: MixerService) -> None:
    cfg = MixerConfig.compile(docs(*RATE))
    bags = [{**RATINGS, "source.labels": {"app": "reviews", "version": v}} for v in ("v1", "v2")]
    start = time.perf_counter()
    for i in range(n):
        cfg.decide(bags[i & 1], i * 1e-5)
    el = time.perf_counter() - start
    print(f"quota decisions in process: {n / el:10,.0f} /s ({el / n * 1e6:.2f} µs each)")
    svc.set_objects(docs(*RATE), 3)
    client = MixerClient([svc.address])
    m = n // 4
    start = time.perf_counter()
    for i in range(m):
        await client.check(bags[i & 1], f"q{i}")
    el = time.perf_counter() - start
    print(f"quota decisions through the service (one connection): {m / el:10,.0f} /s")
    await client.aclose()


async def main(n: int) -> None:
    svc = MixerService(docs(text=DENY_LABEL), revision=1)
    async with trio.open_nursery() as nursery:
        await nursery.start(svc.serve, HOST, 0)
        await cached(n, svc)
        await uncached(max(1000, n // 10), svc)
        await quotas(n, svc)
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 20000)
