"""The Trio supervisor: starts children in dependency order, restarts them by policy, stops them in
reverse order with a grace period each. The decisions come from the pure modules
(:mod:`._policy` for policy x exit and restart intensity, :mod:`._spec` for the order); this module
only moves time and tasks. Reference: Erlang/OTP ``supervisor`` (strategy ``rest_for_one``
restricted to declared dependencies), and hypercorn's trio ``run.py`` for graceful shutdown as
"signal, wait with a deadline, then cancel".

Task layout
-----------
::

    serve()                       the supervisor task (cancellable from outside)
    └── outer nursery
        ├── host task             CancelScope(shield=True) + children nursery
        │   ├── child wrapper     CancelScope per run; calls spec.serve(task_status=relay)
        │   └── ...
        └── parent-stop watcher   forwards our own stop request (nested supervisors) to stop()

Children are started with ``children_nursery.start(...)`` *from the supervisor task*: until a child
calls ``task_status.started()`` it runs under the supervisor task's cancel scopes (so cancelling the
supervisor aborts a hanging start), and once started it moves into the shielded children nursery.
The shield is what makes graceful shutdown possible under cancellation: when the supervisor is
cancelled, only the supervisor task sees ``Cancelled``; in its ``finally`` (itself shielded and
bounded by the children's ``shutdown_timeout``) it stops the children one by one in reverse start
order. The children never outlive ``serve()``.

Stopping one child: set the run's stop event (the child sees it through
:func:`wait_stop_requested`), wait up to ``shutdown_timeout`` seconds for it to return, then cancel
its scope and wait for it to unwind. A child that ignores the request is therefore cancelled exactly
at ``stop time + shutdown_timeout``.

Exits and restarts
------------------
A child's wrapper catches ``Exception`` from ``serve`` after ``started()`` and reports the exit on a
channel (never ``BaseException``: ``KeyboardInterrupt`` and foreign ``Cancelled`` propagate and tear
the tree down as Trio would). The supervisor task feeds each exit to :class:`RestartTracker`:

- LEAVE: the child stays stopped (``stopped``, or ``failed`` if it raised); nothing else changes.
- RESTART: every running child that depends on it (transitively) is stopped in reverse start order,
  then the child and those dependents are started again in start order (temporary dependents are
  not restarted, as in OTP). Only the child that exited counts against the intensity; a restart that
  fails before ``started()`` is another abnormal exit and is decided again.
- ESCALATE: the child is marked ``failed``, the others are stopped in reverse start order and
  ``serve()`` raises :class:`RestartIntensityError` chained to the child's exception.

During the initial start, a child that fails before ``started()`` aborts the start (OTP does the
same): the children already up are stopped and :class:`ChildStartError` is raised.

Readiness: :attr:`Supervisor.all_up` is true once every child has started, and false while any
child is starting, restarting or has exited without a decision yet, and once the tree is stopping.
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import trio

from ._errors import ChildStartError, RestartIntensityError, SupervisorError
from ._policy import (
    DEFAULT_MAX_RESTARTS,
    DEFAULT_RESTART_WINDOW,
    Action,
    ExitKind,
    RestartPolicy,
    RestartTracker,
)
from ._spec import ChildSpec, dependents_of, start_order

logger = logging.getLogger("trimesh.nursery")

_STOP_EVENT: ContextVar[trio.Event | None] = ContextVar("trimesh_nursery_stop", default=None)


def stop_requested() -> bool:
    """True once the supervisor running the current task has asked it to stop gracefully."""
    event = _STOP_EVENT.get()
    return event is not None and event.is_set()


async def wait_stop_requested() -> None:
    """Block until the supervisor running the current task asks it to stop gracefully.

    A supervised child calls this to learn when to drain (stop accepting, finish in-flight work)
    before its ``shutdown_timeout`` runs out and it is cancelled. Tasks the child spawns see the
    same request. Outside any supervisor this never returns: nobody will ask, the task will only be
    cancelled.
    """
    event = _STOP_EVENT.get()
    if event is None:
        await trio.sleep_forever()
    else:
        await event.wait()


def cancel_on_stop(serve: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[None]]:
    """Wrap a ``serve(*, task_status)`` that has nothing to finish gracefully (a poller, a plain
    listener) so it is cancelled as soon as its supervisor asks it to stop, instead of after its
    ``shutdown_timeout``."""

    async def run(*, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            task_status.started(await nursery.start(serve))
            await wait_stop_requested()
            nursery.cancel_scope.cancel()

    return run


class ChildState(enum.StrEnum):
    STARTING = "starting"  # first start, before started()
    RUNNING = "running"
    STOPPING = "stopping"  # stop requested, within its grace period
    RESTARTING = "restarting"  # being (or about to be) started again
    STOPPED = "stopped"  # stopped by the supervisor, or returned and not restarted
    FAILED = "failed"  # raised and not restarted, or the cause of an escalation


class SupervisorPhase(enum.StrEnum):
    IDLE = "idle"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ChildStatistics:
    name: str
    state: ChildState
    policy: RestartPolicy
    restarts: int
    last_error: str | None
    started_at: float | None  # trio.current_time() of the latest successful start


@dataclass(frozen=True, slots=True)
class SupervisorStatistics:
    name: str
    phase: SupervisorPhase
    all_up: bool
    max_restarts: int
    window: float
    restarts_in_window: int
    children: Mapping[str, ChildStatistics]  # in start order


class _Run:
    """One execution of a child's serve function."""

    __slots__ = ("child", "stop", "done", "scope", "started", "value", "error")

    def __init__(self, child: str) -> None:
        self.child = child
        self.stop = trio.Event()
        self.done = trio.Event()
        self.scope: trio.CancelScope | None = None
        self.started = False
        self.value: Any = None  # what the child passed to task_status.started()
        self.error: Exception | None = None


