"""Static-instance entries, the one-read view, the first-hop accelerator and the timing profiles."""

from __future__ import annotations

import random

import msgspec
import pytest

from trimesh.config import make_instance
from trimesh.discovery import (
    INSTANCE_KIND,
    PROFILES,
    GossipConfig,
    Keyring,
    Member,
    Send,
    SwimNode,
    gossip_profile,
)
from trimesh.discovery._messages import ALIVE, DEAD, SUSPECT

NOW = 50.0
KEY = b"r" * 32
RR = {"apiVersion": "config.istio.io/v1alpha2", "kind": "RouteRule",
      "metadata": {"name": "r1", "namespace": "default"},
      "spec": {"destination": {"name": "reviews"}, "route": [{"labels": {"version": "v1"}}]}}


def _node(states=(ALIVE, ALIVE, SUSPECT, DEAD)) -> SwimNode:
    members = {f"m{i}": Member(f"m{i}", f"127.0.0.{i + 2}:7946", 0, state,
                               (make_instance(f"svc{i}", f"127.0.0.{i + 2}", 9080),))
               for i, state in enumerate(states)}
    node = SwimNode("me", "127.0.0.1:7946", rng=random.Random(1), keyring=Keyring(KEY),
                    meta=[make_instance("mine", "127.0.0.1", 9080)], members=members)
    node.start(NOW, announce=False)
    return node


def test_static_instances_travel_as_entries_and_join_the_view():
    node = _node()
    vm = make_instance("vm-db", "10.0.0.9", 3306, labels={"version": "v2"})
    node.put_config(NOW, INSTANCE_KIND, "default", "vm-db@10.0.0.9", 3,
                    {"instances": [msgspec.to_builtins(vm)]})
    node.put_config(NOW, "RouteRule", "default", "r1", 4, RR)
    instances, objects = node.view()
    # live members (alive and suspect) + ourselves, then the static entry; the dead one is out
    assert sorted(i.service for i in instances) == ["mine", "svc0", "svc1", "svc2", "vm-db"]
    assert instances[-1] == vm
    assert [(o.kind, o.name, o.revision) for o in objects] == [("RouteRule", "r1", 4)]
    assert node.statistics()["config_invalid"] == 0  # the instance entry is not a config kind

    node.put_config(NOW, INSTANCE_KIND, "default", "vm-db@10.0.0.9", 5, None)  # deregistered
    assert [i.service for i in node.static_instances()] == []


@pytest.mark.parametrize("obj", [{"instances": [{"service": "x"}]}, {"instances": "nope"}, {}])
def test_a_malformed_static_entry_is_skipped_and_counted(obj):
    node = _node()
    node.put_config(NOW, INSTANCE_KIND, "default", "bad@1.2.3.4", 1, obj)
    assert node.static_instances() == []
    assert node.statistics()["config_invalid"] == 1


def test_push_direct_sends_the_entry_to_every_live_member_once():
    node = _node()
    node.put_config(NOW, "RouteRule", "default", "r1", 7, RR)
    effects = node.push_direct(NOW, "RouteRule", "default", "r1")
    sends = [fx for fx in effects if isinstance(fx, Send)]
    # m0, m1 alive and m2 suspect get it; m3 is dead
    assert sorted(fx.addr for fx in sends) == ["127.0.0.2:7946", "127.0.0.3:7946", "127.0.0.4:7946"]
    assert node.statistics()["direct_pushes"] == 3

    # a receiver applies it from that one datagram
    receiver = SwimNode("m0", "127.0.0.2:7946", rng=random.Random(2), keyring=Keyring(KEY),
                        members={"me": Member("me", "127.0.0.1:7946", 0, ALIVE)})
    receiver.start(NOW, announce=False)
    receiver.receive_datagram(NOW, next(fx.data for fx in sends if fx.addr == "127.0.0.2:7946"))
    entry = receiver.config_entry("RouteRule", "default", "r1")
    assert (entry.revision, entry.origin, entry.obj) == (7, "me", RR)


def test_push_direct_of_an_unknown_key_sends_nothing():
    node = _node()
    assert node.push_direct(NOW, "RouteRule", "default", "missing") == []
    assert node.statistics()["direct_pushes"] == 0


def test_profiles():
    assert gossip_profile("lan") == GossipConfig()
    local = gossip_profile("local")
    assert (local.probe_interval, local.probe_timeout, local.gossip_interval,
            local.suspicion_mult, local.retransmit_mult) == (1.0, 0.2, 0.1, 3, 2)
    assert local.dead_detection_bound(21) < GossipConfig().dead_detection_bound(21)
    assert set(PROFILES) == {"lan", "local"}
    with pytest.raises(ValueError, match="unknown gossip profile 'wan'.*lan, local"):
        gossip_profile("wan")
