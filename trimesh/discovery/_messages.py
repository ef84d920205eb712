"""Gossip wire format: MessagePack messages in a versioned, sealed envelope, and replay defence. PURE.

A datagram (UDP) or a push/pull frame (TCP) is::

    kind (1 byte) | nonce (12 bytes) | body

``kind`` says transport and protection: ``0x02`` sealed datagram, ``0x12`` sealed stream frame
(``0x01``/``0x11`` are the plaintext forms, accepted only by a member started without a keyring, for
tests). A sealed body is AES-GCM over the MessagePack :class:`Packet`, with the kind byte as
associated data so a datagram cannot be replayed as a stream frame. The packet is the versioned
envelope: ``[version, timestamp, sender, [message, ...]]``; every message is a MessagePack array
whose first element is its type tag (msgspec ``array_like`` tagged structs), so a *compound* packet
costs one array header more than its messages. Senders keep datagrams within
``udp_buffer_size`` (1400 bytes, memberlist's ``UDPBufferSize``) and move the full state over TCP.

Replay protection (decided here, documented in docs/gossip.md): the sender's timestamp is inside the
authenticated body; a receiver drops a packet whose timestamp is more than ``replay_window``
(30 s) away from its own clock, and remembers every nonce it accepted until that packet would be
too old anyway, dropping repeats. This needs member clocks that agree within the window.

Anything that fails — too big, unknown kind, bad tag, truncated or ill-typed MessagePack, wrong
version, stale or repeated — is dropped and counted by reason in :meth:`WireCodec.statistics`;
nothing here raises on input bytes.
"""

from __future__ import annotations

from collections import deque
from typing import Annotated, Union

import msgspec

from ..config import ServiceInstance
from ._keyring import NONCE_SIZE, TAG_SIZE, Keyring

PROTOCOL_VERSION = 1
MAX_INCARNATION = (1 << 32) - 1  # incarnations are uint32 on the wire, as in memberlist

KIND_UDP_PLAIN = 0x01
KIND_UDP_SEALED = 0x02
KIND_TCP_PLAIN = 0x11
KIND_TCP_SEALED = 0x12
HEADER_SIZE = 1 + NONCE_SIZE

Incarnation = Annotated[int, msgspec.Meta(ge=0, le=MAX_INCARNATION)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=253)]  # a member's name
Addr = Annotated[str, msgspec.Meta(max_length=300)]  # "host:port"
Seq = Annotated[int, msgspec.Meta(ge=0, le=(1 << 63) - 1)]

# member states (memberlist's stateAlive/stateSuspect/stateDead/stateLeft)
ALIVE, SUSPECT, DEAD, LEFT = 0, 1, 2, 3
STATE_NAMES = ("alive", "suspect", "dead", "left")
State = Annotated[int, msgspec.Meta(ge=0, le=3)]


class _Msg(msgspec.Struct, frozen=True, array_like=True):
    pass


class Ping(_Msg, tag=1):
    """Direct probe: ``target`` must be the receiver (misdirected pings are dropped)."""
    seq: Seq
    target: Name
    source: Name
    source_addr: Addr


class IndirectPing(_Msg, tag=2):
    """Ask the receiver to probe ``target`` for us and answer ``Ack`` or, after the probe timeout,
    ``Nack`` (Lifeguard: nacks tell the requester that its relays are alive)."""
    seq: Seq
    target: Name
    target_addr: Addr
    source: Name
    source_addr: Addr


class Ack(_Msg, tag=3):
    seq: Seq


class Nack(_Msg, tag=4):
    seq: Seq


class Alive(_Msg, tag=5):
    """``node`` is alive at ``incarnation``, reachable at ``addr``, announcing ``meta`` (its
    service instances: the registry)."""
    node: Name
    incarnation: Incarnation
    addr: Addr
    meta: tuple[ServiceInstance, ...] = ()


class Suspect(_Msg, tag=6):
    node: Name
    incarnation: Incarnation
    source: Name


class Dead(_Msg, tag=7):
    """``source == node`` is a graceful leave."""
    node: Name
    incarnation: Incarnation
    source: Name


class ConfigEntry(_Msg, tag=8):
    """One config object as gossip carries it: last writer (highest ``(revision, origin)``)
    wins; ``obj`` is the object's ``to_dict()``, or ``None`` for a tombstone (deleted)."""
    kind: str
    namespace: str
    name: str
    revision: Annotated[int, msgspec.Meta(ge=0)]
    origin: Name
    obj: dict | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.namespace, self.name)

    @property
    def version(self) -> tuple[int, str]:
        return (self.revision, self.origin)

    @property
    def deleted(self) -> bool:
        return self.obj is None


class ConfigHint(_Msg, tag=10):
    """An entry too big to piggyback exists at ``holder``: members with an older version pull
    it from there over TCP."""
    kind: str
    namespace: str
    name: str
    revision: Annotated[int, msgspec.Meta(ge=0)]
    origin: Name
    holder: Addr

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.namespace, self.name)


class MemberState(msgspec.Struct, frozen=True, array_like=True):
    """One row of a push/pull full-state exchange."""
    node: Name
    addr: Addr
    incarnation: Incarnation
    state: State
    meta: tuple[ServiceInstance, ...] = ()


