"""The sidecar's gossip source feeding the snapshot builder, in-process: one consistent view per
refresh, coalesced refreshes, and the precedence between files, the control's listing and gossip."""

from __future__ import annotations

import functools
import random

import msgspec
import pytest
import trio

from trimesh.config import Snapshot, load_text, make_instance
from trimesh.discovery import INSTANCE_KIND, GossipConfig, Keyring, SwimNode, serve_discovery
from trimesh.sidecar._gossip import COALESCE_INTERVAL, GossipSource
from trimesh.sidecar._sources import merge_control_and_gossip, merge_instances

KEY = b"s" * 32
RR = """
apiVersion: config.istio.io/v1alpha2
kind: RouteRule
metadata: {name: %s}
spec: {destination: {name: reviews}, route: [{labels: {version: %s}}]}
"""


def _rr(name: str, revision: int, version: str = "v1"):
    return msgspec.structs.replace(load_text(RR % (name, version))[0], revision=revision)


class _Agent:
    """Just what GossipSource.refresh reads: a real pure node."""

    def __init__(self, node):
        self.node = node


def _static(service: str, address: str) -> dict:
    return {"instances": [msgspec.to_builtins(make_instance(service, address, 9080,
                                                            labels={"version": "v2"}))]}


async def test_the_builder_sees_a_whole_change_or_none_of_it():
    node = SwimNode("me", "127.0.0.1:7946", rng=random.Random(3), keyring=Keyring(KEY))
    node.start(0.0)
    source = GossipSource("me", host="127.0.0.1", port=0, seeds=[], key=KEY,
                          on_change=lambda: None)
    source.agent = _Agent(node)
    source.refresh()
    before = (source.instances, source.objects)
    assert before == ([], [])

    # one change = a v2 instance appears AND a rule sends traffic to v2
    node.put_config(1.0, INSTANCE_KIND, "default", "reviews@10.0.0.2", 1,
                    _static("reviews", "10.0.0.2"))
    node.put_config(1.0, "RouteRule", "default", "to-v2", 2, _rr("to-v2", 2, "v2").to_dict())
    # until the source refreshes, every rebuild still reads the old view, both halves of it
    assert (source.instances, source.objects) == before
    source.refresh()
    snapshot = Snapshot(source.objects, source.instances)
    assert [o.name for o in snapshot.objects.values()] == ["to-v2"]
    assert [(i.address, i.labels["version"]) for i in snapshot.instances] == [("10.0.0.2", "v2")]
    # and the view is exactly the node's, read once
    assert source.view[:2] == node.view()


@pytest.mark.parametrize(("listing", "listing_rev", "gossip", "tombstones", "exclude", "want"), [
    # same object both ways: the newer revision
    ({"a": 3}, 3, {"a": 5}, {}, set(), {"a": 5}),
    ({"a": 5}, 5, {"a": 3}, {}, set(), {"a": 5}),
    # only gossip has it: newer than the listing -> created since; older -> deleted by then
    ({}, 4, {"a": 6}, {}, set(), {"a": 6}),
    ({}, 4, {"a": 2}, {}, set(), {}),
    # no listing yet (control unreachable or off): gossip alone
    ({}, -1, {"a": 2}, {}, set(), {"a": 2}),
    # only the listing has it: a newer tombstone deleted it; an older one does not matter
    ({"a": 3}, 3, {}, {"a": 4}, set(), {}),
    ({"a": 5}, 5, {}, {"a": 4}, set(), {"a": 5}),
    # a --config file overrides both for its key
    ({"a": 3}, 3, {"a": 5, "b": 6}, {}, {"a"}, {"b": 6}),
])
def test_merge_control_and_gossip(listing, listing_rev, gossip, tombstones, exclude, want):
    key = lambda n: ("RouteRule", "default", n)  # noqa: E731
    merged = merge_control_and_gossip(
        [_rr(n, r) for n, r in listing.items()], listing_rev,
        [_rr(n, r) for n, r in gossip.items()], {key(n): r for n, r in tombstones.items()},
        exclude={key(n) for n in exclude})
    assert {o.name: o.revision for o in merged} == want


def test_merge_instances_file_wins_and_no_endpoint_twice():
    file_one = make_instance("reviews", "10.0.0.1", 9080, labels={"version": "file"})
    gossip = [make_instance("reviews", "10.0.0.1", 9080, labels={"version": "gossip"}),
              make_instance("reviews", "10.0.0.2", 9080),
              make_instance("reviews", "10.0.0.2", 9080, healthy=False),
              make_instance("ratings", "10.0.0.1", 9080)]
    merged = merge_instances([file_one], gossip)
    assert [(i.service, i.address, i.healthy) for i in merged] == [
        ("reviews", "10.0.0.2", True), ("ratings", "10.0.0.1", True)]


async def test_refreshes_are_coalesced_and_prompt(autojump_clock, nursery):
    config = GossipConfig()
    writer = await nursery.start(functools.partial(serve_discovery, "control", port=0, key=KEY,
                                                   config=config))
    changes: list[tuple[float, int]] = []
    source = GossipSource("reader", host="127.0.0.1", port=0, seeds=[writer.addr], key=KEY,
                          config=config, on_change=lambda: changes.append(
                              (trio.current_time(), len(source.view[1]))),
                          own=lambda: make_instance("reader", "127.0.0.1", 9080))
    await nursery.start(source.serve)
    assert [i.service for i in source.view[0]] == ["reader"]  # our own announcement
    await trio.sleep(1.0)  # a quiet spell
    changes.clear()

    t0 = trio.current_time()
    for n in range(30):  # a burst: 30 objects written back to back
        await writer.put_object(_rr(f"r{n}", n + 1))
        await writer.push_direct("RouteRule", "default", f"r{n}")
    with trio.fail_after(5):
        while not changes or changes[-1][1] < 30:
            await trio.sleep(0.01)
    times = [t for t, _ in changes]
    assert times[0] - t0 < 0.05  # the first refresh is immediate: no waiting for a quiet spell
    assert all(b - a >= COALESCE_INTERVAL - 1e-9 for a, b in zip(times, times[1:], strict=False))
    assert len(changes) < 30  # coalesced
    assert source.statistics()["events"] >= 30


async def test_a_health_change_of_the_own_instance_is_announced(autojump_clock, nursery):
    config = GossipConfig()
    other = await nursery.start(functools.partial(serve_discovery, "other", port=0, key=KEY,
                                                  config=config))
    own = {"instance": make_instance("reader", "127.0.0.1", 9080)}
    source = GossipSource("reader", host="127.0.0.1", port=0, seeds=[other.addr], key=KEY,
                          config=config, on_change=lambda: None, own=lambda: own["instance"])
    await nursery.start(source.serve)

    def seen_healthy():
        return [i.healthy for i in other.registry() if i.service == "reader"]

    with trio.fail_after(10):
        while seen_healthy() != [True]:
            await trio.sleep(0.05)
    incarnation = source.agent.node.incarnation
    own["instance"] = msgspec.structs.replace(own["instance"], healthy=False)  # health checker
    with trio.fail_after(10):
        while seen_healthy() != [False]:
            await trio.sleep(0.05)
    assert source.agent.node.incarnation == incarnation + 1  # a new incarnation carried it
    assert source.statistics()["meta_updates"] == 1
