"""The piggyback queue: messages waiting to be gossiped, each sent a bounded number of times. PURE.

memberlist's ``TransmitLimitedQueue``: every state change a member learns is queued (already encoded)
and attached to the next outgoing packets — gossip rounds, probes, acks — until it has been sent
``retransmit_limit(n) = retransmit_mult × ceil(log10(n + 1))`` times. Messages sent fewer times go
first, newer before older among equals. A message about the same subject (a member name, a config
key) replaces the queued one: only the latest news about a subject is worth spreading.
"""

from __future__ import annotations

from collections.abc import Hashable

import msgspec

MIN_MESSAGE_SIZE = 8  # below this budget no message can fit; stop looking


class _Item:
    __slots__ = ("key", "raw", "size", "transmits", "order")

    def __init__(self, key: Hashable, raw: msgspec.Raw, order: int) -> None:
        self.key = key
        self.raw = raw
        self.size = len(raw)
        self.transmits = 0
        self.order = order


def _priority(item: _Item) -> tuple[int, int]:
    return (item.transmits, -item.order)


class BroadcastQueue:
    """Encoded messages keyed by subject, each with its transmit count."""

    def __init__(self) -> None:
        self._items: dict[Hashable, _Item] = {}
        self._order = 0
        self.sent = 0
        self.replaced = 0

    def push(self, key: Hashable, raw: msgspec.Raw) -> None:
        if key in self._items:
            self.replaced += 1
        self._order += 1
        self._items[key] = _Item(key, raw, self._order)

    def take(self, budget: int, limit: int) -> list[msgspec.Raw]:
        """Messages fitting in ``budget`` bytes; each taken one counts one transmit."""
        items = self._items
        if not items or budget < MIN_MESSAGE_SIZE:
            return []
        out: list[msgspec.Raw] = []
        chosen = sorted(items.values(), key=_priority) if len(items) > 1 else list(items.values())
        for item in chosen:
            if item.size <= budget:
                out.append(item.raw)
                budget -= item.size
                item.transmits += 1
                if item.transmits >= limit:
                    del items[item.key]
                if budget < MIN_MESSAGE_SIZE:
                    break
        self.sent += len(out)
        return out

    def pending(self, key: Hashable) -> bool:
        return key in self._items

    def transmits(self, key: Hashable) -> int:
        """How often the queued message for ``key`` went out; -1 once it left the queue."""
        item = self._items.get(key)
        return -1 if item is None else item.transmits

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"<BroadcastQueue {len(self._items)} queued, {self.sent} sent>"