class PushPull(_Msg, tag=9):
    """The full state (members and config entries), sent over TCP; ``join`` marks a join. With
    no ``members`` it is a config exchange only: ``config`` offers entries, ``want`` asks for the
    entries of those keys in the reply."""
    source: Name
    source_addr: Addr
    join: bool
    members: list[MemberState]
    config: list[ConfigEntry]
    want: list[tuple[str, str, str]] = []


Message = Union[Ping, IndirectPing, Ack, Nack, Alive, Suspect, Dead, ConfigEntry, PushPull,
                ConfigHint]


class Packet(msgspec.Struct, frozen=True, array_like=True):
    """The versioned envelope."""
    v: int
    ts: float
    src: Name
    msgs: list[Message]


class _PacketOut(msgspec.Struct, array_like=True):
    """Encode-side twin of :class:`Packet` whose messages are already-encoded bytes."""
    v: int
    ts: float
    src: str
    msgs: list[msgspec.Raw]


_encoder = msgspec.msgpack.Encoder()
_packet_decoder = msgspec.msgpack.Decoder(Packet)


def encode_message(msg: Message) -> msgspec.Raw:
    """One message, encoded once (broadcasts are queued encoded and reused per packet)."""
    return msgspec.Raw(_encoder.encode(msg))


DROP_REASONS = ("oversized", "short", "bad_kind", "unencrypted", "auth", "decode", "version",
                "stale", "replay")


class WireCodec:
    """Seals packets for one member and opens what it receives, with the replay window."""

    def __init__(self, keyring: Keyring | None, *, replay_window: float, max_datagram: int,
                 max_stream: int) -> None:
        self.keyring = keyring
        self.replay_window = replay_window
        self.max_datagram = max_datagram
        self.max_stream = max_stream
        self._seen: dict[bytes, float] = {}
        self._expiry: deque[tuple[float, bytes]] = deque()
        self.dropped = dict.fromkeys(DROP_REASONS, 0)

    @property
    def overhead(self) -> int:
        """Bytes the header and tag add to the MessagePack body."""
        return HEADER_SIZE + (TAG_SIZE if self.keyring is not None else 0)

    def encode(self, ts: float, src: str, msgs: list[msgspec.Raw], nonce: bytes, *,
               stream: bool = False) -> bytes:
        body = _encoder.encode(_PacketOut(PROTOCOL_VERSION, ts, src, msgs))
        if self.keyring is None:
            kind = KIND_TCP_PLAIN if stream else KIND_UDP_PLAIN
            return bytes((kind,)) + nonce + body
        kind = KIND_TCP_SEALED if stream else KIND_UDP_SEALED
        head = bytes((kind,))
        return head + nonce + self.keyring.seal(nonce, body, head)

    def decode(self, wall: float, data: bytes, *, stream: bool = False) -> Packet | None:
        """The packet, or ``None`` with the reason counted in ``dropped``."""
        dropped = self.dropped
        if len(data) > (self.max_stream if stream else self.max_datagram):
            dropped["oversized"] += 1
            return None
        if len(data) <= HEADER_SIZE:
            dropped["short"] += 1
            return None
        kind = data[0]
        plain_kind, sealed_kind = ((KIND_TCP_PLAIN, KIND_TCP_SEALED) if stream
                                   else (KIND_UDP_PLAIN, KIND_UDP_SEALED))
        nonce = bytes(data[1:HEADER_SIZE])
        if kind == sealed_kind:
            if self.keyring is None:
                dropped["auth"] += 1
                return None
            body = self.keyring.open(nonce, bytes(data[HEADER_SIZE:]), bytes((kind,)))
            if body is None:
                dropped["auth"] += 1
                return None
        elif kind == plain_kind:
            if self.keyring is not None:
                dropped["unencrypted"] += 1
                return None
            body = bytes(data[HEADER_SIZE:])
        else:
            dropped["bad_kind"] += 1
            return None
        try:
            packet = _packet_decoder.decode(body)
        except msgspec.DecodeError:
            dropped["decode"] += 1
            return None
        if packet.v != PROTOCOL_VERSION:
            dropped["version"] += 1
            return None
        if not self._fresh(wall, packet.ts, nonce):
            return None
        return packet

    def _fresh(self, wall: float, ts: float, nonce: bytes) -> bool:
        window = self.replay_window
        if not (wall - window <= ts <= wall + window):  # also rejects NaN
            self.dropped["stale"] += 1
            return False
        seen, expiry = self._seen, self._expiry
        while expiry and expiry[0][0] < wall:
            _, old = expiry.popleft()
            seen.pop(old, None)
        if nonce in seen:
            self.dropped["replay"] += 1
            return False
        until = ts + window
        seen[nonce] = until
        expiry.append((until, nonce))
        return True

    def statistics(self) -> dict[str, int]:
        stats = {f"dropped_{k}": v for k, v in self.dropped.items()}
        stats["replay_cache"] = len(self._seen)
        return stats

    def __repr__(self) -> str:
        mode = "sealed" if self.keyring is not None else "plaintext"
        return f"<WireCodec {mode} dropped={sum(self.dropped.values())}>"
