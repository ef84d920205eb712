"""SWIM membership with the Lifeguard extensions, as a pure state machine. PURE.

Theory of operation
-------------------
SWIM (Das, Gupta, Motivala, "SWIM: Scalable Weakly-consistent Infection-style Process Group
Membership Protocol", DSN 2002) splits membership into a *failure detector* and a *dissemination*
component, each with constant load per member:

* **Probing** (SWIM §3). Once per ``probe_interval`` a member pings the next member of a randomly
  permuted round-robin order (SWIM §4.3: this bounds the time until every member is probed). No
  ack within ``probe_timeout`` → it asks ``indirect_checks`` other members to ping the target for
  it (``IndirectPing``); an ack relayed back by any of them before the period ends counts.
* **Suspicion** (SWIM §4.2). A failed probe does not declare death: the target becomes *suspect* at
  its current *incarnation*, the news is gossiped, and only if nobody refutes it before the
  suspicion timeout is the member declared *dead*. A member that hears itself suspected (or dead)
  *refutes* by bumping its own incarnation and gossiping ``Alive``; higher incarnations win, and at
  equal incarnation ``suspect`` beats ``alive`` and ``dead`` beats both.
* **Dissemination** (SWIM §4.1). Membership changes are not multicast: they are piggybacked on
  the packets the protocol sends anyway and on gossip rounds (``gossip_nodes`` random members every
  ``gossip_interval``, memberlist's addition), each message a bounded number of times that grows
  with log N (:mod:`._broadcast`). Periodic TCP *push/pull* of the full state (memberlist's
  anti-entropy) repairs whatever gossip missed, e.g. across a healed partition.

Lifeguard (Dadgar, Phillips, Currey, "Lifeguard: Local Health Awareness for More Accurate Failure
Detection", 2018, arXiv:1707.00788) makes the detector robust against *slow members* — the
member whose own overload makes it accuse healthy peers:

* **Local health multiplier** (LHM, §4.1 "Local Health Aware Probe"): a score in
  ``[0, awareness_max_multiplier)``, raised when our probes fail *and the relays did not even
  send nacks* (so the problem is probably ours), when we have to refute a suspicion about
  ourselves, lowered by every successful probe. Probe interval and timeout are multiplied by
  ``LHM + 1``.
* **Dynamic suspicion timeout** (§4.2 "Local Health Aware Suspicion"): a suspicion starts at the
  maximum ``suspicion_max_timeout_mult × min`` and shrinks towards ``min`` logarithmically with
  each *independent* confirmation (another member's ``Suspect`` about the same incarnation):
  ``timeout = max(min, max − log(c + 1)/log(k + 1) × (max − min))`` for ``c`` of the ``k``
  wanted confirmations; memberlist's ``suspicion.go`` uses the same formula.
* **Buddy system** (§4.3): a ping to a suspect member carries the ``Suspect`` message, so the
  accused hears it at once and can refute.

Two trimesh additions close the gap left by gossip's fixed retransmit limit (a member can miss a
refutation by chance): an accusation received *directly from its author* is answered with our
current ``Alive`` even when stale, and an expired suspicion is first sent to the accused directly
(twice) with one more probe period to answer before the verdict (docs/gossip.md §1).

The formulas and defaults are memberlist's LAN profile (:mod:`._config`). Member metadata is the
mesh registry: each member announces its service instances in ``Alive``; a metadata change bumps
the incarnation so it wins everywhere like any other membership change. Config objects ride the
same machinery as versioned last-writer-wins entries (:class:`ConfigEntry`); see docs/gossip.md.

The machine
-----------
:class:`SwimNode` does no I/O and reads no clock: every entry point takes ``now`` (seconds, the
shell's clock) and returns a list of *effects* — :class:`Send` a datagram, :class:`Stream` a
push/pull frame over TCP (the reply goes to :meth:`SwimNode.receive_stream_reply`),
:class:`Schedule` a timer (hand it back to :meth:`SwimNode.handle_timer` at ``at``; stale timers
are harmless), :class:`Notify` the owner of a registry or config change. Randomness comes from the
``rng`` it is given. (The effect vocabulary follows caio/foca's ``Runtime``: send, submit-after,
notify.)

Incarnation rule (hostile input): a claim about a member more than ``max_incarnation_jump``
ahead of the incarnation we know for it is *absurd*, dropped and counted; so is a claim about us
at the largest wire incarnation (we could never refute it). A member therefore always keeps room
to refute, whatever a peer claims.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import msgspec

from ..config import ConfigObject, ServiceInstance, object_from_dict
from ..errors import ConfigError
from ._broadcast import BroadcastQueue
from ._config import GossipConfig
from ._keyring import Keyring
from ._messages import (
    ALIVE,
    DEAD,
    LEFT,
    MAX_INCARNATION,
    NONCE_SIZE,
    STATE_NAMES,
    SUSPECT,
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
    WireCodec,
    _encoder,
    _PacketOut,
    encode_message,
)

if TYPE_CHECKING:  # annotation only: the core never draws randomness of its own
    import random

REAP_INTERVAL = 5.0  # how often dead members past gossip_to_the_dead_time and old tombstones go
# Static (VM) instances registered through the control travel as config entries of this kind;
# it is not a config kind (those are CamelCase), so it can never collide with one. The entry's
# name is ``SERVICE@ADDRESS`` and its object ``{"instances": [ServiceInstance, ...]}``.
INSTANCE_KIND = "trimesh.static-instances"


# -- records, events, effects ------------------------------------------------------------------

class Member(msgspec.Struct, frozen=True):
    """What one member knows about another (immutable; replaced on change)."""
    name: str
    addr: str
    incarnation: int
    state: int
    meta: tuple[ServiceInstance, ...] = ()
    since: float = 0.0

    @property
    def state_name(self) -> str:
        return STATE_NAMES[self.state]

    @property
    def live(self) -> bool:
        """Alive or suspect: SWIM still counts a suspect member as a member."""
        return self.state <= SUSPECT


class MemberEvent(msgspec.Struct, frozen=True):
    """``kind``: ``join`` (new, or back after dead/left), ``update`` (address or metadata),
    ``suspect``, ``recover`` (suspicion refuted), ``fail`` (declared dead), ``leave``."""
    kind: str
    member: Member


class ConfigEvent(msgspec.Struct, frozen=True):
    """A config entry won: ``entry.obj`` is the object's dict, ``None`` when deleted."""
    entry: ConfigEntry
    previous: ConfigEntry | None


