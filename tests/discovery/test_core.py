"""The pure core piece by piece: formulas, Lifeguard timers, the piggyback queue, config entries,
the wire format, and the house rules (purity, public surface)."""

from __future__ import annotations

import ast
import math
import pathlib
import random

import msgpack
import msgspec
import pytest

import trimesh.discovery as discovery
from trimesh.discovery import BroadcastQueue, GossipConfig, Schedule, Send, SwimNode, WireCodec
from trimesh.discovery._messages import ALIVE, SUSPECT, Alive, Suspect, encode_message
from trimesh.testing import SimCluster

from .test_hostile import _seal

NOW = 100.0


@pytest.mark.parametrize(("n", "smin", "smax", "k", "retransmit", "pushpull"), [
    (1, 4.0, 24.0, 0, 4, 30.0),
    (3, 4.0, 24.0, 0, 4, 30.0),
    (10, 4.0, 24.0, 2, 8, 30.0),
    (100, 8.0, 48.0, 2, 12, 90.0),
    (1000, 12.0, 72.0, 2, 16, 180.0),
    (10000, 16.0, 96.0, 2, 20, 300.0),
])
def test_memberlist_formulas(n, smin, smax, k, retransmit, pushpull):
    cfg = GossipConfig()
    assert cfg.suspicion_min_timeout(n) == pytest.approx(smin)
    assert cfg.suspicion_max_timeout(n) == pytest.approx(smax)
    assert cfg.suspicion_confirmations(n) == k
    assert cfg.retransmit_limit(n) == retransmit
    assert cfg.push_pull_scaled(n) == pushpull


def test_dead_detection_bound_is_the_documented_sum():
    cfg = GossipConfig()
    # 12 probe periods + Lifeguard max (48 s at n=100) + 8 gossip rounds (4 + 2 + 2) of 0.2 s
    assert cfg.dissemination_bound(100) == pytest.approx(0.2 * (4 + 2 + 2))
    assert cfg.dead_detection_bound(100) == pytest.approx(12 + 48 + 1.6)


def test_config_validation():
    with pytest.raises(ValueError, match="probe_timeout"):
        GossipConfig(probe_timeout=2.0)
    with pytest.raises(ValueError, match="gossip_interval"):
        GossipConfig(gossip_interval=0)


def _node(n_members=10, **kw):
    cluster = SimCluster.converged(n_members, seed=3, start=NOW, **kw)
    return cluster.nodes["n0"]


def test_lifeguard_suspicion_timeout_shrinks_with_independent_confirmations():
    node = _node(10)  # n=10: min 4 s, max 24 s, k=2
    fx = node.receive_datagram(NOW, _seal([Suspect("n1", 0, "n2")], src="n2", nonce=b"a" * 12))
    timers = [f for f in fx if isinstance(f, Schedule) and f.timer[0] == "suspicion"]
    assert [t.at for t in timers] == [pytest.approx(NOW + 24.0)]
    assert node.member("n1").state == SUSPECT
    # the same accuser again is no confirmation; a second one is
    fx = node.receive_datagram(NOW + 1, _seal([Suspect("n1", 0, "n2")], src="n2", ts=NOW + 1, nonce=b"b" * 12))
    assert not [f for f in fx if isinstance(f, Schedule)]
    fx = node.receive_datagram(NOW + 1, _seal([Suspect("n1", 0, "n3")], src="n3", ts=NOW + 1, nonce=b"c" * 12))
    expected = 24 - math.log(2) / math.log(3) * (24 - 4)
    assert [f.at for f in fx if isinstance(f, Schedule)] == [pytest.approx(NOW + expected)]
    fx = node.receive_datagram(NOW + 1, _seal([Suspect("n1", 0, "n4")], src="n4", ts=NOW + 1, nonce=b"d" * 12))
    assert [f.at for f in fx if isinstance(f, Schedule)] == [pytest.approx(NOW + 4.0)]
    # k reached: more confirmations change nothing; the timer declares it dead at the floor
    fx = node.receive_datagram(NOW + 1, _seal([Suspect("n1", 0, "n5")], src="n5", ts=NOW + 1, nonce=b"e" * 12))
    assert not [f for f in fx if isinstance(f, Schedule)]
    # at the floor the accused is asked directly once more; silent, it is dead a period later
    fx = node.handle_timer(NOW + 4.0, ("suspicion", "n1", 0))
    assert [f.addr for f in fx if isinstance(f, Send)] == ["n1"]
    events = node.handle_timer(NOW + 5.0, ("suspicion", "n1", 0))
    assert [f.event.kind for f in events if type(f).__name__ == "Notify"] == ["fail"]
    assert node.statistics()["deaths_declared"] == 1


