"""A seeded simulated network for gossip tests: loss, duplication, delay, reordering, partitions.

The network decides the fate of each datagram and stream a simulation sends; it owns no clock
and no queue (the cluster driver, :mod:`._cluster`, owns virtual time). Every decision draws from
one ``random.Random(seed)``, so a run is reproduced exactly by its seed.

* ``loss``: probability that a datagram is dropped;
* ``duplicate``: probability that a delivered datagram arrives twice;
* ``delay``: ``(low, high)`` one-way latency drawn uniformly per copy, which already reorders
  datagrams sent close together; ``reorder`` adds ``reorder_delay`` to that fraction of them;
* ``partition``: a predicate on ``(src, dst)`` addresses; True blocks traffic both for datagrams
  and for streams (a TCP connect fails). :meth:`split` installs the common "two sides" predicate.

Streams (TCP push/pull) are reliable but subject to partitions and latency.
:class:`TrioSimNet` carries the same network into Trio, for real ``GossipAgent`` tasks under
``MockClock``; :class:`trimesh.testing.SimCluster` drives the pure core without Trio, ~25× cheaper
per event (docs/gossip.md §5).
(Model for the idea: trio's ``trio.testing._fake_net``; this one is transport-agnostic.)
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterable

import trio


class SimNetwork:
    def __init__(self, seed: int = 0, *, loss: float = 0.0, duplicate: float = 0.0,
                 delay: tuple[float, float] = (0.0005, 0.002), reorder: float = 0.0,
                 reorder_delay: float = 0.02,
                 partition: Callable[[str, str], bool] | None = None) -> None:
        for name, p in (("loss", loss), ("duplicate", duplicate), ("reorder", reorder)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {p!r}")
        if not 0.0 <= delay[0] <= delay[1]:
            raise ValueError(f"delay must be (low, high) with 0 <= low <= high, got {delay!r}")
        self.seed = seed
        self.rng = random.Random(seed)
        self.loss = loss
        self.duplicate = duplicate
        self.delay = delay
        self.reorder = reorder
        self.reorder_delay = reorder_delay
        self.partition = partition
        self.stats = dict.fromkeys(
            ("datagrams", "datagram_bytes", "lost", "partitioned", "duplicated", "reordered",
             "streams", "stream_bytes", "streams_refused", "largest_datagram"), 0)

    def split(self, side: Iterable[str]) -> None:
        """Partition the network into ``side`` and everyone else."""
        members = frozenset(side)
        self.partition = lambda src, dst: (src in members) != (dst in members)

    def heal(self) -> None:
        self.partition = None

    def blocked(self, src: str, dst: str) -> bool:
        return self.partition is not None and self.partition(src, dst)

    def datagram(self, src: str, dst: str, size: int) -> list[float]:
        """One-way delays of the copies of a datagram that arrive (empty: dropped)."""
        stats = self.stats
        stats["datagrams"] += 1
        stats["datagram_bytes"] += size
        if size > stats["largest_datagram"]:
            stats["largest_datagram"] = size
        if self.blocked(src, dst):
            stats["partitioned"] += 1
            return []
        rng = self.rng
        if self.loss and rng.random() < self.loss:
            stats["lost"] += 1
            return []
        copies = 1
        if self.duplicate and rng.random() < self.duplicate:
            copies = 2
            stats["duplicated"] += 1
        low, high = self.delay
        delays = []
        for _ in range(copies):
            d = rng.uniform(low, high)
            if self.reorder and rng.random() < self.reorder:
                d += self.reorder_delay
                stats["reordered"] += 1
            delays.append(d)
        return delays

    def stream(self, src: str, dst: str, size: int) -> float | None:
        """One-way delay of a stream frame, or None if the connection cannot be made."""
        self.stats["streams"] += 1
        self.stats["stream_bytes"] += size
        if self.blocked(src, dst):
            self.stats["streams_refused"] += 1
            return None
        low, high = self.delay
        return self.rng.uniform(low, high)

    def statistics(self) -> dict[str, int]:
        return dict(self.stats)

    def __repr__(self) -> str:
        return (f"<SimNetwork seed={self.seed} loss={self.loss} duplicate={self.duplicate} "
                f"delay={self.delay} partitioned={self.partition is not None}>")


class TrioSimNet:
    """:class:`SimNetwork` for real Trio gossip agents under ``MockClock``: every agent gets an
    endpoint (``GossipAgent(..., transport=net.endpoint("a"))``) whose datagrams and push/pull
    requests travel through the simulated network. Start the delivery service first::

        net = TrioSimNet(SimNetwork(seed, loss=0.1))
        await nursery.start(net.serve)
    """

    def __init__(self, network: SimNetwork, *, queue: int = 4096) -> None:
        self.network = network
        self.queue = queue
        self.endpoints: dict[str, _SimEndpoint] = {}
        self._heap: list[tuple[float, int, str, bytes]] = []
        self._seq = 0
        self._wake = trio.Event()
        self.dropped_full = 0

    def endpoint(self, addr: str) -> _SimEndpoint:
        ep = _SimEndpoint(self, addr)
        self.endpoints[addr] = ep
        return ep

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started(self)
        heap = self._heap
        while True:
            deadline = heap[0][0] if heap else float("inf")
            with trio.move_on_at(deadline):
                await self._wake.wait()
            self._wake = trio.Event()
            now = trio.current_time()
            while heap and heap[0][0] <= now:
                _, _, dst, data = heapq.heappop(heap)
                ep = self.endpoints.get(dst)
                if ep is None or ep.closed:
                    continue
                try:
                    ep._inbox_send.send_nowait(data)
                except trio.WouldBlock:
                    self.dropped_full += 1

    def _deliver_later(self, at: float, dst: str, data: bytes) -> None:
        earliest = self._heap[0][0] if self._heap else float("inf")
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, dst, data))
        if at < earliest:
            self._wake.set()


class _SimEndpoint:
    """One agent's view of the simulated network (the transport interface of
    ``trimesh.discovery.GossipAgent``: send, receive, serve_streams, request, close)."""

    def __init__(self, net: TrioSimNet, addr: str) -> None:
        self.net = net
        self.addr = addr
        self.closed = False
        self._inbox_send, self._inbox = trio.open_memory_channel(net.queue)
        self._handler = None

    async def send(self, addr: str, data: bytes) -> None:
        now = trio.current_time()
        for delay in self.net.network.datagram(self.addr, addr, len(data)):
            self.net._deliver_later(now + delay, addr, data)
        await trio.lowlevel.checkpoint()

    async def receive(self) -> bytes:
        return await self._inbox.receive()

    async def serve_streams(self, handler, *, task_status) -> None:
        self._handler = handler
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            self._handler = None

    async def request(self, addr: str, data: bytes) -> bytes | None:
        network = self.net.network
        delay = network.stream(self.addr, addr, len(data))
        peer = self.net.endpoints.get(addr)
        if delay is None or peer is None or peer.closed or peer._handler is None:
            raise ConnectionRefusedError(f"simulated connection {self.addr} -> {addr} refused")
        await trio.sleep(delay)
        reply = await peer._handler(data)
        if reply is None:
            return None
        back = network.stream(addr, self.addr, len(reply))
        if back is None:
            raise ConnectionResetError(f"simulated connection {addr} -> {self.addr} cut")
        await trio.sleep(back)
        return reply

    def close(self) -> None:
        self.closed = True
        self._inbox_send.close()

    def __repr__(self) -> str:
        return f"<SimEndpoint {self.addr}{' closed' if self.closed else ''}>"