class Send(NamedTuple):
    addr: str
    data: bytes


class Stream(NamedTuple):
    """Open a TCP connection to ``addr``, write ``data`` as one frame, read one reply frame and
    pass it to :meth:`SwimNode.receive_stream_reply`."""
    addr: str
    data: bytes


class Schedule(NamedTuple):
    at: float
    timer: tuple


class Notify(NamedTuple):
    event: MemberEvent | ConfigEvent


Effect = Send | Stream | Schedule | Notify


class _Suspicion:
    """Lifeguard's dynamic suspicion timer for one suspect member."""
    __slots__ = ("start", "k", "min", "max", "confirmers", "deadline", "verifying")

    def __init__(self, start: float, k: int, lo: float, hi: float, source: str) -> None:
        self.start, self.k, self.min, self.max = start, k, lo, hi
        self.confirmers = {source}
        self.deadline = start + (hi if k >= 1 else lo)
        self.verifying = False

    def confirm(self, source: str) -> bool:
        """Count an independent confirmation; True if it shortened the deadline."""
        if self.verifying or len(self.confirmers) - 1 >= self.k or source in self.confirmers:
            return False
        self.confirmers.add(source)
        c = len(self.confirmers) - 1
        frac = math.log(c + 1) / math.log(self.k + 1)
        timeout = max(self.min, self.max - frac * (self.max - self.min))
        self.deadline = self.start + timeout
        return True


class _Probe:
    __slots__ = ("seq", "target", "incarnation", "acked", "expected_nacks", "nacks")

    def __init__(self, seq: int, target: str, incarnation: int) -> None:
        self.seq, self.target, self.incarnation = seq, target, incarnation
        self.acked = False
        self.expected_nacks = 0
        self.nacks = 0


_COUNTERS = (
    "packets_sent", "bytes_sent", "packets_received", "bytes_received", "streams_sent",
    "streams_received", "stream_bytes_sent", "stream_bytes_received", "probes", "probe_failures",
    "indirect_probes", "relayed_pings", "nacks_received", "suspicions", "confirmations",
    "deaths_declared", "verifications", "accusers_answered", "refutations", "absurd_incarnation", "misdirected_pings",
    "unexpected_messages", "config_applied", "config_stale", "config_invalid", "tombstones_expired",
    "members_reaped", "direct_pushes",
)


