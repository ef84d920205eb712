"""Active health checks and latency-aware balancing with a real sidecar process: an instance
answering its health checks 503 stops receiving traffic within one check interval (and returns
after two passing checks); with PEAK_EWMA an instance slowed to 10x latency gets under 10 % of the
requests and the callers' p99 stays within 2x the p99 of an all-healthy pool."""

from __future__ import annotations

import pytest
import trio
from resilience_testkit import (
    ControlledUpstream,
    instance,
    next_address,
    start_sidecar,
    write,
)

from trimesh.samples.loadgen._load import run_load
from trimesh.testing import serve_upstream

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # a real sidecar process, seconds of load

CLUSTER = "reviews.default.svc.cluster.local"
INTERVAL = 1.0  # --health-interval (the default)


async def _upstreams(nursery, n: int, **kw) -> tuple[list[ControlledUpstream], list[str]]:
    ups = [ControlledUpstream(name=f"reviews-{i}", **kw) for i in range(n)]
    addrs = [next_address() for _ in ups]
    for up, addr in zip(ups, addrs):
        await nursery.start(serve_upstream, up, addr, 9080)
    return ups, addrs


async def test_an_instance_answering_503_to_checks_leaves_within_one_interval(tmp_path):
    sidecar = None
    async with trio.open_nursery() as nursery:
        ups, addrs = await _upstreams(nursery, 3)
        try:
            sidecar = await start_sidecar(
                tmp_path, [instance("reviews", a, 9080) for a in addrs],
                [write(tmp_path / "rules.yaml", "")],
                "--health-checks", "all", "--health-interval", str(INTERVAL))
            shed = ups[1]
            marks = {}

            async def episode():
                await trio.sleep(2.0)  # traffic built the cluster; its endpoints are probed
                marks["rounds"] = (await sidecar.admin("/stats"))["health"]["rounds"]
                marks["shed"] = trio.current_time()
                shed.health_status = 503
                await trio.sleep(3.0)
                marks["stats"] = await sidecar.cluster_stats(CLUSTER)
                marks["back"] = trio.current_time()
                shed.health_status = 200

            nursery.start_soon(episode)
            result = await run_load("http://reviews:9080/", connections=2, qps=100,
                                    duration=8.0, proxy=sidecar.proxy, timeout=10)
            health = (await sidecar.admin("/stats"))["health"]
            marks["end"] = trio.current_time()
        finally:
            if sidecar is not None:
                sidecar.stop()
            nursery.cancel_scope.cancel()
    served = shed.served_at
    # Allowances for a loaded machine, measured in this run: the checker's actual period (its
    # INTERVAL plus its own scheduling delays) and the slowest request (one routed before the
    # verdict can arrive that much later).
    rounds = max(1, health["rounds"] - marks["rounds"])
    period = max(INTERVAL, (marks["end"] - marks["shed"]) / rounds)
    in_flight = max(result.durations)
    during = [t for t in served if marks["shed"] <= t < marks["back"]]
    after = [t for t in served if t >= marks["back"]]
    print(f"health 503: {dict(result.codes)}; to the shedding instance while shedding "
          f"{len(during)}, last at +{(during[-1] - marks['shed']) if during else 0:.3f}s; back "
          f"at +{(after[0] - marks['back']) if after else -1:.3f}s; checker {health['rounds']} "
          f"rounds, period {period:.3f}s; slowest request {in_flight:.3f}s")
    assert result.codes.get(200, 0) == result.calls >= 600  # shedding loses no request
    assert len([t for t in served if t < marks["shed"]]) >= 30
    # Out within one check interval (plus what was already on its way).
    out_by = period + max(0.25, in_flight)
    assert not during or during[-1] - marks["shed"] <= out_by, (during[-1] - marks["shed"], out_by)
    assert marks["stats"]["membership_healthy"] == 2
    # Back after HEALTHY_THRESHOLD (2) passing checks: between 1 and 2 intervals.
    assert after, "the instance never came back"
    back_by = 2 * period + max(0.3, in_flight)
    back = after[0] - marks["back"]
    assert INTERVAL - 0.1 <= back <= back_by, (back, back_by)
    assert health["endpoints"][f"{addrs[1]}:9080"] == "healthy" and health["flips"] >= 2


EWMA_POLICY = """\
apiVersion: config.istio.io/v1alpha2
kind: DestinationPolicy
metadata:
  name: reviews-ewma
spec:
  destination:
    name: reviews
  loadBalancing:
    name: PEAK_EWMA
"""
BASE_DELAY = 0.020  # seconds each instance takes
SLOW = 10  # the slowed instance takes 10x
MEASURED = 900  # requests measured with the slow instance (p99 = the 9th slowest)
BASELINE = 450  # all-healthy requests before and again after: 900 in all, the same p99 rank


async def test_peak_ewma_avoids_a_slow_instance(tmp_path):
    sidecar = None
    async with trio.open_nursery() as nursery:
        ups, addrs = await _upstreams(nursery, 3, delay=BASE_DELAY)
        try:
            sidecar = await start_sidecar(
                tmp_path, [instance("reviews", a, 9080) for a in addrs],
                [write(tmp_path / "rules.yaml", EWMA_POLICY)])
            healthy = await run_load("http://reviews:9080/", connections=3, calls=BASELINE,
                                     proxy=sidecar.proxy, timeout=10)
            even = [len(u.served_at) for u in ups]
            slow = ups[2]
            slow.delay = BASE_DELAY * SLOW
            # The balancer learns of the slowdown from the first slow answers (a handful of
            # requests are on their way meanwhile); then the steady state is measured.
            warm = await run_load("http://reviews:9080/", connections=3, calls=30,
                                  proxy=sidecar.proxy, timeout=10)
            t_slow = trio.current_time()
            skewed = await run_load("http://reviews:9080/", connections=3, calls=MEASURED,
                                    proxy=sidecar.proxy, timeout=10)
            t_end = trio.current_time()
            stats = await sidecar.cluster_stats(CLUSTER)
            # The baseline brackets the measurement: a machine whose load changes during the
            # test moves both sides of the comparison, not only one.
            slow.delay = BASE_DELAY
            after = await run_load("http://reviews:9080/", connections=3, calls=BASELINE,
                                   proxy=sidecar.proxy, timeout=10)
        finally:
            if sidecar is not None:
                sidecar.stop()
            nursery.cancel_scope.cancel()
    shares = [len([t for t in u.served_at if t_slow <= t < t_end]) for u in ups]
    healthy.durations += after.durations
    p99_healthy, p99_skewed = healthy.percentile(99), skewed.percentile(99)
    print(f"PEAK_EWMA: all healthy {even}, p99 {p99_healthy * 1e3:.1f} ms; one slowed 10x: "
          f"{shares}, p99 {p99_skewed * 1e3:.1f} ms")
    assert stats["balancer"] == "PEAK_EWMA"
    assert healthy.codes == {200: BASELINE} and skewed.codes == {200: MEASURED}
    assert after.codes == {200: BASELINE}
    assert warm.codes == {200: 30}
    assert min(even) >= 50  # all three shared the load while healthy
    assert sum(shares) == MEASURED
    assert shares[2] / MEASURED < 0.10, shares
    assert p99_skewed <= 2 * p99_healthy, (p99_skewed, p99_healthy)
