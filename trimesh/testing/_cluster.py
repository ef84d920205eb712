"""A discrete-event driver for N-node gossip clusters over :class:`SimNetwork`, in virtual time.

Running thousands of Trio tasks (each with its own sockets and timers) under ``MockClock`` costs far
more per event than the protocol itself, so the cluster drives the REAL pure core
(:class:`trimesh.discovery.SwimNode`, sealing and opening every packet with AES-GCM) from one heap
of timestamped events: timers the nodes scheduled, datagrams in flight, push/pull frames and their
replies. One event is one call into one node; effects go back onto the heap through the network.
Everything random derives from ``seed``: a failing run is replayed by its seed.

``SimCluster.converged(n, seed=...)`` builds ``n`` members that already know each other (as after
a long quiet period), which is how the large-N tests and ``bench/gossip_sim.py`` start.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterable

from trimesh.config import ServiceInstance
from trimesh.discovery import (ALIVE, GossipConfig, Keyring, Member, Notify, Schedule, Send, Stream,
                               SwimNode)

from ._simnet import SimNetwork

SIM_KEY = b"trimesh-sim-key!"  # 128-bit AES key every simulated member shares

_TIMER, _DGRAM, _STREAM, _REPLY = 0, 1, 2, 3


class SimCluster:
    """Members keyed by name (a member's address is its name), one virtual clock."""

    def __init__(self, *, seed: int = 0, config: GossipConfig | None = None,
                 network: SimNetwork | None = None, key: bytes | None = SIM_KEY,
                 start: float = 0.0, own_keyrings: bool = False) -> None:
        self.seed = seed
        self.config = config or GossipConfig()
        self.network = network if network is not None else SimNetwork(seed)
        self.key = key
        self.own_keyrings = own_keyrings  # one Keyring per member (to test key rotation)
        self.keyring = Keyring(key) if key is not None else None
        self.now = start
        self.nodes: dict[str, SwimNode] = {}
        self.down: set[str] = set()
        self.listeners: list[Callable[[float, str, object], None]] = []
        self.events_processed = 0
        self._rng = random.Random(seed)
        self._heap: list[tuple] = []
        self._seq = 0

    @classmethod
    def converged(cls, n: int, *, seed: int = 0, prefix: str = "n",
                  meta: Callable[[int], Iterable[ServiceInstance]] | None = None,
                  **kw) -> SimCluster:
        """``n`` started members that all know each other alive at incarnation 0."""
        cluster = cls(seed=seed, **kw)
        names = [f"{prefix}{i}" for i in range(n)]
        view = {name: Member(name, name, 0, ALIVE, tuple(meta(i)) if meta else (), 0.0)
                for i, name in enumerate(names)}
        for name in names:
            node = cluster._make(name, view[name].meta, members=view)
            cluster._apply(name, node.start(cluster.now, announce=False))
        return cluster

    def _make(self, name: str, meta: Iterable[ServiceInstance], **kw) -> SwimNode:
        keyring = Keyring(self.key) if self.own_keyrings and self.key else self.keyring
        node = SwimNode(name, name, rng=random.Random(self._rng.getrandbits(64)),
                        config=self.config, keyring=keyring, meta=meta, **kw)
        self.nodes[name] = node
        self.down.discard(name)
        return node

    # -- membership operations -------------------------------------------------------------------
    def add_node(self, name: str, *, meta: Iterable[ServiceInstance] = (),
                 seeds: Iterable[str] | None = None) -> SwimNode:
        """Start a new member and join it through ``seeds`` (default: one random live member)."""
        if seeds is None:
            live = [n for n in self.nodes if n not in self.down]
            seeds = [self._rng.choice(live)] if live else []
        node = self._make(name, meta)
        self._apply(name, node.start(self.now))
        self._apply(name, node.join(self.now, list(seeds)))
        return node

    def crash(self, name: str) -> None:
        """The member stops dead: no more timers, packets to it vanish."""
        self.down.add(name)

    def leave(self, name: str) -> None:
        self._apply(name, self.nodes[name].leave(self.now))

    def put_config(self, name: str, kind: str, namespace: str, obj_name: str, revision: int,
                   obj: dict | None) -> None:
        self._apply(name, self.nodes[name].put_config(self.now, kind, namespace, obj_name,
                                                      revision, obj))

    def update_meta(self, name: str, meta: Iterable[ServiceInstance]) -> None:
        self._apply(name, self.nodes[name].update_meta(self.now, meta))

    def live_nodes(self) -> list[SwimNode]:
        return [node for name, node in self.nodes.items() if name not in self.down]

    # -- running ---------------------------------------------------------------------------------
    def run_for(self, seconds: float) -> None:
        self.run_until(self.now + seconds)

    def run_until(self, deadline: float, until: Callable[[], bool] | None = None,
                  check_every: float = 0.05) -> bool:
        """Process events up to ``deadline``; with ``until``, stop as soon as it holds (checked
        every ``check_every`` virtual seconds). Returns whether ``until`` held."""
        if until is None:
            self._process(deadline)
            return True
        while True:
            if until():
                return True
            if self.now >= deadline:
                return False
            self._process(min(deadline, self.now + check_every))

    def _process(self, deadline: float) -> None:
        heap, nodes, down = self._heap, self.nodes, self.down
        pop = heapq.heappop
        count = 0
        while heap and heap[0][0] <= deadline:
            at, _, kind, dst, payload, src = pop(heap)
            self.now = at
            if dst in down:
                continue
            node = nodes[dst]
            count += 1
            if kind == _TIMER:
                self._apply(dst, node.handle_timer(at, payload))
            elif kind == _DGRAM:
                self._apply(dst, node.receive_datagram(at, payload))
            elif kind == _STREAM:
                reply, fx = node.receive_stream(at, payload)
                self._apply(dst, fx)
                if reply is not None:
                    delay = self.network.stream(dst, src, len(reply))
                    if delay is not None:
                        self._push(at + delay, _REPLY, src, reply, dst)
            else:
                self._apply(dst, node.receive_stream_reply(at, payload))
        self.events_processed += count
        self.now = max(self.now, deadline)

    def _push(self, at: float, kind: int, dst: str, payload, src: str) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, kind, dst, payload, src))

    def _apply(self, name: str, effects: list) -> None:
        now, network = self.now, self.network
        for fx in effects:
            t = type(fx)
            if t is Send:
                if fx.addr not in self.nodes:
                    continue
                for delay in network.datagram(name, fx.addr, len(fx.data)):
                    self._push(now + delay, _DGRAM, fx.addr, fx.data, name)
            elif t is Schedule:
                self._push(fx.at, _TIMER, name, fx.timer, name)
            elif t is Stream:
                if fx.addr not in self.nodes:
                    continue
                delay = network.stream(name, fx.addr, len(fx.data))
                if delay is not None:
                    self._push(now + delay, _STREAM, fx.addr, fx.data, name)
            elif t is Notify:
                for listener in self.listeners:
                    listener(now, name, fx.event)

    # -- views -----------------------------------------------------------------------------------
    def count_knowing(self, about: str, states: tuple[int, ...] = (ALIVE,)) -> int:
        """How many live members (other than ``about``) hold ``about`` in one of ``states``."""
        count = 0
        for name, node in self.nodes.items():
            if name == about or name in self.down:
                continue
            member = node.member(about)
            if member is not None and member.state in states:
                count += 1
        return count

    def views_agree(self) -> bool:
        """Every live member sees exactly the live members as live, and nobody else."""
        live = {n for n in self.nodes if n not in self.down}
        for name in live:
            seen = {m.name for m in self.nodes[name].live_members()}
            if seen != live:
                return False
        return True

    def statistics(self) -> dict[str, int | float]:
        sent = sum(n.counters["bytes_sent"] for n in self.nodes.values())
        return {"now": self.now, "members": len(self.nodes), "down": len(self.down),
                "events": self.events_processed, "pending": len(self._heap), "bytes_sent": sent,
                **{f"net_{k}": v for k, v in self.network.statistics().items()}}

    def __repr__(self) -> str:
        return (f"<SimCluster seed={self.seed} t={self.now:.3f} members={len(self.nodes)} "
                f"down={len(self.down)} pending={len(self._heap)}>")
