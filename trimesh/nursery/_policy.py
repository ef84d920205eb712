"""Restart policy and restart intensity: what a supervisor does when a child exits. PURE.

This is the decision half of supervision, written after Erlang/OTP's ``supervisor`` behaviour
(OTP design principles, "Supervisor Behaviour": *Restart Strategy*, *Maximum Restart Intensity*,
*Child Specification*, ``restart`` field). It never reads a clock: every call takes ``now`` (seconds,
any monotonic origin; the Trio shell passes ``trio.current_time()``).

Theory of operation
-------------------
1. **Policy x exit kind.** Each child declares a restart policy. When it exits, the kind of exit
   (returned normally, or raised an exception) and the policy select an :class:`Action` from the one
   table :data:`DECISIONS` below:

   ============  =========  ========  =====================================================
   policy        normal     error     meaning (OTP ``restart`` value)
   ============  =========  ========  =====================================================
   permanent     restart    restart   always restarted (a server that must keep running)
   transient     leave      restart   restarted only after an abnormal exit (an exception)
   temporary     leave      leave     never restarted (a one-shot job); its exit is recorded
   ============  =========  ========  =====================================================

   A child the supervisor itself stopped (shutdown, or a dependency's restart) is not an "exit" in
   this sense and never reaches the table; the shell handles it.

2. **Restart intensity.** A supervisor allows at most ``max_restarts`` restarts within any sliding
   window of ``window`` seconds (OTP's ``intensity``/``period``, *MaxR* in *MaxT*). Restarts are
   counted for the supervisor as a whole, not per child, as in OTP: a tree in which two children take
   turns crashing is as unhealthy as one child crashing twice. Exactly OTP's arithmetic
   (``supervisor:add_restart/3``): on each restart, drop the timestamps older than ``now - window``,
   add ``now``, and if more than ``max_restarts`` remain, give up. With ``max_restarts == 0`` the
   first exit that would restart escalates instead.

3. **Escalation.** Giving up yields :attr:`Action.ESCALATE` with a human-readable ``reason`` naming
   the child, its cause and the limit that was exceeded. The shell then stops every sibling and
   fails itself with an error chained to the child's original exception, so the failure reaches the
   parent (ultimately: the process exits non-zero) instead of looping forever.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

# OTP supervisor flag defaults (``intensity => 1, period => 5``), supervisor(3) "Supervision Principles".
DEFAULT_MAX_RESTARTS = 1
DEFAULT_RESTART_WINDOW = 5.0


class RestartPolicy(enum.StrEnum):
    """When a child that exited on its own is started again (OTP child spec ``restart``)."""

    PERMANENT = "permanent"
    TRANSIENT = "transient"
    TEMPORARY = "temporary"


class ExitKind(enum.StrEnum):
    """How a child's task ended without being asked to."""

    NORMAL = "normal"  # the serve function returned
    ERROR = "error"  # the serve function raised an Exception


class Action(enum.StrEnum):
    """What the supervisor does about one exit."""

    RESTART = "restart"
    LEAVE = "leave"  # record the exit, keep the child stopped, carry on
    ESCALATE = "escalate"  # stop the siblings and fail the supervisor


# The one table. RESTART entries are subject to the intensity limit (RestartTracker.decide).
DECISIONS: dict[tuple[RestartPolicy, ExitKind], Action] = {
    (RestartPolicy.PERMANENT, ExitKind.NORMAL): Action.RESTART,
    (RestartPolicy.PERMANENT, ExitKind.ERROR): Action.RESTART,
    (RestartPolicy.TRANSIENT, ExitKind.NORMAL): Action.LEAVE,
    (RestartPolicy.TRANSIENT, ExitKind.ERROR): Action.RESTART,
    (RestartPolicy.TEMPORARY, ExitKind.NORMAL): Action.LEAVE,
    (RestartPolicy.TEMPORARY, ExitKind.ERROR): Action.LEAVE,
}


