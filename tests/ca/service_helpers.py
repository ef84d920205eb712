"""The CA service in-process for the shell tests: a state in tmp_path, a wall clock that follows
trio's (virtual) clock, and memory-stream connections served by the service's HTTP helper."""

from __future__ import annotations

import trio
import trio.testing

from trimesh.ca import CAService, load_or_create_state

T0 = 1_790_000_000.0  # the wall-clock time at trio time 0 (2026-09-21)


class Wall:
    """Wall-clock seconds that start at T0 now and follow trio's (virtual) clock."""

    def __init__(self) -> None:
        self.start = trio.current_time()

    def __call__(self) -> float:
        return T0 + trio.current_time() - self.start


def make_service(tmp_path, **options) -> CAService:
    state = load_or_create_state(tmp_path / "state", now=T0, **options)
    return CAService(state, wall_clock=Wall(), persist=False)


class MemoryConnector:
    """``connect(host, port)`` for the agent: each call is one memory-stream connection that
    ``service`` serves in ``nursery``."""

    def __init__(self, service: CAService, nursery: trio.Nursery) -> None:
        self.service, self.nursery, self.connections = service, nursery, 0

    async def __call__(self, host: str, port: int) -> trio.abc.Stream:
        self.connections += 1
        client, server = trio.testing.memory_stream_pair()
        self.nursery.start_soon(self.service.http.serve_connection, server)
        return client
