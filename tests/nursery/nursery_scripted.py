"""Scripted children for supervisor tests: each run of a child follows the next step of its script
(the last step repeats) and writes (virtual time, child, event) to a shared log."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio

from trimesh.nursery import wait_stop_requested

Step = Callable[["Scripted", Any], Awaitable[None]]


class Scripted:
    def __init__(self, name: str, log: list[tuple[float, str, str]], *steps: Step) -> None:
        self.name = name
        self.log = log
        self.steps = list(steps) or [serve()]
        self.runs = 0
        self.raised: list[BaseException] = []

    def note(self, what: str) -> None:
        self.log.append((trio.current_time(), self.name, what))

    async def __call__(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        step = self.steps[min(self.runs, len(self.steps) - 1)]
        self.runs += 1
        await step(self, task_status)

    def fail(self, exc: BaseException) -> BaseException:
        self.raised.append(exc)
        return exc


def serve(start_delay: float = 0.0, drain: float = 0.0) -> Step:
    """Become ready after start_delay; on the stop request, drain for `drain` seconds and return."""

    async def step(c: Scripted, task_status: Any) -> None:
        await trio.sleep(start_delay)
        c.note("started")
        task_status.started()
        await wait_stop_requested()
        c.note("stop requested")
        await trio.sleep(drain)
        c.note("stopped")

    return step


def ignore_stop(start_delay: float = 0.0) -> Step:
    """Ready, then never looks at the stop request: only cancellation ends it."""

    async def step(c: Scripted, task_status: Any) -> None:
        await trio.sleep(start_delay)
        c.note("started")
        task_status.started()
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            c.note("cancelled")
            raise

    return step


def crash(after: float, make: Callable[[], BaseException] = lambda: ValueError("boom"),
          start_delay: float = 0.0) -> Step:
    async def step(c: Scripted, task_status: Any) -> None:
        await trio.sleep(start_delay)
        c.note("started")
        task_status.started()
        await trio.sleep(after)
        c.note("crashed")
        raise c.fail(make())

    return step


def returns(after: float) -> Step:
    async def step(c: Scripted, task_status: Any) -> None:
        c.note("started")
        task_status.started()
        await trio.sleep(after)
        c.note("returned")

    return step


def fail_start(after: float = 0.0, make: Callable[[], BaseException] = lambda: RuntimeError("no config")
               ) -> Step:
    async def step(c: Scripted, task_status: Any) -> None:
        await trio.sleep(after)
        c.note("start failed")
        raise c.fail(make())

    return step


def return_before_start(after: float = 0.0) -> Step:
    async def step(c: Scripted, task_status: Any) -> None:
        await trio.sleep(after)
        c.note("returned early")

    return step


def raise_on_stop(make: Callable[[], BaseException] = lambda: RuntimeError("dirty")) -> Step:
    async def step(c: Scripted, task_status: Any) -> None:
        c.note("started")
        task_status.started()
        await wait_stop_requested()
        c.note("stop requested")
        raise c.fail(make())

    return step


def events(log: list[tuple[float, str, str]], what: str, t0: float = 0.0) -> list[tuple[float, str]]:
    return [(t - t0, name) for t, name, w in log if w == what]
