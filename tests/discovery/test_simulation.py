"""Acceptance of the gossip layer by simulation: the real pure core, sealed packets, a seeded
network and virtual time (trimesh.testing.SimCluster). Every assertion message names the seed."""

from __future__ import annotations

import math

import pytest

from trimesh.discovery._messages import ALIVE, DEAD, LEFT
from trimesh.testing import SimCluster, SimNetwork


def _record(cluster: SimCluster, kind: str, about: str | None = None) -> dict[str, float]:
    """First time each member reported a ``kind`` event (about ``about``, if given)."""
    seen: dict[str, float] = {}

    def listener(now, name, event):
        if getattr(event, "kind", None) == kind and (about is None or event.member.name == about):
            seen.setdefault(name, now)
    cluster.listeners.append(listener)
    return seen


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_join_reaches_9999_percent_of_1000_members_within_2_5_s(seed):
    n = 1000
    cluster = SimCluster.converged(n, seed=seed)
    cluster.run_for(2.0)
    joined = _record(cluster, "join", about="newcomer")
    t0 = cluster.now
    cluster.add_node("newcomer")
    wanted = math.ceil(0.9999 * n)
    cluster.run_until(t0 + 10.0, until=lambda: len(joined) >= wanted, check_every=0.1)
    assert len(joined) >= wanted, f"seed={seed}: only {len(joined)}/{n} learned the join in 10 s"
    times = sorted(t - t0 for t in joined.values())
    reached = times[wanted - 1]
    assert reached <= 2.5, f"seed={seed}: 99.99 % reached after {reached:.3f} s (> 2.5 s)"
    # compound datagrams stay within one UDP buffer
    largest = cluster.network.stats["largest_datagram"]
    assert 0 < largest <= cluster.config.udp_buffer_size, f"seed={seed}: datagram of {largest} B"


@pytest.mark.parametrize("seed", [21, 22])
def test_crashed_member_declared_dead_by_everyone_within_the_config_bound(seed):
    n = 100
    cluster = SimCluster.converged(n, seed=seed)
    cluster.run_for(3.0)
    failed = _record(cluster, "fail", about="n7")
    wrong = _record(cluster, "fail")
    t0 = cluster.now
    cluster.crash("n7")
    bound = cluster.config.dead_detection_bound(n)
    cluster.run_until(t0 + bound + 30, until=lambda: len(failed) == n - 1, check_every=0.5)
    assert len(failed) == n - 1, f"seed={seed}: {len(failed)}/{n - 1} declared n7 dead"
    latest = max(failed.values()) - t0
    earliest = min(failed.values()) - t0
    assert latest <= bound, f"seed={seed}: last declaration after {latest:.2f} s > bound {bound:.2f} s"
    # nobody gave up on it before Lifeguard's suspicion floor, and nobody else was accused
    assert earliest >= cluster.config.suspicion_min_timeout(n), f"seed={seed}: {earliest:.2f} s"
    assert set(wrong) == set(failed), f"seed={seed}: unexpected failures {wrong}"
    assert all(node.member("n7").state == DEAD for node in cluster.live_nodes()), f"seed={seed}"


def test_ten_percent_loss_for_ten_minutes_declares_no_live_member_dead():
    seed = 31
    n = 100
    cluster = SimCluster.converged(n, seed=seed, network=SimNetwork(seed, loss=0.10))
    failures = []
    cluster.listeners.append(
        lambda now, name, ev: getattr(ev, "kind", None) == "fail" and failures.append(
            (round(now, 3), name, ev.member.name)))
    cluster.run_for(600.0)
    assert failures == [], f"seed={seed}: live members declared dead: {failures[:5]}"
    stats = [node.statistics() for node in cluster.nodes.values()]
    # the run really exercised the detector: probes failed, suspicions were raised and refuted
    assert sum(s["probe_failures"] for s in stats) > 0, f"seed={seed}"
    assert sum(s["refutations"] for s in stats) > 0, f"seed={seed}"
    assert cluster.network.stats["lost"] > 0.09 * cluster.network.stats["datagrams"]
    assert cluster.views_agree(), f"seed={seed}: views differ after the run"