def test_refutation_and_local_health_scale_the_probe_period():
    node = _node(10)
    node.receive_datagram(NOW, _seal([Suspect("n0", 0, "n2")], nonce=b"a" * 12))
    assert node.incarnation == 1 and node.lhm == 1
    fx = node.handle_timer(NOW, ("probe",))
    probe_timers = sorted(f.at - NOW for f in fx if isinstance(f, Schedule))
    assert probe_timers == [pytest.approx(0.5 * 2), pytest.approx(1.0 * 2)]  # timeout, next probe
    ping = [f for f in fx if isinstance(f, Send)]
    assert len(ping) == 1 and len(ping[0].data) <= 1400


def test_failed_probe_without_nacks_raises_lhm_and_suspects():
    node = _node(10)
    fx = node.handle_timer(NOW, ("probe",))
    target = [f.addr for f in fx if isinstance(f, Send)][0]
    seq = node._probe.seq
    fx = node.handle_timer(NOW + 0.5, ("probe_timeout", seq))
    relays = [f.addr for f in fx if isinstance(f, Send)]
    assert len(relays) == 3 and target not in relays and "n0" not in relays
    node.receive_datagram(NOW + 0.6, _seal([discovery._messages.Nack(seq)], ts=NOW + 0.6, nonce=b"n" * 12))
    node.handle_timer(NOW + 1.0, ("probe",))
    assert node.member(target).state == SUSPECT
    assert node.lhm == 2  # three relays asked, one nack came back
    assert node.statistics()["probe_failures"] == 1 and node.statistics()["nacks_received"] == 1


def test_broadcast_queue_prefers_fresh_messages_and_retires_them():
    q = BroadcastQueue()
    q.push("a", msgspec.Raw(b"A" * 10))
    q.push("b", msgspec.Raw(b"B" * 10))
    assert q.take(15, limit=2) == [msgspec.Raw(b"B" * 10)]  # newest first among equals
    assert q.take(15, limit=2) == [msgspec.Raw(b"A" * 10)]  # then the less-sent one
    q.push("a", msgspec.Raw(b"a" * 10))  # replaces the queued message about "a"
    assert len(q) == 2 and q.replaced == 1
    assert q.take(100, limit=2) == [msgspec.Raw(b"a" * 10), msgspec.Raw(b"B" * 10)]
    assert q.take(100, limit=2) == [msgspec.Raw(b"a" * 10)] and len(q) == 0


def test_compound_datagrams_stay_under_the_buffer():
    node = _node(10)
    for i in range(200):
        node.put_config(NOW, "RouteRule", "default", f"r{i}", i + 1, {"spec": {"i": i, "pad": "x" * 50}})
    fx = node.handle_timer(NOW + 0.2, ("gossip",))
    sizes = [len(f.data) for f in fx if isinstance(f, Send)]
    assert len(sizes) == 3 and all(1200 < s <= 1400 for s in sizes), sizes


