"""Gossip configuration: memberlist's LAN profile and the formulas derived from it. PURE.

Every default is memberlist's ``DefaultLANConfig`` (hashicorp/memberlist ``config.go``); the derived
quantities follow memberlist's ``util.go`` / ``suspicion.go``:

* suspicion timeout (Lifeguard's *minimum*), ``suspicion_mult × max(1, log10(max(1, n))) ×
  probe_interval`` and its maximum ``suspicion_max_timeout_mult ×`` that;
* retransmit limit of a piggybacked message, ``retransmit_mult × ceil(log10(n + 1))``;
* push/pull interval scaling, ``ceil(log2 n − log2 32) + 1`` times the interval above 32 members.

:meth:`GossipConfig.dead_detection_bound` is the bound the tests check for "a crashed member is
declared dead by every member"; docs/gossip.md derives it.
"""

from __future__ import annotations

import math

import msgspec

# memberlist DefaultLANConfig (config.go)
PROBE_INTERVAL = 1.0  # memberlist LAN ProbeInterval
PROBE_TIMEOUT = 0.5  # memberlist LAN ProbeTimeout
GOSSIP_INTERVAL = 0.2  # memberlist LAN GossipInterval
GOSSIP_NODES = 3  # memberlist LAN GossipNodes
INDIRECT_CHECKS = 3  # memberlist LAN IndirectChecks
RETRANSMIT_MULT = 4  # memberlist LAN RetransmitMult
SUSPICION_MULT = 4  # memberlist LAN SuspicionMult
SUSPICION_MAX_TIMEOUT_MULT = 6  # memberlist LAN SuspicionMaxTimeoutMult
PUSH_PULL_INTERVAL = 30.0  # memberlist LAN PushPullInterval
AWARENESS_MAX_MULTIPLIER = 8  # memberlist AwarenessMaxMultiplier (Lifeguard LHM)
GOSSIP_TO_THE_DEAD_TIME = 30.0  # memberlist LAN GossipToTheDeadTime
UDP_BUFFER_SIZE = 1400  # memberlist UDPBufferSize: the largest datagram sent or accepted
RECONNECT_INTERVAL = 30.0  # Serf ReconnectInterval: how often to try a failed member
RECONNECT_TIMEOUT = 24 * 3600.0  # Serf ReconnectTimeout: failed/left members are forgotten after
# trimesh's own choices (docs/gossip.md explains them)
REPLAY_WINDOW = 30.0  # seconds a sealed packet's timestamp may differ from the receiver's clock
TOMBSTONE_TTL = 24 * 3600.0  # how long a deleted config entry is remembered (and gossiped)
MAX_STREAM_SIZE = 8 * 1024 * 1024  # largest push/pull frame accepted over TCP
MAX_INCARNATION_JUMP = 1 << 16  # a claim further ahead of our view than this is absurd
FIRST_PROBE_INTERVALS = 10  # probe periods allowed before some member probes a crashed one


class GossipConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Timing and sizing of one gossip member. Seconds are floats."""

    probe_interval: float = PROBE_INTERVAL
    probe_timeout: float = PROBE_TIMEOUT
    gossip_interval: float = GOSSIP_INTERVAL
    gossip_nodes: int = GOSSIP_NODES
    indirect_checks: int = INDIRECT_CHECKS
    retransmit_mult: int = RETRANSMIT_MULT
    suspicion_mult: int = SUSPICION_MULT
    suspicion_max_timeout_mult: int = SUSPICION_MAX_TIMEOUT_MULT
    push_pull_interval: float = PUSH_PULL_INTERVAL
    awareness_max_multiplier: int = AWARENESS_MAX_MULTIPLIER
    gossip_to_the_dead_time: float = GOSSIP_TO_THE_DEAD_TIME
    reconnect_interval: float = RECONNECT_INTERVAL
    reconnect_timeout: float = RECONNECT_TIMEOUT
    udp_buffer_size: int = UDP_BUFFER_SIZE
    replay_window: float = REPLAY_WINDOW
    tombstone_ttl: float = TOMBSTONE_TTL
    max_stream_size: int = MAX_STREAM_SIZE
    max_incarnation_jump: int = MAX_INCARNATION_JUMP

    def __post_init__(self) -> None:
        if self.probe_timeout >= self.probe_interval:
            raise ValueError(
                f"probe_timeout ({self.probe_timeout}) must be below probe_interval "
                f"({self.probe_interval})")
        for field in ("probe_interval", "gossip_interval", "push_pull_interval"):
            if getattr(self, field) <= 0:
                raise ValueError(f"{field} must be > 0")
        if self.gossip_nodes < 1 or self.retransmit_mult < 1 or self.suspicion_mult < 1:
            raise ValueError("gossip_nodes, retransmit_mult and suspicion_mult must be >= 1")
        if self.udp_buffer_size < 512:
            raise ValueError("udp_buffer_size must be >= 512")

    # -- memberlist formulas -------------------------------------------------------------------
    def suspicion_min_timeout(self, n: int) -> float:
        """memberlist ``suspicionTimeout``: the Lifeguard floor for ``n`` known members."""
        return self.suspicion_mult * max(1.0, math.log10(max(1, n))) * self.probe_interval

    def suspicion_max_timeout(self, n: int) -> float:
        """The Lifeguard ceiling: the timeout with no independent confirmation."""
        return self.suspicion_max_timeout_mult * self.suspicion_min_timeout(n)

    def suspicion_confirmations(self, n: int) -> int:
        """Lifeguard's ``k``: independent suspicions that shrink the timeout to its floor."""
        k = self.suspicion_mult - 2
        return 0 if n - 2 < k else k

    def retransmit_limit(self, n: int) -> int:
        """memberlist ``retransmitLimit``: how often each member piggybacks one message."""
        return self.retransmit_mult * max(1, math.ceil(math.log10(n + 1)))

    def push_pull_scaled(self, n: int) -> float:
        """memberlist ``pushPullScale``: the push/pull interval grows with log2 of the size."""
        if n <= 32:
            return self.push_pull_interval
        mult = math.ceil(math.log2(n) - math.log2(32)) + 1
        return self.push_pull_interval * mult

    def dissemination_bound(self, n: int) -> float:
        """Seconds for one piggybacked message to reach every member with no loss (a bound with
        slack, not an average): ``ceil(log_{f+1} n)`` rounds of epidemic growth (each holder tells
        ``f`` more per gossip interval) plus ``ceil(ln n / f)`` rounds in which the last members
        are found (each round a missing member is reached with probability ``≈ 1 − e^-f``),
        plus two rounds of scheduling phase."""
        n = max(2, n)
        f = self.gossip_nodes
        rounds = math.ceil(math.log(n) / math.log(f + 1)) + math.ceil(math.log(n) / f) + 2
        return rounds * self.gossip_interval

    def dead_detection_bound(self, n: int) -> float:
        """Seconds within which every member declares a crashed member dead (healthy cluster of
        ``n``, no packet loss): some member probes it within ``FIRST_PROBE_INTERVALS`` periods
        (each period it escapes all ``n − 1`` probers with probability ``≈ 1/e``), that probe
        fails after one more period (direct + indirect), the suspicion then lasts at most the
        Lifeguard maximum plus one period of direct verification when it is unconfirmed, and the
        ``dead`` message spreads within :meth:`dissemination_bound`."""
        return ((FIRST_PROBE_INTERVALS + 2) * self.probe_interval
                + self.suspicion_max_timeout(n) + self.dissemination_bound(n))


# memberlist DefaultLocalConfig (config.go): a loopback or single-host network, where round trips
# are tiny and packets are rarely lost. Faster probes and gossip, shorter suspicion.
LOCAL_PROFILE = GossipConfig(
    probe_interval=1.0, probe_timeout=0.2, gossip_interval=0.1, indirect_checks=1,
    retransmit_mult=2, suspicion_mult=3, push_pull_interval=15.0,
    gossip_to_the_dead_time=15.0)
PROFILES = {"lan": GossipConfig(), "local": LOCAL_PROFILE}
DEFAULT_PROFILE = "lan"


def gossip_profile(name: str) -> GossipConfig:
    """The named timing profile: ``lan`` (memberlist ``DefaultLANConfig``, the default) or
    ``local`` (memberlist ``DefaultLocalConfig``). ValueError names the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(PROFILES)
        raise ValueError(f"unknown gossip profile {name!r} (known: {known})") from None
