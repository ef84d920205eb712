"""Hostile input to one member: nothing raises, nothing forged takes effect, every drop counted."""

from __future__ import annotations

import random

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trimesh.discovery import MAX_INCARNATION, Keyring, SwimNode, WireCodec
from trimesh.discovery._messages import (
    ALIVE,
    SUSPECT,
    Alive,
    Dead,
    Ping,
    PushPull,
    Suspect,
    _encoder,
    _PacketOut,
    encode_message,
)
from trimesh.testing import SimCluster
from trimesh.testing._cluster import SIM_KEY

NOW = 100.0


def _victim() -> SwimNode:
    cluster = SimCluster.converged(5, seed=7, start=NOW)
    return cluster.nodes["n0"]


def _dropped(node: SwimNode) -> int:
    return sum(v for k, v in node.statistics().items() if k.startswith("dropped_"))


def _seal(msgs, *, key=SIM_KEY, ts=NOW, src="n1", nonce=None, stream=False, version=None):
    codec = WireCodec(Keyring(key) if key else None, replay_window=30, max_datagram=1400,
                      max_stream=1 << 20)
    nonce = nonce or random.Random(len(msgs)).randbytes(12)
    if version is not None:  # a well-sealed packet of another protocol version
        body = _encoder.encode(_PacketOut(version, ts, src, [encode_message(m) for m in msgs]))
        head = bytes((0x12 if stream else 0x02,))
        return head + nonce + Keyring(key).seal(nonce, body, head)
    return codec.encode(ts, src, [encode_message(m) for m in msgs], nonce, stream=stream)


def _unchanged(node: SwimNode, before: list) -> bool:
    return [(m.name, m.incarnation, m.state) for m in node.members()] == before


def _view(node):
    return [(m.name, m.incarnation, m.state) for m in node.members()]


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=1500))
def test_random_bytes_are_dropped_and_counted(data):
    node = _victim()
    before = _view(node)
    assert node.receive_datagram(NOW, data) == []
    assert _dropped(node) == 1
    assert _unchanged(node, before)
    reply, fx = node.receive_stream(NOW, data)
    assert reply is None and fx == [] and _dropped(node) == 2


def test_truncated_messagepack_under_the_right_key_is_a_decode_drop():
    node = _victim()
    before = _view(node)
    body = _encoder.encode(_PacketOut(1, NOW, "n1", [encode_message(Dead("n2", 0, "n1"))]))
    keyring = Keyring(SIM_KEY)
    for cut in range(len(body)):
        nonce = random.Random(cut).randbytes(12)
        data = b"\x02" + nonce + keyring.seal(nonce, body[:cut], b"\x02")
        assert node.receive_datagram(NOW, data) == []
    stats = node.statistics()
    assert stats["dropped_decode"] == len(body)
    assert _unchanged(node, before) and node.member("n2").state == ALIVE


def test_valid_messages_under_a_wrong_key_are_dropped():
    node = _victim()
    before = _view(node)
    forged = _seal([Dead("n2", 0, "n1"), Suspect("n0", 0, "n1")], key=b"x" * 32)
    assert node.receive_datagram(NOW, forged) == []
    assert node.statistics()["dropped_auth"] == 1
    assert _unchanged(node, before) and node.incarnation == 0
    plain = _seal([Dead("n2", 0, "n1")], key=None)
    assert node.receive_datagram(NOW, plain) == []
    assert node.statistics()["dropped_unencrypted"] == 1 and _unchanged(node, before)


def test_key_rotation_install_use_remove():
    old, new = b"o" * 16, b"n" * 32
    ring = Keyring(old)
    sealed_old = _seal([Ping(1, "n0", "n1", "n1")], key=old)
    ring.install(new)
    ring.use(new)
    assert ring.primary == new and ring.keys == (new, old)
    nonce = b"\x01" * 12
    assert ring.open(nonce, ring.seal(nonce, b"hi", b"a"), b"a") == b"hi"
    assert Keyring(new).open(nonce, ring.seal(nonce, b"hi", b"a"), b"a") == b"hi"
    codec = WireCodec(ring, replay_window=30, max_datagram=1400, max_stream=1 << 20)
    assert codec.decode(NOW, sealed_old) is not None  # old key still opens during the roll
    assert ring.statistics()["opened_with_secondary"] == 1
    ring.remove(old)
    codec2 = WireCodec(ring, replay_window=30, max_datagram=1400, max_stream=1 << 20)
    assert codec2.decode(NOW, sealed_old) is None and codec2.dropped["auth"] == 1
    with pytest.raises(ValueError, match="primary"):
        ring.remove(new)
    with pytest.raises(ValueError, match="16, 24 or 32"):
        ring.install(b"short")
    with pytest.raises(ValueError, match="not installed"):
        ring.use(b"z" * 16)