def test_config_last_writer_wins_and_tombstones_expire():
    cfg = GossipConfig(tombstone_ttl=60.0)
    cluster = SimCluster.converged(12, seed=5, config=cfg)
    cluster.put_config("n1", "RouteRule", "default", "r", 5, {"v": 5})
    cluster.put_config("n2", "RouteRule", "default", "r", 3, {"v": 3})  # older revision elsewhere
    cluster.run_for(3.0)
    entries = {node.config_entry("RouteRule", "default", "r").revision for node in cluster.nodes.values()}
    assert entries == {5}
    cluster.put_config("n4", "RouteRule", "default", "r", 6, None)  # delete
    cluster.run_for(3.0)
    assert all(node.config_entry("RouteRule", "default", "r").deleted for node in cluster.nodes.values())
    assert all(node.config_entries() == [] for node in cluster.nodes.values())
    cluster.run_for(70.0)
    assert all(node.config_entry("RouteRule", "default", "r") is None for node in cluster.nodes.values())
    assert sum(node.statistics()["tombstones_expired"] for node in cluster.nodes.values()) == 12


def test_config_too_big_for_a_datagram_spreads_by_push():
    cluster = SimCluster.converged(30, seed=6)
    big = {"spec": {"blob": "y" * 5000}}
    cluster.put_config("n0", "RouteRule", "default", "big", 1, big)
    ok = cluster.run_until(cluster.now + 5, until=lambda: all(
        node.config_entry("RouteRule", "default", "big") for node in cluster.nodes.values()))
    assert ok and cluster.network.stats["largest_datagram"] <= 1400
    assert cluster.network.stats["streams"] < 3 * 30  # pulled once by those that missed it


def test_wire_is_standard_messagepack_in_a_versioned_envelope():
    codec = WireCodec(None, replay_window=30, max_datagram=1400, max_stream=1 << 20)
    data = codec.encode(12.5, "n1", [encode_message(Alive("n1", 3, "127.0.0.2:7946"))], b"\0" * 12)
    assert data[0] == 0x01
    assert msgpack.unpackb(data[13:]) == [1, 12.5, "n1", [[5, "n1", 3, "127.0.0.2:7946", []]]]


def test_join_through_a_seed_and_registry_events():
    cluster = SimCluster.converged(5, seed=8)
    from trimesh.config import make_instance
    inst = make_instance("reviews", "127.0.0.9", 9080, labels={"version": "v2"})
    joins = []
    cluster.listeners.append(lambda now, name, ev: getattr(ev, "kind", None) == "join"
                             and joins.append((name, ev.member.meta)))
    node = cluster.add_node("late", meta=[inst], seeds=["n2"])
    cluster.run_for(3.0)
    assert sorted(name for name, _ in joins) == sorted(["n0", "n1", "n2", "n3", "n4"] + ["late"] * 5)
    assert all(meta == (inst,) for name, meta in joins if name != "late")
    assert len(node.live_members()) == 6 and cluster.views_agree()
    assert inst in cluster.nodes["n0"].registry()
    assert "SwimNode late" in repr(node) and node.statistics()["alive"] == 6


def test_restarted_member_refutes_its_old_death():
    cluster = SimCluster.converged(10, seed=9)
    cluster.run_for(1.0)
    cluster.crash("n3")
    cluster.run_until(cluster.now + 80, until=lambda: cluster.count_knowing("n3", (2,)) == 9)
    cluster.add_node("n3", seeds=["n0"])  # same name, incarnation 0 again
    ok = cluster.run_until(cluster.now + 10, until=lambda: cluster.count_knowing("n3") == 9)
    assert ok and cluster.nodes["n3"].incarnation >= 1