class SwimNode:
    """One gossip member: SWIM + Lifeguard, the registry and config entries. See the module doc.

    ``members`` (for simulations) starts the node with that view, as if it had converged already.
    ``wall_offset`` is added to ``now`` for packet timestamps (the replay window needs wall-clock
    time; a Trio shell's ``now`` is a monotonic clock).
    """

    def __init__(self, name: str, addr: str, *, rng: random.Random, config: GossipConfig | None = None,
                 keyring: Keyring | None = None, meta: Iterable[ServiceInstance] = (),
                 incarnation: int = 0, members: Mapping[str, Member] | None = None,
                 wall_offset: float = 0.0) -> None:
        self.name = name
        self.addr = addr
        self.config = cfg = config or GossipConfig()
        self.rng = rng
        self.incarnation = incarnation
        self.meta = tuple(meta)
        self.wall_offset = wall_offset
        self.codec = WireCodec(keyring, replay_window=cfg.replay_window,
                               max_datagram=cfg.udp_buffer_size, max_stream=cfg.max_stream_size)
        self._members: dict[str, Member] = dict(members) if members else {}
        self._members.pop(name, None)
        self._names: list[str] = list(self._members)
        self._live = 1 + sum(1 for m in self._members.values() if m.state <= SUSPECT)
        self._suspicions: dict[str, _Suspicion] = {}
        self._queue = BroadcastQueue()
        self._config: dict[tuple[str, str, str], ConfigEntry] = {}
        self._tombstones: dict[tuple[str, str, str], float] = {}
        self._pulling: dict[tuple[str, str, str], float] = {}
        self._probe: _Probe | None = None
        self._relays: dict[int, tuple[str, int]] = {}
        self._seq = 0
        self._rr: tuple[int, int, int] = (0, 1, 0)  # (start, step, length) of this probe pass
        self._rr_i = 0
        self.lhm = 0
        self._gossip_phase = 0.0
        self._gossip_armed = False
        self._started = False
        self.leaving = False
        self._fx: list[Effect] = []
        self._packet_src: str | None = None
        self.counters = dict.fromkeys(_COUNTERS, 0)
        self._header = len(_encoder.encode(_PacketOut(1, 0.0, name, []))) + 3 + self.codec.overhead

    # -- public entry points -------------------------------------------------------------------
    def start(self, now: float, *, announce: bool = True) -> list[Effect]:
        """Arm the timers (at random phases) and announce ourselves (``announce=False`` for a
        node built with a converged ``members`` view)."""
        if self._started:
            return []
        self._started = True
        cfg, rng = self.config, self.rng
        self._schedule(now + rng.uniform(0, cfg.probe_interval), ("probe",))
        self._gossip_phase = now + rng.uniform(0, cfg.gossip_interval)
        self._schedule(now + rng.uniform(0, self.config.push_pull_scaled(self._live)), ("pushpull",))
        self._schedule(now + REAP_INTERVAL, ("reap",))
        self._schedule(now + rng.uniform(0, cfg.reconnect_interval), ("reconnect",))
        if announce:
            self._broadcast(("m", self.name), Alive(self.name, self.incarnation, self.addr, self.meta))
            self._arm_gossip(now)
        return self._flush()

    def join(self, now: float, seeds: Iterable[str]) -> list[Effect]:
        """Push/pull our state with each seed address (memberlist ``Join``)."""
        for addr in seeds:
            if addr != self.addr:
                self._stream(now, addr, self._push_pull(join=True))
        return self._flush()

    def leave(self, now: float) -> list[Effect]:
        """Graceful leave: gossip ``Dead`` about ourselves from ourselves and stop probing. The
        shell keeps running gossip until :meth:`leave_sent` (or a deadline), then stops."""
        if not self.leaving:
            self.leaving = True
            self._broadcast(("m", self.name), Dead(self.name, self.incarnation, self.name))
            self._arm_gossip(now)
        return self._flush()

    def leave_sent(self) -> bool:
        """True once our ``Dead`` has gone out at least once (or was superseded)."""
        return self.leaving and self._queue.transmits(("m", self.name)) != 0

    def update_meta(self, now: float, meta: Iterable[ServiceInstance]) -> list[Effect]:
        """Announce new metadata (our instances, their health): a new incarnation, like a refute."""
        self.meta = tuple(meta)
        self.incarnation = min(self.incarnation + 1, MAX_INCARNATION)
        self._broadcast(("m", self.name), Alive(self.name, self.incarnation, self.addr, self.meta))
        self._arm_gossip(now)
        return self._flush()

    def put_config(self, now: float, kind: str, namespace: str, name: str, revision: int,
                   obj: dict | None) -> list[Effect]:
        """Publish a config object (``obj=None`` deletes it) at ``revision``. Ignored if we
        already hold a newer entry for the key (last writer wins)."""
        entry = ConfigEntry(kind, namespace, name, revision, self.name, obj)
        self._on_config(now, entry, rebroadcast=True)
        return self._flush()

    def put_object(self, now: float, obj: ConfigObject) -> list[Effect]:
        """Publish a typed config object at its ``revision`` (the control store's counter)."""
        return self.put_config(now, obj.kind, obj.namespace, obj.name, obj.revision, obj.to_dict())

    def delete_object(self, now: float, kind: str, namespace: str, name: str,
                      revision: int) -> list[Effect]:
        """Publish a tombstone for the key at ``revision``."""
        return self.put_config(now, kind, namespace, name, revision, None)

    def handle_timer(self, now: float, timer: tuple) -> list[Effect]:
        getattr(self, "_timer_" + timer[0])(now, *timer[1:])
        return self._flush()

    def receive_datagram(self, now: float, data: bytes) -> list[Effect]:
        """Feed one UDP payload; bad ones are dropped and counted."""
        packet = self.codec.decode(now + self.wall_offset, data)
        if packet is None:
            return []
        self.counters["packets_received"] += 1
        self.counters["bytes_received"] += len(data)
        self._packet_src = packet.src
        handlers = self._handlers
        for msg in packet.msgs:
            handler = handlers.get(type(msg))
            if handler is None:
                self.counters["unexpected_messages"] += 1
            else:
                handler(self, now, msg)
        return self._flush()

    def receive_stream(self, now: float, data: bytes) -> tuple[bytes | None, list[Effect]]:
        """Serve one push/pull frame; returns the reply frame (``None``: drop the connection)."""
        msg = self._open_stream(now, data)
        if msg is None:
            return None, self._flush()
        self.counters["streams_received"] += 1
        self.counters["stream_bytes_received"] += len(data)
        if msg.members:
            self._merge(now, msg, rebroadcast=True)
            reply = self._push_pull(join=msg.join)
        else:  # a config exchange: take what is offered, answer what is wanted
            self._merge(now, msg, rebroadcast=True)
            wanted = [self._config[key] for key in map(tuple, msg.want) if key in self._config]
            reply = PushPull(self.name, self.addr, False, [], wanted)
        frame = self._seal([encode_message(reply)], now, stream=True)
        self.counters["stream_bytes_sent"] += len(frame)
        return frame, self._flush()

    def receive_stream_reply(self, now: float, data: bytes) -> list[Effect]:
        msg = self._open_stream(now, data)
        if msg is not None:
            self.counters["stream_bytes_received"] += len(data)
            # the reply to our own join is the cluster's view: nothing in it is news to spread
            self._merge(now, msg, rebroadcast=not msg.join)
        return self._flush()

    # -- views -----------------------------------------------------------------------------------
    def member(self, name: str) -> Member | None:
        if name == self.name:
            return self._self_member()
        return self._members.get(name)

    def members(self) -> list[Member]:
        """Every member we know, ourselves included, dead and left ones until reaped."""
        return [self._self_member(), *self._members.values()]

    def live_members(self) -> list[Member]:
        return [m for m in self.members() if m.state <= SUSPECT]

    def registry(self) -> list[ServiceInstance]:
        """Service instances announced by live members (ours included): the mesh registry."""
        out = list(self.meta)
        for m in self._members.values():
            if m.state <= SUSPECT:
                out.extend(m.meta)
        return out

    def config_entries(self, *, include_deleted: bool = False) -> list[ConfigEntry]:
        return [e for e in self._config.values() if include_deleted or e.obj is not None]

    def config_entry(self, kind: str, namespace: str, name: str) -> ConfigEntry | None:
        return self._config.get((kind, namespace, name))

    def config_objects(self) -> list[ConfigObject]:
        """The live entries as typed objects (revision from the entry); an entry that does not
        validate (a newer peer's kind, a bad writer) is skipped and counted ``config_invalid``."""
        out = []
        for entry in self._config.values():
            if entry.obj is None or entry.kind == INSTANCE_KIND:
                continue
            try:
                obj = object_from_dict(entry.obj)
            except ConfigError:
                self.counters["config_invalid"] += 1
                continue
            out.append(msgspec.structs.replace(obj, revision=entry.revision))
        return out

    def static_instances(self) -> list[ServiceInstance]:
        """Instances registered statically through the control (``trimesh register``), carried
        as :data:`INSTANCE_KIND` entries; a malformed one is skipped and counted
        ``config_invalid``."""
        out: list[ServiceInstance] = []
        for entry in self._config.values():
            if entry.kind != INSTANCE_KIND or entry.obj is None:
                continue
            try:
                out.extend(msgspec.convert(entry.obj.get("instances"),
                                           tuple[ServiceInstance, ...]))
            except (msgspec.ValidationError, AttributeError):
                self.counters["config_invalid"] += 1
        return out

    def view(self) -> tuple[list[ServiceInstance], list[ConfigObject]]:
        """One consistent read of the registry (live members' instances, then static ones) and
        the config objects: a caller that builds a routing snapshot from it never sees half of
        a change, because nothing can run between the two reads of this synchronous call."""
        return self.registry() + self.static_instances(), self.config_objects()

    def push_direct(self, now: float, kind: str, namespace: str, name: str) -> list[Effect]:
        """First-hop accelerator (trimesh addition): send the entry we hold for the key straight
        to every live member in one datagram each, besides gossiping it. The writer of record
        (the control) uses it so a change reaches every member in one network hop; gossip and
        push/pull stay the repair path for the packets lost. Entries too big for a datagram are
        already pushed over TCP and hinted (:meth:`put_config`)."""
        entry = self._config.get((kind, namespace, name))
        if entry is None:
            return []
        raw = encode_message(entry)
        if len(raw) > self.config.udp_buffer_size - self._header:
            return []
        for member in self._members.values():
            if member.state <= SUSPECT:
                self._emit_packet(now, member.addr, [raw])
                self.counters["direct_pushes"] += 1
        return self._flush()

    def statistics(self) -> dict[str, Any]:
        states = [0, 0, 0, 0]
        for m in self._members.values():
            states[m.state] += 1
        stats: dict[str, Any] = dict(self.counters)
        stats.update(self.codec.statistics())
        stats.update(
            incarnation=self.incarnation, lhm=self.lhm, alive=states[ALIVE] + 1,
            suspect=states[SUSPECT], dead=states[DEAD], left=states[LEFT],
            queued_broadcasts=len(self._queue), config_entries=len(self._config),
            tombstones=len(self._tombstones))
        return stats

    def __repr__(self) -> str:
        return (f"<SwimNode {self.name} at {self.addr} inc={self.incarnation} live={self._live} "
                f"known={len(self._members) + 1} lhm={self.lhm} queued={len(self._queue)}>")

    # -- timers ----------------------------------------------------------------------------------
    def _timer_probe(self, now: float) -> None:
        self._finish_probe(now)
        if self.leaving:
            return
        cfg = self.config
        scale = self.lhm + 1
        self._schedule(now + cfg.probe_interval * scale, ("probe",))
        target = self._next_probe_target()
        if target is None:
            return
        self._seq += 1
        seq = self._seq
        self._probe = _Probe(seq, target.name, target.incarnation)
        self.counters["probes"] += 1
        msgs = [encode_message(Ping(seq, target.name, self.name, self.addr))]
        if target.state == SUSPECT:  # Lifeguard's buddy system: tell the accused
            msgs.append(encode_message(Suspect(target.name, target.incarnation, self.name)))
        self._send(now, target.addr, msgs)
        self._schedule(now + cfg.probe_timeout * scale, ("probe_timeout", seq))

    def _timer_probe_timeout(self, now: float, seq: int) -> None:
        probe = self._probe
        if probe is None or probe.seq != seq or probe.acked:
            return
        target = self._members.get(probe.target)
        if target is None:
            return
        relays = self._random_members(self.config.indirect_checks, exclude=probe.target, live_only=True)
        ping = encode_message(IndirectPing(seq, target.name, target.addr, self.name, self.addr))
        for relay in relays:
            self._send(now, relay.addr, [ping])
        probe.expected_nacks = len(relays)
        self.counters["indirect_probes"] += len(relays)

    def _finish_probe(self, now: float) -> None:
        probe, self._probe = self._probe, None
        if probe is None or probe.acked:
            return
        self.counters["probe_failures"] += 1
        # Lifeguard LHM: missing nacks mean our own links/CPU are the likelier culprit
        if probe.expected_nacks > 0:
            self._adjust_lhm(probe.expected_nacks - probe.nacks)
        else:
            self._adjust_lhm(1)
        self._on_suspect(now, Suspect(probe.target, probe.incarnation, self.name))

    def _timer_relay_timeout(self, now: float, seq: int) -> None:
        relay = self._relays.pop(seq, None)
        if relay is not None:
            addr, their_seq = relay
            self._send(now, addr, [encode_message(Nack(their_seq))])

    def _timer_gossip(self, now: float) -> None:
        if not self._queue:
            self._gossip_armed = False
            return
        self._schedule(now + self.config.gossip_interval, ("gossip",))
        targets = self._random_members(self.config.gossip_nodes, exclude=None, live_only=False,
                                       now=now)
        limit = self.config.retransmit_limit(self._live)
        budget = self.config.udp_buffer_size - self._header
        for target in targets:
            raws = self._queue.take(budget, limit)
            if not raws:
                break
            self._emit_packet(now, target.addr, raws)

    def _timer_pushpull(self, now: float) -> None:
        self._schedule(now + self.config.push_pull_scaled(self._live), ("pushpull",))
        if self.leaving:
            return
        peers = self._random_members(1, exclude=None, live_only=True)
        if peers:
            self._stream(now, peers[0].addr, self._push_pull(join=False))

    def _timer_reconnect(self, now: float) -> None:
        """Serf's reconnector: now and then push/pull with a random *failed* member (chance
        failed/live), so a healed partition — whose sides think each other dead — merges."""
        self._schedule(now + self.config.reconnect_interval, ("reconnect",))
        if self.leaving:
            return
        if len(self._members) + 1 == self._live:
            return
        failed = [m for m in self._members.values() if m.state == DEAD]
        if failed and self.rng.random() < len(failed) / self._live:
            self._stream(now, self.rng.choice(failed).addr, self._push_pull(join=False))

    def _timer_suspicion(self, now: float, name: str, incarnation: int) -> None:
        member = self._members.get(name)
        sus = self._suspicions.get(name)
        if (member is None or sus is None or member.state != SUSPECT
                or member.incarnation != incarnation or now < sus.deadline - 1e-9):
            return
        if not sus.verifying:
            # trimesh addition: the accusation is checked with the accused directly before the
            # verdict (it answers a direct accusation with its current Alive)
            sus.verifying = True
            sus.deadline = now + self.config.probe_interval * (self.lhm + 1)
            self.counters["verifications"] += 1
            self._verify(now, member)
            self._schedule(now + self.config.probe_timeout * (self.lhm + 1),
                           ("suspicion_verify", name, incarnation))
            self._schedule(sus.deadline, ("suspicion", name, incarnation))
            return
        self.counters["deaths_declared"] += 1
        self._on_dead(now, Dead(name, incarnation, self.name))

    def _timer_suspicion_verify(self, now: float, name: str, incarnation: int) -> None:
        member = self._members.get(name)
        if member is not None and member.state == SUSPECT and member.incarnation == incarnation:
            self._verify(now, member)

    def _verify(self, now: float, member: Member) -> None:
        self._send(now, member.addr, [encode_message(Suspect(member.name, member.incarnation,
                                                             self.name))])

    def _timer_reap(self, now: float) -> None:
        self._schedule(now + REAP_INTERVAL, ("reap",))
        horizon = now - self.config.reconnect_timeout
        gone = [m.name for m in self._members.values() if m.state >= DEAD and m.since < horizon]
        for name in gone:
            del self._members[name]
            self._names.remove(name)
            self.counters["members_reaped"] += 1
        ttl_horizon = now - self.config.tombstone_ttl
        expired = [k for k, t in self._tombstones.items() if t < ttl_horizon]
        for key in expired:
            del self._tombstones[key]
            del self._config[key]
            self.counters["tombstones_expired"] += 1

    # -- message handlers -------------------------------------------------------------------------
    def _handle_ping(self, now: float, msg: Ping) -> None:
        if msg.target != self.name:
            self.counters["misdirected_pings"] += 1
            return
        self._send(now, msg.source_addr, [encode_message(Ack(msg.seq))])

    def _handle_indirect(self, now: float, msg: IndirectPing) -> None:
        self._seq += 1
        seq = self._seq
        self._relays[seq] = (msg.source_addr, msg.seq)
        self.counters["relayed_pings"] += 1
        self._send(now, msg.target_addr, [encode_message(Ping(seq, msg.target, self.name, self.addr))])
        self._schedule(now + self.config.probe_timeout, ("relay_timeout", seq))

    def _handle_ack(self, now: float, msg: Ack) -> None:
        probe = self._probe
        if probe is not None and probe.seq == msg.seq:
            if not probe.acked:
                probe.acked = True
                self._adjust_lhm(-1)
            return
        relay = self._relays.pop(msg.seq, None)
        if relay is not None:
            addr, their_seq = relay
            self._send(now, addr, [encode_message(Ack(their_seq))])

    def _handle_nack(self, now: float, msg: Nack) -> None:
        probe = self._probe
        if probe is not None and probe.seq == msg.seq:
            probe.nacks += 1
            self.counters["nacks_received"] += 1

    def _handle_alive(self, now: float, msg: Alive) -> None:
        self._on_alive(now, msg, rebroadcast=True)

    def _handle_suspect(self, now: float, msg: Suspect) -> None:
        self._on_suspect(now, msg, direct=self._packet_src == msg.source)

    def _handle_dead(self, now: float, msg: Dead) -> None:
        self._on_dead(now, msg, direct=self._packet_src == msg.source)

    def _handle_config(self, now: float, msg: ConfigEntry) -> None:
        self._on_config(now, msg, rebroadcast=True)

    def _handle_hint(self, now: float, msg: ConfigHint) -> None:
        key = msg.key
        local = self._config.get(key)
        if local is not None and local.version >= (msg.revision, msg.origin):
            return
        if self._pulling.get(key, -1.0) > now or msg.holder == self.addr:
            return
        self._pulling[key] = now + 2 * self.config.probe_interval  # retry later if it fails
        self._stream(now, msg.holder, PushPull(self.name, self.addr, False, [], [], [key]))

    _handlers = {
        Ping: _handle_ping, IndirectPing: _handle_indirect, Ack: _handle_ack, Nack: _handle_nack,
        Alive: _handle_alive, Suspect: _handle_suspect, Dead: _handle_dead,
        ConfigEntry: _handle_config, ConfigHint: _handle_hint,
    }

    # -- state transitions (memberlist aliveNode / suspectNode / deadNode) ------------------------
    def _absurd(self, incarnation: int, known: int, *, about_us: bool = False) -> bool:
        if incarnation > known + self.config.max_incarnation_jump or (
                about_us and incarnation >= MAX_INCARNATION):
            self.counters["absurd_incarnation"] += 1
            return True
        return False

    def _on_alive(self, now: float, msg: Alive, *, rebroadcast: bool) -> None:
        if msg.node == self.name:
            if msg.incarnation < self.incarnation or self._absurd(
                    msg.incarnation, self.incarnation, about_us=True):
                return
            if (msg.incarnation == self.incarnation and msg.addr == self.addr
                    and msg.meta == self.meta):
                return
            self._refute(now, msg.incarnation)  # an older life of ours, or a forgery
            return
        old = self._members.get(msg.node)
        if old is None:
            member = Member(msg.node, msg.addr, msg.incarnation, ALIVE, msg.meta, now)
            self._members[msg.node] = member
            self._names.append(msg.node)
            self._live += 1
            self._notify(MemberEvent("join", member))
        else:
            if msg.incarnation <= old.incarnation or self._absurd(msg.incarnation, old.incarnation):
                return
            changed = msg.addr != old.addr or msg.meta != old.meta
            since = now if old.state != ALIVE else old.since
            member = Member(msg.node, msg.addr, msg.incarnation, ALIVE, msg.meta, since)
            self._members[msg.node] = member
            self._suspicions.pop(msg.node, None)
            if old.state >= DEAD:
                self._live += 1
                self._notify(MemberEvent("join", member))
            elif old.state == SUSPECT:
                self._notify(MemberEvent("recover", member))
                if changed:
                    self._notify(MemberEvent("update", member))
            elif changed:
                self._notify(MemberEvent("update", member))
        if rebroadcast:
            self._broadcast(("m", msg.node), msg)
            self._arm_gossip(now)

    def _on_suspect(self, now: float, msg: Suspect, *, direct: bool = False) -> None:
        if msg.node == self.name:
            self._accused(now, msg.incarnation, msg.source, direct)
            return
        old = self._members.get(msg.node)
        if old is None or msg.incarnation < old.incarnation or old.state >= DEAD:
            return
        if self._absurd(msg.incarnation, old.incarnation):
            return
        if old.state == SUSPECT and msg.incarnation == old.incarnation:
            sus = self._suspicions.get(msg.node)
            if sus is not None and sus.confirm(msg.source):
                self.counters["confirmations"] += 1
                self._schedule(sus.deadline, ("suspicion", msg.node, msg.incarnation))
                self._broadcast(("m", msg.node), msg)
                self._arm_gossip(now)
            return
        member = Member(old.name, old.addr, msg.incarnation, SUSPECT, old.meta, now)
        self._members[msg.node] = member
        cfg = self.config
        n = self._live
        lo = cfg.suspicion_min_timeout(n)
        sus = _Suspicion(now, cfg.suspicion_confirmations(n), lo,
                         cfg.suspicion_max_timeout_mult * lo, msg.source)
        self._suspicions[msg.node] = sus
        self.counters["suspicions"] += 1
        self._schedule(sus.deadline, ("suspicion", msg.node, msg.incarnation))
        self._broadcast(("m", msg.node), msg)
        self._arm_gossip(now)
        if old.state != SUSPECT:
            self._notify(MemberEvent("suspect", member))

    def _on_dead(self, now: float, msg: Dead, *, direct: bool = False) -> None:
        if msg.node == self.name:  # (our own leave echo is ignored inside: we are leaving)
            self._accused(now, msg.incarnation, msg.source, direct)
            return
        old = self._members.get(msg.node)
        if old is None or msg.incarnation < old.incarnation or old.state >= DEAD:
            return
        if self._absurd(msg.incarnation, old.incarnation):
            return
        state = LEFT if msg.source == msg.node else DEAD
        member = Member(old.name, old.addr, msg.incarnation, state, old.meta, now)
        self._members[msg.node] = member
        self._suspicions.pop(msg.node, None)
        self._live -= 1
        self._broadcast(("m", msg.node), msg)
        self._arm_gossip(now)
        self._notify(MemberEvent("leave" if state == LEFT else "fail", member))

    def _accused(self, now: float, incarnation: int, source: str, direct: bool) -> None:
        """A suspicion or death claim about us: refute a current one; answer an accuser that
        tells us directly (a buddy-system ping, a verification) with our current Alive, even
        when its claim is stale — it evidently missed our refutation."""
        if self.leaving or self._absurd(incarnation, self.incarnation, about_us=True):
            return
        if incarnation >= self.incarnation:
            self._refute(now, incarnation)
        if direct:
            accuser = self._members.get(source)
            if accuser is not None:
                self.counters["accusers_answered"] += 1
                self._send(now, accuser.addr, [encode_message(
                    Alive(self.name, self.incarnation, self.addr, self.meta))])

    def _refute(self, now: float, accused: int) -> None:
        inc = max(self.incarnation, accused) + 1
        self.incarnation = min(inc, MAX_INCARNATION)
        self.counters["refutations"] += 1
        self._adjust_lhm(1)  # Lifeguard: being suspected hints that we are the slow one
        self._broadcast(("m", self.name), Alive(self.name, self.incarnation, self.addr, self.meta))
        self._arm_gossip(now)

    def _on_config(self, now: float, entry: ConfigEntry, *, rebroadcast: bool) -> None:
        key = entry.key
        old = self._config.get(key)
        if old is not None and entry.version <= old.version:
            self.counters["config_stale"] += 1
            return
        self._config[key] = entry
        if entry.obj is None:
            self._tombstones[key] = now
        else:
            self._tombstones.pop(key, None)
        self.counters["config_applied"] += 1
        self._pulling.pop(key, None)
        self._notify(ConfigEvent(entry, old))
        if not rebroadcast:
            return
        raw = encode_message(entry)
        if len(raw) <= self.config.udp_buffer_size - self._header:
            self._broadcast(("c", key), raw)
        else:
            # too big to piggyback: gossip a hint naming us as a holder (those missing it pull
            # over TCP), and the writer pushes it to a few members at once
            self._broadcast(("c", key), ConfigHint(entry.kind, entry.namespace, entry.name,
                                                   entry.revision, entry.origin, self.addr))
            if entry.origin == self.name:
                push = PushPull(self.name, self.addr, False, [], [entry])
                for peer in self._random_members(self.config.gossip_nodes, exclude=None,
                                                 live_only=True):
                    self._stream(now, peer.addr, push)
        self._arm_gossip(now)

    # -- push/pull -------------------------------------------------------------------------------
    def _push_pull(self, *, join: bool) -> PushPull:
        rows = [MemberState(self.name, self.addr, self.incarnation,
                            LEFT if self.leaving else ALIVE, self.meta)]
        rows.extend(MemberState(m.name, m.addr, m.incarnation, m.state, m.meta)
                    for m in self._members.values())
        return PushPull(self.name, self.addr, join, rows, list(self._config.values()))

    def _open_stream(self, now: float, data: bytes) -> PushPull | None:
        packet = self.codec.decode(now + self.wall_offset, data, stream=True)
        if packet is None:
            return None
        if len(packet.msgs) != 1 or type(packet.msgs[0]) is not PushPull:
            self.counters["unexpected_messages"] += 1
            return None
        return packet.msgs[0]

    def _merge(self, now: float, msg: PushPull, *, rebroadcast: bool) -> None:
        """memberlist ``mergeState``: remote ``dead`` becomes our suspicion, not a verdict."""
        for row in msg.members:
            if row.state == ALIVE:
                self._on_alive(now, Alive(row.node, row.incarnation, row.addr, row.meta),
                               rebroadcast=rebroadcast)
            elif row.state == LEFT:
                self._on_dead(now, Dead(row.node, row.incarnation, row.node))
            else:
                if row.node != self.name and row.node not in self._members and row.state == SUSPECT:
                    self._on_alive(now, Alive(row.node, row.incarnation, row.addr, row.meta),
                                   rebroadcast=rebroadcast)
                self._on_suspect(now, Suspect(row.node, row.incarnation, msg.source))
        for entry in msg.config:
            self._on_config(now, entry, rebroadcast=rebroadcast)

    # -- helpers ---------------------------------------------------------------------------------
    def _self_member(self) -> Member:
        return Member(self.name, self.addr, self.incarnation, LEFT if self.leaving else ALIVE,
                      self.meta, 0.0)

    def _adjust_lhm(self, delta: int) -> None:
        self.lhm = min(max(self.lhm + delta, 0), self.config.awareness_max_multiplier - 1)

    def _next_probe_target(self) -> Member | None:
        """Round-robin over a random affine permutation of the member list (SWIM §4.3)."""
        names, members = self._names, self._members
        length = len(names)
        for _ in range(length):
            start, step, pass_len = self._rr
            if self._rr_i >= pass_len or pass_len != length:
                start = self.rng.randrange(length)
                step = 1
                if length > 2:
                    step = self.rng.randrange(1, length)
                    while math.gcd(step, length) != 1:
                        step = self.rng.randrange(1, length)
                self._rr = (start, step, length)
                self._rr_i = 0
            member = members[names[(start + self._rr_i * step) % length]]
            self._rr_i += 1
            if member.state <= SUSPECT:
                return member
        return None

    def _random_members(self, k: int, *, exclude: str | None, live_only: bool,
                        now: float = 0.0) -> list[Member]:
        """Up to ``k`` distinct random members: live ones, or (for gossip) also those dead for
        less than ``gossip_to_the_dead_time`` so they hear of it and can refute."""
        names, members = self._names, self._members
        horizon = now - self.config.gossip_to_the_dead_time

        def ok(m: Member) -> bool:
            if m.name == exclude:
                return False
            return m.state <= SUSPECT or (not live_only and m.since >= horizon)

        if len(names) <= 4 * k:
            pool = [m for m in (members[n] for n in names) if ok(m)]
            return pool if len(pool) <= k else self.rng.sample(pool, k)
        chosen: dict[str, Member] = {}
        randrange = self.rng.randrange
        for _ in range(4 * k):
            m = members[names[randrange(len(names))]]
            if m.name not in chosen and ok(m):
                chosen[m.name] = m
                if len(chosen) == k:
                    break
        return list(chosen.values())

    def _broadcast(self, key: tuple, msg: Any) -> None:
        raw = msg if isinstance(msg, msgspec.Raw) else encode_message(msg)
        self._queue.push(key, raw)

    def _arm_gossip(self, now: float) -> None:
        if self._gossip_armed or not self._started:
            return
        self._gossip_armed = True
        interval = self.config.gossip_interval
        periods = max(0, math.floor((now - self._gossip_phase) / interval) + 1)
        self._schedule(self._gossip_phase + periods * interval, ("gossip",))

    def _send(self, now: float, addr: str, msgs: list[msgspec.Raw]) -> None:
        """A datagram of ``msgs`` with as many queued broadcasts piggybacked as fit."""
        budget = self.config.udp_buffer_size - self._header - sum(len(m) for m in msgs)
        extra = self._queue.take(budget, self.config.retransmit_limit(self._live))
        if extra:
            msgs = msgs + extra
        self._emit_packet(now, addr, msgs)

    def _emit_packet(self, now: float, addr: str, msgs: list[msgspec.Raw]) -> None:
        data = self._seal(msgs, now, stream=False)
        self.counters["packets_sent"] += 1
        self.counters["bytes_sent"] += len(data)
        self._fx.append(Send(addr, data))

    def _stream(self, now: float, addr: str, msg: PushPull) -> None:
        data = self._seal([encode_message(msg)], now, stream=True)
        self.counters["streams_sent"] += 1
        self.counters["stream_bytes_sent"] += len(data)
        self._fx.append(Stream(addr, data))

    def _seal(self, msgs: list[msgspec.Raw], now: float, *, stream: bool) -> bytes:
        nonce = self.rng.randbytes(NONCE_SIZE)
        return self.codec.encode(now + self.wall_offset, self.name, msgs, nonce, stream=stream)

    def _schedule(self, at: float, timer: tuple) -> None:
        self._fx.append(Schedule(at, timer))

    def _notify(self, event: MemberEvent | ConfigEvent) -> None:
        self._fx.append(Notify(event))

    def _flush(self) -> list[Effect]:
        fx, self._fx = self._fx, []
        return fx