@pytest.mark.parametrize("seed", [41, 42])
def test_partition_and_heal_converge_and_carry_config_written_during_the_split(seed):
    n = 40
    cluster = SimCluster.converged(n, seed=seed)
    cluster.run_for(2.0)
    side_a = {f"n{i}" for i in range(n // 2)}
    side_b = set(cluster.nodes) - side_a
    cluster.network.split(side_a)
    t0 = cluster.now
    split = cluster.run_until(
        t0 + 120, check_every=1.0,
        until=lambda: all(len(node.live_members()) == n // 2 for node in cluster.nodes.values()))
    assert split, f"seed={seed}: the sides never gave each other up"
    obj = {"apiVersion": "config.istio.io/v1alpha2", "kind": "RouteRule",
           "metadata": {"name": "reviews-default", "namespace": "default"},
           "spec": {"destination": {"name": "reviews"}, "route": [{"labels": {"version": "v1"}}]}}
    cluster.put_config("n0", "RouteRule", "default", "reviews-default", 7, obj)
    def holders():
        return {name for name, node in cluster.nodes.items()
                if node.config_entry("RouteRule", "default", "reviews-default") is not None}
    # gossip, then push/pull (30 s at this size) bring it to all of side A, never across
    cluster.run_until(cluster.now + 60, until=lambda: holders() >= side_a, check_every=1.0)
    assert holders() == side_a, f"seed={seed}: config crossed the partition or missed side A"
    cluster.network.heal()
    t1 = cluster.now
    healed = cluster.run_until(
        t1 + 300, check_every=1.0,
        until=lambda: cluster.views_agree() and all(
            node.config_entry("RouteRule", "default", "reviews-default") is not None
            for node in cluster.nodes.values()))
    assert healed, f"seed={seed}: not converged 300 s after the heal"
    for name in side_b:
        entry = cluster.nodes[name].config_entry("RouteRule", "default", "reviews-default")
        assert entry.revision == 7 and entry.obj == obj, f"seed={seed}: {name} has {entry}"
    for node in cluster.nodes.values():
        assert all(m.state == ALIVE for m in node.members()), f"seed={seed}: {node!r}"


def test_graceful_leave_is_a_leave_not_a_failure():
    seed = 51
    cluster = SimCluster.converged(30, seed=seed)
    cluster.run_for(2.0)
    left = _record(cluster, "leave", about="n4")
    failed = _record(cluster, "fail")
    cluster.leave("n4")
    cluster.run_until(cluster.now + 5, until=lambda: len(left) == 29, check_every=0.1)
    assert cluster.nodes["n4"].leave_sent()
    cluster.crash("n4")  # the process exits after its leave went out
    cluster.run_for(60.0)
    assert len(left) == 29 and failed == {}, f"seed={seed}: left={len(left)} failed={failed}"
    assert all(node.member("n4").state == LEFT for node in cluster.live_nodes())


def test_metadata_update_reaches_every_registry():
    from trimesh.config import make_instance
    seed = 61
    meta = lambda i: [make_instance("reviews" if i % 2 else "ratings", f"127.0.0.{i + 2}", 9080,
                                    labels={"version": "v1"})]
    cluster = SimCluster.converged(50, seed=seed, meta=meta)
    cluster.run_for(1.0)
    assert len(cluster.nodes["n0"].registry()) == 50
    sick = [make_instance("reviews", "127.0.0.5", 9080, labels={"version": "v1"}, healthy=False)]
    cluster.update_meta("n3", sick)
    def everyone_sees_it():
        return all(any(i.address == "127.0.0.5" and not i.healthy for i in node.registry())
                   for node in cluster.nodes.values())
    assert cluster.run_until(cluster.now + 5, until=everyone_sees_it), f"seed={seed}"
    assert all(node.member("n3").incarnation == 1 for node in cluster.nodes.values())


def test_duplication_and_reordering_change_nothing():
    seed = 81
    network = SimNetwork(seed, duplicate=0.2, reorder=0.2, reorder_delay=0.3, delay=(0.001, 0.05))
    cluster = SimCluster.converged(100, seed=seed, network=network)
    failures = _record(cluster, "fail")
    joined = _record(cluster, "join", about="late")
    cluster.run_for(2.0)
    cluster.add_node("late")
    cluster.run_for(60.0)
    assert failures == {} and len(joined) == 100, f"seed={seed}: {failures} {len(joined)}"
    assert network.stats["duplicated"] > 0 and network.stats["reordered"] > 0
    replays = sum(n.statistics()["dropped_replay"] for n in cluster.nodes.values())
    # every duplicate delivered is caught by the replay cache (a few are still in flight)
    assert 0.99 * network.stats["duplicated"] <= replays <= network.stats["duplicated"], f"seed={seed}"


def test_rolling_key_rotation_keeps_the_group_whole():
    """Serf's procedure, one member at a time with gossip running: install the new key
    everywhere, use it everywhere, remove the old one. Nobody is declared dead."""
    seed = 91
    cluster = SimCluster.converged(20, seed=seed, own_keyrings=True)
    failed = _record(cluster, "fail")
    new_key = b"N" * 32
    cluster.run_for(2.0)
    for step in ("install", "use", "remove"):
        for node in cluster.nodes.values():
            keyring = node.codec.keyring
            getattr(keyring, step)(new_key if step != "remove" else cluster.key)
            cluster.run_for(0.5)
        cluster.run_for(5.0)
    cluster.run_for(60.0)
    assert failed == {} and cluster.views_agree(), f"seed={seed}: {failed}"
    assert all(n.codec.keyring.keys == (new_key,) for n in cluster.nodes.values())
    assert sum(n.statistics()["dropped_auth"] for n in cluster.nodes.values()) == 0
    # and a member still on the old key alone is now shut out
    cluster.add_node("stale", seeds=["n0"])  # its keyring holds only the old key
    cluster.run_for(5.0)
    assert cluster.count_knowing("stale") == 0
    assert cluster.nodes["n0"].statistics()["dropped_auth"] >= 1