class _StartRelay:
    """The task_status handed to a child: notes that it started, then forwards."""

    __slots__ = ("_status", "_run")

    def __init__(self, status: trio.TaskStatus[Any], run: _Run) -> None:
        self._status = status
        self._run = run

    def started(self, value: Any = None) -> None:
        if self._run.started:
            raise RuntimeError(f"child {self._run.child!r} called task_status.started() twice")
        self._run.started = True
        self._run.value = value
        self._status.started(value)


class _ReturnedBeforeStarted(Exception):
    pass


@dataclass(frozen=True, slots=True)
class _StartFailure:
    cause: str
    error: Exception | None


_ABORTED = _StartFailure("start aborted by stop()", None)


class _Child:
    __slots__ = ("spec", "state", "restarts", "last_error", "started_at", "run")

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.state = ChildState.STARTING
        self.restarts = 0
        self.last_error: str | None = None
        self.started_at: float | None = None
        self.run: _Run | None = None


_STOP = object()  # channel sentinel: stop() was called


class Supervisor:
    """A supervision tree of :class:`ChildSpec` children; run it with ``nursery.start(sup.serve)``.

    ``intensity=(max_restarts, window)`` allows at most ``max_restarts`` restarts within any
    ``window`` seconds (OTP MaxR/MaxT; default OTP's 1 in 5 s). Configuration errors (duplicate
    names, unknown dependencies, cycles) raise ConfigError here, before anything starts.
    """

    def __init__(
        self,
        specs: Iterable[ChildSpec],
        *,
        intensity: tuple[int, float] = (DEFAULT_MAX_RESTARTS, DEFAULT_RESTART_WINDOW),
        name: str = "supervisor",
    ) -> None:
        self._specs = tuple(specs)
        self._order = start_order(self._specs)
        self.name = name
        try:
            max_restarts, window = intensity
        except (TypeError, ValueError):
            raise ValueError(
                f"intensity must be (max_restarts, window_seconds), got {intensity!r}"
            ) from None
        self._tracker = RestartTracker(max_restarts, window)
        by_name = {spec.name: spec for spec in self._specs}
        self._children = {name: _Child(by_name[name]) for name in self._order}
        self._dependents = {n: dependents_of(self._specs, n) for n in self._order}
        self._phase = SupervisorPhase.IDLE
        self._send, self._receive = trio.open_memory_channel[Any](math.inf)
        self._stop_requested = False
        self._up = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._abortable_start: trio.CancelScope | None = None

    # ----------------------------------------------------------------- public surface

    @property
    def order(self) -> tuple[str, ...]:
        """Child names in start order (stop order is the reverse)."""
        return self._order

    @property
    def all_up(self) -> bool:
        """Every child that should be running is running (what a ``/ready`` endpoint reports)."""
        if self._phase is not SupervisorPhase.RUNNING or self._stop_requested:
            return False
        for child in self._children.values():
            if child.state is ChildState.RUNNING:
                if child.run is None or child.run.done.is_set():
                    return False
            elif child.state not in (ChildState.STOPPED, ChildState.FAILED):
                return False
        return True

    def started_value(self, name: str) -> Any:
        """What child ``name`` passed to ``task_status.started()`` in its latest successful start
        (a bound address, a registry object...). A child can read its dependencies' values when it
        starts, since they are up before it. KeyError for an unknown name, LookupError if the child
        has not started yet."""
        child = self._children[name]
        if child.started_at is None or child.run is None or not child.run.started:
            raise LookupError(f"{self.name}: child {name!r} has not started")
        return child.run.value

    async def wait_all_up(self) -> None:
        """Block until :attr:`all_up` is true (returns at once if it already is)."""
        while not self.all_up:
            await self._up.wait()

    def stop(self) -> None:
        """Ask the tree to shut down gracefully; ``serve()`` then returns normally. Idempotent.

        Requested during the initial start, it takes effect once the start has finished (cancel
        the task running ``serve()`` to abort a start); a restart in progress is abandoned.
        """
        if not self._stop_requested:
            self._stop_requested = True
            self._changed()
            self._send.send_nowait(_STOP)
            if self._abortable_start is not None:
                self._abortable_start.cancel()

    def statistics(self) -> SupervisorStatistics:
        now = trio.current_time()
        children = {
            name: ChildStatistics(
                name=name,
                state=child.state,
                policy=child.spec.policy,
                restarts=child.restarts,
                last_error=child.last_error,
                started_at=child.started_at,
            )
            for name, child in self._children.items()
        }
        return SupervisorStatistics(
            name=self.name,
            phase=self._phase,
            all_up=self.all_up,
            max_restarts=self._tracker.max_restarts,
            window=self._tracker.window,
            restarts_in_window=self._tracker.restarts_in_window(now),
            children=children,
        )

    def __repr__(self) -> str:
        states = ", ".join(f"{n}={c.state}" for n, c in self._children.items())
        restarts = sum(c.restarts for c in self._children.values())
        return (
            f"<Supervisor {self.name!r} {self._phase}{' all up' if self.all_up else ''}: "
            f"{states}; {restarts} restarts, intensity {self._tracker.max_restarts} "
            f"in {self._tracker.window:g}s>"
        )

    async def serve(self, *, task_status: trio.TaskStatus[Supervisor] = trio.TASK_STATUS_IGNORED) -> None:
        """Start every child in order, report started (with ``self``), then supervise until stopped
        (``stop()``, our own supervisor's stop request, or cancellation). Raises ChildStartError or
        RestartIntensityError when it gives up."""
        if self._phase is not SupervisorPhase.IDLE:
            raise RuntimeError(f"{self!r}: serve() can run only once")
        self._phase = SupervisorPhase.STARTING
        failure: SupervisorError | None = None
        host_done = trio.Event()
        async with trio.open_nursery() as outer:
            self._nursery = await outer.start(self._host_children, host_done)
            outer.start_soon(self._forward_parent_stop)
            try:
                try:
                    await self._start_all()
                    await self._handle_queued_exits()
                    self._phase = SupervisorPhase.RUNNING
                    self._changed()
                    logger.info("%s up: %s", self.name, ", ".join(self._order) or "no children")
                    task_status.started(self)
                    await self._supervise()
                except SupervisorError as exc:
                    failure = exc
                    logger.error("%s failing: %s", self.name, exc)
            finally:
                with trio.CancelScope(shield=True):
                    await self._stop_all()
                self._phase = SupervisorPhase.FAILED if failure else SupervisorPhase.STOPPED
                logger.info("%s %s", self.name, self._phase)
                host_done.set()
                outer.cancel_scope.cancel()
        if failure is not None:
            raise failure

    # ----------------------------------------------------------------- tasks

    async def _host_children(
        self, host_done: trio.Event, *, task_status: trio.TaskStatus[trio.Nursery]
    ) -> None:
        with trio.CancelScope(shield=True):
            async with trio.open_nursery() as nursery:
                task_status.started(nursery)
                await host_done.wait()

    async def _forward_parent_stop(self) -> None:
        await wait_stop_requested()
        self.stop()

    async def _run_child(self, run: _Run, *, task_status: trio.TaskStatus[Any]) -> None:
        spec = self._children[run.child].spec
        _STOP_EVENT.set(run.stop)
        try:
            with trio.CancelScope() as run.scope:
                try:
                    await spec.serve(task_status=_StartRelay(task_status, run))
                except Exception as exc:
                    if not run.started:
                        raise
                    run.error = exc
                else:
                    if not run.started:
                        raise _ReturnedBeforeStarted
        finally:
            run.done.set()
            self._changed()
        # Reached only when serve returned, raised an Exception, or was cancelled by us; any other
        # BaseException is on its way up through the children nursery and is not an "exit".
        self._send.send_nowait(run)

    # ----------------------------------------------------------------- starting

    async def _start(self, child: _Child, *, abortable: bool = False) -> _StartFailure | None:
        """Start one run of ``child``; None when it is up. An ``abortable`` start (a restart) is
        cancelled by stop() and then returns _ABORTED."""
        assert self._nursery is not None
        run = _Run(child.spec.name)
        child.run = run
        self._changed()
        with trio.CancelScope() as scope:
            if abortable:
                self._abortable_start = scope
            try:
                await self._nursery.start(self._run_child, run)
            except _ReturnedBeforeStarted:
                run.done.set()
                return _StartFailure("returned before calling task_status.started()", None)
            except Exception as exc:
                run.done.set()
                child.last_error = repr(exc)
                return _StartFailure(f"raised {exc!r} before calling task_status.started()", exc)
            finally:
                self._abortable_start = None
        if scope.cancelled_caught:
            run.done.set()
            return _ABORTED
        child.state = ChildState.RUNNING
        child.started_at = trio.current_time()
        self._changed()
        return None

    async def _start_all(self) -> None:
        for name, child in self._children.items():
            child.state = ChildState.STARTING
            failed = await self._start(child)
            if failed is not None:
                child.state = ChildState.FAILED
                raise ChildStartError(
                    f"{self.name}: child {name!r} failed to start: {failed.cause}",
                    supervisor=self.name,
                    child=name,
                    cause=failed.cause,
                ) from failed.error

    # ----------------------------------------------------------------- supervising

    async def _supervise(self) -> None:
        while not self._stop_requested:
            item = await self._receive.receive()
            if item is not _STOP:
                await self._handle_exit(item)

    async def _handle_queued_exits(self) -> None:
        """Exits that happened while later children were starting, before we report started."""
        while True:
            try:
                item = self._receive.receive_nowait()
            except trio.WouldBlock:
                return
            if item is not _STOP:  # stop() also set the flag _supervise checks
                await self._handle_exit(item)

    async def _handle_exit(self, run: _Run) -> None:
        child = self._children[run.child]
        if run is not child.run or child.state is not ChildState.RUNNING:
            return  # a run we stopped ourselves, or one already replaced
        exc = run.error
        if exc is not None:
            child.last_error = repr(exc)
        cause = repr(exc) if exc is not None else "returned"
        decision = self._tracker.decide(
            child.spec.name,
            child.spec.policy,
            ExitKind.ERROR if exc is not None else ExitKind.NORMAL,
            now=trio.current_time(),
            cause=cause,
        )
        if decision.action is Action.LEAVE:
            child.state = ChildState.FAILED if exc is not None else ChildState.STOPPED
            (logger.warning if exc is not None else logger.info)("%s: %s", self.name, decision.reason)
            self._changed()
        elif decision.action is Action.ESCALATE:
            self._escalate(child, decision.reason, cause, exc)
        else:
            logger.warning("%s: %s", self.name, decision.reason)
            await self._restart(child)

    def _escalate(self, child: _Child, reason: str, cause: str, exc: Exception | None) -> None:
        child.state = ChildState.FAILED
        self._changed()
        raise RestartIntensityError(
            f"{self.name}: {reason}", supervisor=self.name, child=child.spec.name, cause=cause
        ) from exc

    async def _restart(self, child: _Child) -> None:
        """Restart ``child`` and, around it, the running children that depend on it."""
        dependents = [
            self._children[n]
            for n in self._order
            if n in self._dependents[child.spec.name]
            and self._children[n].state is ChildState.RUNNING
        ]
        child.state = ChildState.RESTARTING
        for dependent in dependents:
            dependent.state = ChildState.RESTARTING
        self._changed()
        for dependent in reversed(dependents):
            await self._stop_child(dependent, ChildState.RESTARTING)
        for again in [child, *dependents]:
            if self._stop_requested:
                again.state = ChildState.STOPPED  # the tree is going down: abandon the restart
            elif again is not child and again.spec.policy is RestartPolicy.TEMPORARY:
                again.state = ChildState.STOPPED  # temporary children are never restarted
            else:
                await self._start_again(again)
                continue
            self._changed()

    async def _start_again(self, child: _Child) -> None:
        """Start ``child`` again; a failed start is one more abnormal exit, decided like any."""
        while True:
            child.restarts += 1
            failed = await self._start(child, abortable=True)
            if failed is None:
                return
            if failed is _ABORTED:
                child.state = ChildState.STOPPED
                self._changed()
                return
            decision = self._tracker.decide(
                child.spec.name,
                child.spec.policy,
                ExitKind.ERROR,
                now=trio.current_time(),
                cause=failed.cause,
            )
            if decision.action is Action.ESCALATE:
                self._escalate(child, decision.reason, failed.cause, failed.error)
            if decision.action is Action.LEAVE:
                child.state = ChildState.FAILED
                self._changed()
                return
            logger.warning("%s: %s", self.name, decision.reason)

    # ----------------------------------------------------------------- stopping

    async def _stop_child(self, child: _Child, final: ChildState) -> None:
        run = child.run
        if run is not None and not run.done.is_set():
            child.state = ChildState.STOPPING
            self._changed()
            run.stop.set()
            with trio.move_on_after(child.spec.shutdown_timeout):
                await run.done.wait()
            if not run.done.is_set():
                logger.warning(
                    "%s: child %r did not stop within %gs; cancelling it",
                    self.name, child.spec.name, child.spec.shutdown_timeout,
                )
                assert run.scope is not None
                run.scope.cancel()
                await run.done.wait()
        elif child.state in (ChildState.STOPPED, ChildState.FAILED):
            return  # already stopped or failed for good
        if run is not None and run.error is not None:
            # raised while stopping, or crashed just before and the exit was not yet decided
            child.last_error = repr(run.error)
            logger.warning("%s: child %r stopped with %r", self.name, child.spec.name, run.error)
        child.state = final
        self._changed()

    async def _stop_all(self) -> None:
        self._phase = SupervisorPhase.STOPPING
        self._changed()
        for name in reversed(self._order):
            await self._stop_child(self._children[name], ChildState.STOPPED)

    def _changed(self) -> None:
        """Re-evaluate readiness after any state change and wake wait_all_up() waiters."""
        up = self.all_up
        if up and not self._up.is_set():
            self._up.set()
        elif not up and self._up.is_set():
            self._up = trio.Event()


