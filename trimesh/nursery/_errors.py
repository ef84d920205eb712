"""Errors a supervisor raises when it gives up. Each names the supervisor and the child, and is
chained (``raise ... from``) to the child's own exception when there was one."""

from __future__ import annotations

from ..errors import TrimeshError


class SupervisorError(TrimeshError):
    """A supervision tree failed because of one child.

    ``supervisor`` and ``child`` are names; ``cause`` is a short description of what the child did
    (``repr`` of its exception, or ``"returned"``); ``__cause__`` is the child's exception, if any.
    """

    def __init__(self, message: str, *, supervisor: str, child: str, cause: str) -> None:
        super().__init__(message)
        self.supervisor = supervisor
        self.child = child
        self.cause = cause


class ChildStartError(SupervisorError):
    """A child failed before reporting ``started()`` while the tree was starting."""


class RestartIntensityError(SupervisorError):
    """A child exited once too often: the restart intensity (MaxR restarts in MaxT seconds) was
    exceeded, so the supervisor stopped its other children and failed."""
