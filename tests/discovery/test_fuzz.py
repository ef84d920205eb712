"""Property tests: well-sealed but arbitrary messages (an insider gone mad) never crash a member,
never lower or overflow its incarnation, never make it unrefutable; the codec round-trips."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from trimesh.discovery import MAX_INCARNATION, WireCodec
from trimesh.discovery._messages import (
    ALIVE,
    Ack,
    Alive,
    ConfigEntry,
    ConfigHint,
    Dead,
    IndirectPing,
    MemberState,
    Nack,
    Ping,
    PushPull,
    Suspect,
    encode_message,
)
from trimesh.testing import SimCluster

from .test_hostile import _seal

NAMES = st.sampled_from(["n0", "n1", "n2", "n3", "n4", "ghost"])
INCS = st.one_of(st.integers(0, 5), st.sampled_from([65535, 65536, 65537, MAX_INCARNATION - 1,
                                                    MAX_INCARNATION]))
SEQS = st.integers(0, 2**63 - 1)
KEYS = st.tuples(st.sampled_from(["RouteRule", "EgressRule"]), st.just("default"),
                 st.sampled_from(["a", "b"]))

messages = st.one_of(
    st.builds(Ping, SEQS, NAMES, NAMES, NAMES),
    st.builds(IndirectPing, SEQS, NAMES, NAMES, NAMES, NAMES),
    st.builds(Ack, SEQS),
    st.builds(Nack, SEQS),
    st.builds(Alive, NAMES, INCS, NAMES),
    st.builds(Suspect, NAMES, INCS, NAMES),
    st.builds(Dead, NAMES, INCS, NAMES),
    st.builds(lambda k, r, o, obj: ConfigEntry(*k, r, o, obj), KEYS, st.integers(0, 10), NAMES,
              st.one_of(st.none(), st.dictionaries(st.text(max_size=3), st.integers(-2**63, 2**63 - 1), max_size=3))),
    st.builds(lambda k, r, o, h: ConfigHint(*k, r, o, h), KEYS, st.integers(0, 10), NAMES, NAMES),
)
rows = st.builds(MemberState, NAMES, NAMES, INCS, st.integers(0, 3))


@settings(max_examples=150, deadline=None)
@given(batches=st.lists(st.lists(messages, min_size=1, max_size=6), min_size=1, max_size=8),
       pushes=st.lists(st.lists(rows, max_size=6), max_size=3),
       timers=st.lists(st.sampled_from(["probe", "gossip", "pushpull", "reap", "reconnect"]),
                       max_size=6))
def test_arbitrary_insider_messages_keep_the_member_sane(batches, pushes, timers):
    cluster = SimCluster.converged(5, seed=1, start=100.0)
    node = cluster.nodes["n0"]
    now = 100.0
    incarnations = [node.incarnation]
    rng = random.Random(0)
    for batch in batches:
        now += 0.3
        node.receive_datagram(now, _seal(batch, ts=now, nonce=rng.randbytes(12)))
        incarnations.append(node.incarnation)
    for members in pushes:
        now += 0.3
        frame = _seal([PushPull("n1", "n1", False, members, [])], ts=now, stream=True,
                      nonce=rng.randbytes(12))
        node.receive_stream(now, frame)
        incarnations.append(node.incarnation)
    for timer in timers:
        now += 1.0
        node.handle_timer(now, (timer,))
    assert incarnations == sorted(incarnations)
    assert node.incarnation < MAX_INCARNATION  # there is always room to refute once more
    assert node.member("n0").state == ALIVE
    stats = node.statistics()
    assert stats["dropped_decode"] == stats["dropped_auth"] == 0


@settings(max_examples=100, deadline=None)
@given(msgs=st.lists(messages, min_size=1, max_size=10), ts=st.floats(0, 1e9))
def test_codec_round_trip(msgs, ts):
    codec = WireCodec(None, replay_window=30, max_datagram=1 << 20, max_stream=1 << 20)
    data = codec.encode(ts, "me", [encode_message(m) for m in msgs], b"\x07" * 12)
    packet = codec.decode(ts, data)
    assert packet is not None and packet.msgs == msgs and packet.src == "me"