@dataclass(frozen=True, slots=True)
class Decision:
    """The tracker's answer for one exit.

    ``restarts_in_window`` counts the restarts inside the window *including* this one when the
    action is RESTART or ESCALATE; ``reason`` is a one-line explanation fit for logs and errors.
    """

    action: Action
    child: str
    exit: ExitKind
    cause: str
    restarts_in_window: int
    reason: str


@dataclass(frozen=True, slots=True)
class RestartTrackerStatistics:
    max_restarts: int
    window: float
    restarts_in_window: int
    total_restarts: int
    escalated: bool


class RestartTracker:
    """Restart intensity accounting for one supervisor, plus the policy table lookup.

    >>> t = RestartTracker(max_restarts=1, window=5.0)
    >>> t.decide("web", RestartPolicy.PERMANENT, ExitKind.ERROR, now=0.0, cause="OSError()").action
    <Action.RESTART: 'restart'>
    >>> t.decide("web", RestartPolicy.PERMANENT, ExitKind.ERROR, now=1.0, cause="OSError()").action
    <Action.ESCALATE: 'escalate'>
    """

    def __init__(
        self, max_restarts: int = DEFAULT_MAX_RESTARTS, window: float = DEFAULT_RESTART_WINDOW
    ) -> None:
        if isinstance(max_restarts, bool) or not isinstance(max_restarts, int) or max_restarts < 0:
            raise ValueError(f"intensity: max_restarts must be an int >= 0, got {max_restarts!r}")
        if isinstance(window, bool) or not isinstance(window, int | float) or not window > 0:
            raise ValueError(f"intensity: window must be a number of seconds > 0, got {window!r}")
        self.max_restarts = max_restarts
        self.window = float(window)
        self._restarts: deque[float] = deque()  # timestamps, oldest first
        self._total = 0
        self._escalated = False

    def _prune(self, now: float) -> None:
        threshold = now - self.window
        while self._restarts and self._restarts[0] < threshold:
            self._restarts.popleft()

    def restarts_in_window(self, now: float) -> int:
        """Restarts counted against the limit at time ``now`` (does not change the state)."""
        threshold = now - self.window
        return sum(1 for t in self._restarts if t >= threshold)

    def decide(
        self, child: str, policy: RestartPolicy, exit: ExitKind, *, now: float, cause: str
    ) -> Decision:
        """Decide what to do about ``child`` exiting with ``exit`` at ``now``.

        A RESTART answer is recorded as a restart (it counts against the intensity). ``cause`` is a
        short description of the exit (the exception's repr, or ``"returned"``).
        """
        action = DECISIONS[(RestartPolicy(policy), ExitKind(exit))]
        if action is not Action.RESTART:
            count = self.restarts_in_window(now)
            reason = f"child {child!r} exited ({cause}); policy {policy} does not restart it"
            return Decision(action, child, ExitKind(exit), cause, count, reason)
        self._prune(now)
        self._restarts.append(now)
        count = len(self._restarts)
        if count > self.max_restarts:
            self._escalated = True
            reason = (
                f"child {child!r} exited ({cause}) and would be restart number {count} within "
                f"{self.window:g}s, over the limit of {self.max_restarts} restarts in {self.window:g}s"
            )
            return Decision(Action.ESCALATE, child, ExitKind(exit), cause, count, reason)
        self._total += 1
        reason = (
            f"child {child!r} exited ({cause}); restarting it "
            f"({count} of {self.max_restarts} restarts allowed in {self.window:g}s)"
        )
        return Decision(Action.RESTART, child, ExitKind(exit), cause, count, reason)

    def statistics(self, now: float) -> RestartTrackerStatistics:
        return RestartTrackerStatistics(
            max_restarts=self.max_restarts,
            window=self.window,
            restarts_in_window=self.restarts_in_window(now),
            total_restarts=self._total,
            escalated=self._escalated,
        )

    def __repr__(self) -> str:
        return (
            f"<RestartTracker intensity={self.max_restarts} in {self.window:g}s, "
            f"{len(self._restarts)} recent, {self._total} total"
            f"{', escalated' if self._escalated else ''}>"
        )
