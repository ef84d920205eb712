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
(Model for the idea: trio's ``trio.testing._fake_net``; this one is transport-agnostic.)
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable


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
