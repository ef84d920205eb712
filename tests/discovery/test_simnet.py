"""The simulated network itself: seeded, faithful to its parameters, partitions by predicate."""

from __future__ import annotations

import pytest

from trimesh.testing import SimCluster, SimNetwork


def _fates(seed):
    net = SimNetwork(seed, loss=0.2, duplicate=0.1, reorder=0.1, delay=(0.001, 0.01))
    return [net.datagram("a", "b", 100) for _ in range(2000)], net


def test_same_seed_same_fates_and_rates_match_parameters():
    first, net = _fates(5)
    again, _ = _fates(5)
    other, _ = _fates(6)
    assert first == again and first != other
    stats = net.statistics()
    assert stats["datagrams"] == 2000 and stats["datagram_bytes"] == 200_000
    assert 0.17 < stats["lost"] / 2000 < 0.23
    assert 0.07 < stats["duplicated"] / (2000 - stats["lost"]) < 0.13
    assert all(0.001 <= d <= 0.01 + net.reorder_delay for copies in first for d in copies)
    assert "SimNetwork seed=5" in repr(net)


def test_partition_blocks_both_ways_and_heals():
    net = SimNetwork(1)
    net.split({"a", "b"})
    assert net.datagram("a", "c", 10) == [] and net.datagram("c", "a", 10) == []
    assert net.stream("a", "c", 10) is None and net.datagram("a", "b", 10) != []
    net.heal()
    assert net.datagram("a", "c", 10) != [] and net.stream("c", "a", 10) is not None
    assert net.statistics()["partitioned"] == 2 and net.statistics()["streams_refused"] == 1


def test_bad_parameters_are_refused_with_the_field_named():
    with pytest.raises(ValueError, match="loss"):
        SimNetwork(loss=1.5)
    with pytest.raises(ValueError, match="delay"):
        SimNetwork(delay=(0.2, 0.1))


def test_cluster_runs_are_reproducible_by_seed():
    def run(seed):
        cluster = SimCluster.converged(30, seed=seed, network=SimNetwork(seed, loss=0.05))
        cluster.add_node("x")
        cluster.run_for(20.0)
        return cluster.statistics(), [n.statistics()["bytes_sent"] for n in cluster.nodes.values()]
    assert run(3) == run(3)
    stats, _ = run(3)
    assert stats["members"] == 31 and stats["events"] > 0 and stats["net_lost"] > 0
