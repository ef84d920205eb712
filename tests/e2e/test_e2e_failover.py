"""Issue 10's failover acceptance, in real processes: one of three instances of ``reviews`` dies
while a client sends 100 requests per second through its own sidecar, and (nearly) every request
still succeeds because retries route around the failure.

Each instance is a fake upstream app (``trimesh.testing.upstream``) with its own sidecar in front
(inbound on ADDRESS:9080). The client's sidecar routes ``http://reviews:9080/`` with the RouteRule
below (``attempts: 3``, no DestinationPolicy) to the three inbound listeners, found either in a
static ``--registry`` file or through gossip (a control and every sidecar joined to it, local
profile). The load (``e2e_fleet.open_loop``) is open loop: 1000 requests at 100/s.

- ``kill -9``: instance 0's app at 3.0 s, then its sidecar at 3.5 s. At least 99.9 % succeed (at
  most 1 of 1000 fails), in each of three runs, with either discovery.
- SIGTERM (by PID) to instance 0's sidecar at 2.0 s of 600 requests: none fails (it drains).

On failure the message lists the failed requests with their flags, their ``x-trimesh-attempts``,
and every sidecar's access-log line for them (the client's line names the last upstream tried).
"""

from __future__ import annotations

import signal

import pytest
from e2e_fleet import (failure_report, instance, next_address, open_loop, require_sidecar,
                       start_app, start_control, start_node, stop_all, wait_ready)
from e2e_harness import SERVICE_PORT, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CLUSTER = "reviews.default.svc.cluster.local"
URL = f"http://reviews:{SERVICE_PORT}/"
RATE = 100.0  # requests per second
RETRY_RULE = """\
apiVersion: config.istio.io/v1alpha2
kind: RouteRule
metadata:
  name: reviews-retry
  namespace: default
spec:
  destination:
    name: reviews
  precedence: 1
  httpReqRetries:
    simpleRetry:
      attempts: 3
"""
KILL_APP_AT = 3.0  # seconds into the load
KILL_SIDECAR_AT = 3.5
TERM_AT = 2.0


def start_fleet(log_dir, discovery: str):
    """Three reviews instances (app + sidecar) and the client's sidecar, all ready; with
    ``gossip`` a control first. Returns (apps, instance sidecars, client, every Proc)."""
    procs = []
    gossip = None
    if discovery == "gossip":
        control, gossip = start_control(log_dir)
        procs.append(control)
    addresses = [next_address() for _ in range(3)]
    apps = [start_app(log_dir, f"reviews-{i}", a) for i, a in enumerate(addresses)]
    procs += [a.proc for a in apps]
    wait_ready(apps=apps)
    nodes = [start_node(log_dir, f"reviews-{i}-sidecar", "reviews", address=a.address,
                        app=(a.address, a.port), gossip=gossip) for i, a in enumerate(apps)]
    procs += [n.proc for n in nodes]
    registry = None if gossip else [instance("reviews", n.address) for n in nodes]
    client = start_node(log_dir, "client", "client", instances=registry, config=RETRY_RULE,
                        gossip=gossip)
    procs.append(client.proc)
    wait_ready(sidecars=[*nodes, client])
    # The client routes to all three (gossip: every member joined and its app found healthy).
    wait_until(lambda: (client.admin("/clusters").json().get(CLUSTER, {}).get("statistics", {})
                        .get("membership_healthy") == 3), 20,
               f"{CLUSTER} with 3 healthy instances in the client's /clusters", client.proc)
    return apps, nodes, client, procs


def cluster_view(client) -> tuple[list, dict]:
    """The client's instances of reviews and its retry / ejection / membership counters."""
    entry = client.admin("/clusters").json().get(CLUSTER, {})
    stats = {k: v for k, v in entry.get("statistics", {}).items()
             if any(w in k for w in ("retry", "ejections_enforced_total", "membership"))}
    return entry.get("instances"), stats


def served_before(run, name: str, until: float) -> int:
    return sum(1 for o in run.outcomes if o.served_by == name and o.offset < until)


@pytest.mark.parametrize("run_number", [1, 2, 3])
@pytest.mark.parametrize("discovery", ["static", "gossip"])
async def test_kill_9_of_one_instance_under_load(tmp_path, discovery, run_number):
    require_sidecar()
    apps, nodes, client, procs = start_fleet(tmp_path, discovery)
    try:
        run = await open_loop((client.address, client.proxy_port), URL, rate=RATE, count=1000,
                              tag=f"kill9-{discovery}-{run_number}",
                              at=[(KILL_APP_AT, "app killed", apps[0].proc.kill9),
                                  (KILL_SIDECAR_AT, "sidecar killed", nodes[0].proc.kill9)])
        listed, stats = cluster_view(client)
    finally:
        stop_all(procs)  # flushes the access logs the report reads
    names = ["client", *(f"reviews-{i}-sidecar" for i in range(3))]
    report = failure_report(run, tmp_path, names)
    print(f"kill -9, {discovery} registry, run {run_number}: {run.summary()}; "
          f"the client's {CLUSTER} at the end: {listed} {stats}")
    assert len(run.outcomes) == 1000, report
    assert set(run.marks) == {"app killed", "sidecar killed"}, run.marks
    # The killed instance had its share before it died: the failure was really under load.
    assert served_before(run, "reviews-0", KILL_APP_AT) >= 50, run.codes()
    failed = len(run.failed)
    assert failed <= 1, report


async def test_sigterm_of_one_instance_sidecar_under_load(tmp_path):
    require_sidecar()
    apps, nodes, client, procs = start_fleet(tmp_path, "static")
    victim = nodes[0].proc
    try:
        run = await open_loop((client.address, client.proxy_port), URL, rate=RATE, count=600,
                              tag="sigterm",
                              at=[(TERM_AT, "sidecar SIGTERM",
                                   lambda: victim.popen.send_signal(signal.SIGTERM))])
        exited = victim.popen.poll()
        listed, stats = cluster_view(client)
    finally:
        stop_all(procs)
    names = ["client", *(f"reviews-{i}-sidecar" for i in range(3))]
    report = failure_report(run, tmp_path, names)
    print(f"SIGTERM of one sidecar, static registry: {run.summary()}; its exit status "
          f"{exited}; the client's {CLUSTER} at the end: {listed} {stats}")
    assert len(run.outcomes) == 600, report
    assert exited is not None, f"the SIGTERMed sidecar still ran at the end:\n{victim.log_tail()}"
    assert served_before(run, "reviews-0", TERM_AT) >= 30, run.codes()
    failed = len(run.failed)
    assert failed == 0, report