def test_replayed_packets_are_dropped():
    node = _victim()
    ping = _seal([Ping(9, "n0", "n1", "n1")])
    first = node.receive_datagram(NOW, ping)
    assert any(type(fx).__name__ == "Send" for fx in first)  # answered once
    assert node.receive_datagram(NOW + 1, ping) == []
    assert node.statistics()["dropped_replay"] == 1
    # the same packet much later: outside the window (and long forgotten by the nonce cache)
    assert node.receive_datagram(NOW + 31, ping) == []
    old = _seal([Ping(10, "n0", "n1", "n1")], ts=NOW - 31)
    future = _seal([Ping(11, "n0", "n1", "n1")], ts=NOW + 31, nonce=b"f" * 12)
    assert node.receive_datagram(NOW, old) == [] and node.receive_datagram(NOW, future) == []
    assert node.statistics()["dropped_stale"] == 3


def test_replayed_suspicion_cannot_be_reused_after_refutation():
    node = _victim()
    accuse = _seal([Suspect("n0", 0, "n1")])
    node.receive_datagram(NOW, accuse)
    assert node.incarnation == 1 and node.statistics()["refutations"] == 1
    assert node.receive_datagram(NOW + 2, accuse) == []
    assert node.incarnation == 1 and node.statistics()["dropped_replay"] == 1


def test_absurd_incarnations_cannot_make_us_unrefutable():
    node = _victim()
    before = _view(node)
    for inc in (MAX_INCARNATION, MAX_INCARNATION - 1, 1 << 20):
        node.receive_datagram(NOW, _seal([Suspect("n0", inc, "n1"), Dead("n0", inc, "n1")],
                                         nonce=inc.to_bytes(12, "big")))
    assert node.incarnation == 0 and node.statistics()["absurd_incarnation"] == 6
    # about another member: a far-ahead claim is ignored too, so its real refutations still win
    node.receive_datagram(NOW, _seal([Suspect("n2", 1 << 30, "n1"), Alive("n3", 1 << 31, "n3")],
                                     nonce=b"o" * 12))
    assert node.statistics()["absurd_incarnation"] == 8
    assert _unchanged(node, before)
    # beyond the wire's uint32: not even decodable
    big = _encoder.encode(_PacketOut(1, NOW, "n1", [msgspec.Raw(_encoder.encode([6, "n0", 1 << 40, "n1"]))]))
    nonce = b"b" * 12
    node.receive_datagram(NOW, b"\x02" + nonce + Keyring(SIM_KEY).seal(nonce, big, b"\x02"))
    assert node.statistics()["dropped_decode"] == 1 and node.incarnation == 0
    # a plausible claim is refuted, one step above it
    node.receive_datagram(NOW, _seal([Suspect("n0", 5, "n1")], nonce=b"p" * 12))
    assert node.incarnation == 6 and node.statistics()["refutations"] == 1


def test_oversized_and_misplaced_input():
    node = _victim()
    before = _view(node)
    huge = _seal([Alive(f"x{i}", 0, "a" * 40) for i in range(40)])
    assert len(huge) > 1400
    assert node.receive_datagram(NOW, huge) == [] and node.statistics()["dropped_oversized"] == 1
    assert node.receive_stream(NOW, b"\x12" + b"\0" * (9 * 1024 * 1024))[0] is None
    assert node.statistics()["dropped_oversized"] == 2
    # a stream frame sent as a datagram, and a push/pull smuggled into a datagram
    frame = _seal([PushPull("n1", "n1", False, [], [])], stream=True)
    assert node.receive_datagram(NOW, frame) == [] and node.statistics()["dropped_bad_kind"] == 1
    node.receive_datagram(NOW, _seal([PushPull("n1", "n1", False, [], [])], nonce=b"q" * 12))
    assert node.statistics()["unexpected_messages"] == 1
    # another protocol version, sealed correctly
    assert node.receive_datagram(NOW, _seal([Ping(1, "n0", "n1", "n1")], version=2)) == []
    assert node.statistics()["dropped_version"] == 1
    # a member with an empty name does not decode
    assert node.receive_datagram(NOW, _seal([Alive("", 0, "x:1")], nonce=b"e" * 12)) == []
    assert node.statistics()["dropped_decode"] == 1
    # a ping meant for someone else is not answered
    assert node.receive_datagram(NOW, _seal([Ping(3, "n4", "n1", "n1")], nonce=b"m" * 12)) == []
    assert node.statistics()["misdirected_pings"] == 1
    assert _unchanged(node, before)


def test_forged_suspicion_of_another_member_is_refuted_by_it():
    """An insider (right key) accusing a healthy member cannot kill it: it refutes in time."""
    cluster = SimCluster.converged(20, seed=71)
    cluster.run_for(1.0)
    failures = []
    cluster.listeners.append(lambda now, name, ev: getattr(ev, "kind", None) == "fail"
                             and failures.append(name))
    data = _seal([Suspect("n5", 0, "n9")], ts=cluster.now, nonce=b"s" * 12)
    cluster._apply("n0", cluster.nodes["n0"].receive_datagram(cluster.now, data))
    assert cluster.nodes["n0"].member("n5").state == SUSPECT
    cluster.run_for(60.0)
    assert failures == [] and cluster.nodes["n5"].incarnation == 1
    assert all(node.member("n5").state == ALIVE for node in cluster.nodes.values())