PURE = ["_broadcast.py", "_config.py", "_keyring.py", "_messages.py", "_swim.py"]


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_import_no_io_clock_or_randomness(module):
    path = pathlib.Path(discovery.__file__).parent / module
    tree = ast.parse(path.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            node.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            imported.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.module and "proxy" in node.module:
            imported.add("proxy")
    assert not imported & {"trio", "socket", "ssl", "time", "random", "proxy", "os"}


def test_public_surface():
    names = {n for n in dir(discovery) if not n.startswith("_")}
    assert {"SwimNode", "GossipConfig", "Keyring", "ConfigEntry", "Member", "MemberEvent",
            "ConfigEvent", "Send", "Stream", "Schedule", "Notify", "WireCodec"} <= names
    node = SwimNode("a", "a", rng=random.Random(1))
    assert node.start(0.0) and node.members()[0].state == ALIVE


def test_typed_config_objects_travel_and_come_back_typed():
    from trimesh.config import load_text
    (obj,) = load_text("""apiVersion: config.istio.io/v1alpha2
kind: RouteRule
metadata: {name: reviews-v3, namespace: default}
spec:
  destination: {name: reviews}
  precedence: 2
  route: [{labels: {version: v3}}]
""")
    obj = msgspec.structs.replace(obj, revision=12)
    cluster = SimCluster.converged(10, seed=4)
    cluster._apply("n0", cluster.nodes["n0"].put_object(cluster.now, obj))
    cluster.put_config("n1", "RouteRule", "default", "junk", 3, {"kind": "RouteRule", "spec": 5})
    cluster.run_for(3.0)
    node = cluster.nodes["n9"]
    assert node.config_objects() == [obj]
    assert node.statistics()["config_invalid"] == 1
    cluster._apply("n2", cluster.nodes["n2"].delete_object(cluster.now, *obj.key, 13))
    cluster.run_for(3.0)
    assert node.config_objects() == [] and node.config_entry(*obj.key).deleted


def test_unconfirmed_suspicion_is_verified_with_the_accused_before_the_verdict():
    node = _node(10)  # n=10: max 24 s, k=2
    node.receive_datagram(NOW, _seal([Suspect("n1", 0, "n2")], src="n2", nonce=b"a" * 12))
    fx = node.handle_timer(NOW + 24, ("suspicion", "n1", 0))
    sends = [f for f in fx if isinstance(f, Send)]
    assert [f.addr for f in sends] == ["n1"] and node.member("n1").state == SUSPECT
    assert node.statistics()["verifications"] == 1
    # the accused answers the direct accusation with a refutation: no verdict
    node.receive_datagram(NOW + 24.2, _seal([Alive("n1", 1, "n1")], src="n1", ts=NOW + 24.2,
                                           nonce=b"b" * 12))
    assert node.handle_timer(NOW + 25, ("suspicion", "n1", 0)) == []
    assert node.member("n1").state == ALIVE
    # a silent accused is declared dead one probe period after the Lifeguard timeout
    node.receive_datagram(NOW + 26, _seal([Suspect("n3", 0, "n2")], src="n2", ts=NOW + 26,
                                         nonce=b"c" * 12))
    node.handle_timer(NOW + 50, ("suspicion", "n3", 0))
    events = node.handle_timer(NOW + 51, ("suspicion", "n3", 0))
    assert [f.event.kind for f in events if type(f).__name__ == "Notify"] == ["fail"]


def test_a_stale_accuser_that_tells_us_directly_gets_our_current_alive():
    node = _node(10)
    node.receive_datagram(NOW, _seal([Suspect("n0", 0, "n2")], src="n2", nonce=b"a" * 12))
    assert node.incarnation == 1
    # n5 missed the refutation and pings us with its stale suspicion (the buddy system)
    fx = node.receive_datagram(NOW + 1, _seal([Suspect("n0", 0, "n5")], src="n5", ts=NOW + 1,
                                             nonce=b"b" * 12))
    assert node.incarnation == 1 and [f.addr for f in fx if isinstance(f, Send)] == ["n5"]
    assert node.statistics()["accusers_answered"] == 2
    # relayed gossip of someone else's stale suspicion is not answered
    fx = node.receive_datagram(NOW + 2, _seal([Suspect("n0", 0, "n6")], src="n7", ts=NOW + 2,
                                             nonce=b"c" * 12))
    assert fx == [] and node.statistics()["accusers_answered"] == 2