async def serve_supervisor(
    specs: Iterable[ChildSpec],
    *,
    intensity: tuple[int, float] = (DEFAULT_MAX_RESTARTS, DEFAULT_RESTART_WINDOW),
    name: str = "supervisor",
    task_status: trio.TaskStatus[Supervisor] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a :class:`Supervisor` over ``specs`` until cancelled or stopped; ``nursery.start`` returns
    the Supervisor (for ``statistics()``, ``all_up``, ``stop()``) once every child is up."""
    await Supervisor(specs, intensity=intensity, name=name).serve(task_status=task_status)


@asynccontextmanager
async def open_supervisor(
    specs: Iterable[ChildSpec],
    *,
    intensity: tuple[int, float] = (DEFAULT_MAX_RESTARTS, DEFAULT_RESTART_WINDOW),
    name: str = "supervisor",
) -> AsyncIterator[Supervisor]:
    """``async with open_supervisor(specs) as sup:`` — the body runs once every child is up; leaving
    the body stops the tree gracefully (reverse order, per-child deadlines). If the tree fails, the
    body is cancelled and the SupervisorError is raised from the ``async with`` (not wrapped in an
    ExceptionGroup when it is the only error)."""
    supervisor = Supervisor(specs, intensity=intensity, name=name)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.serve)
            try:
                yield supervisor
            finally:
                supervisor.stop()
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            only = group.exceptions[0]
            raise only from only.__cause__
        raise
