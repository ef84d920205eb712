"""The synchronous twin of :class:`AppProcess`, for supervisors with no Trio run: the demo launcher
(a CLI and a module-scoped pytest fixture) and the test suites' real-process helpers.

:class:`GroupPopen` is a ``subprocess.Popen`` that always starts in its own session (so it leads a
process group, :mod:`._group`), with the whole Popen API unchanged (``send_signal`` still signals
the PID only: a test that sends SIGTERM "by PID" means it), plus the group's side:
``signal_group()``, ``group_alive()``, ``leader_alive()``, ``exit_status`` (as a shell reports it), ``stop()``
(the stop sequence) and ``kill_group()``. :func:`spawn_logged` starts one with stdin closed and
stdout and stderr appended to a log file; :func:`log_tail` reads that file's end for error messages.
:class:`ProcessGroup` is the same group view of a process this one did not start (the demo sees
each sidecar's app that way).

:func:`stop_processes` runs the stop sequence of :func:`._group.stop_steps` over several processes
at once (each step signals every group still alive, then waits for all of them until the step's
timeout), polling every ``GROUP_POLL_INTERVAL``: the demo stops its six sidecars in one grace
period, not six. Before the SIGKILL step it also collects the groups of the processes'
descendants (an app a sidecar runs in its own session), so a sidecar that could not stop its app
does not leave it behind when it is killed.

``die_with_parent`` asks Linux to SIGTERM the child when the process that started it dies
(``PR_SET_PDEATHSIG``): a demo killed with SIGKILL does not leave its sidecars behind. Linux sends
it when the *thread* that forked exits, so start such children from a thread that lives as long as
they should (the demo's main thread); the trio shell cannot use it (Trio forks in a worker thread).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ._group import (
    DEFAULT_APP_STOP_TIMEOUT,
    GROUP_POLL_INTERVAL,
    descendant_groups,
    exit_status,
    group_alive,
    pid_runs,
    read_cmdline,
    signal_group,
    stop_steps,
)

LOG_TAIL_LINES = 40
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _pdeathsig_preexec() -> Callable[[], None] | None:
    """A preexec_fn setting ``PR_SET_PDEATHSIG`` to SIGTERM (None off Linux).

    The libc function is resolved here, in the parent, so the child (between fork and exec, where
    taking a lock another thread held at fork time could deadlock) only makes the one call."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def setup() -> None:  # pragma: no cover - runs in the child
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)

    return setup


class GroupPopen(subprocess.Popen):
    """A ``subprocess.Popen`` in its own session; stopped as a group (module docstring)."""

    def __init__(self, args: Sequence[str], *, name: str | None = None,
                 log_path: Path | None = None, die_with_parent: bool = False,
                 **kwargs: Any) -> None:
        if kwargs.get("start_new_session") is False or "process_group" in kwargs:
            raise ValueError("a GroupPopen always starts in its own session")
        if die_with_parent:
            if kwargs.get("preexec_fn") is not None:
                raise ValueError("die_with_parent sets its own preexec_fn")
            kwargs["preexec_fn"] = _pdeathsig_preexec()
        kwargs["start_new_session"] = True
        argv = args if isinstance(args, (str, bytes)) else list(args)  # a str: shell=True
        super().__init__(argv, **kwargs)
        self.name = name or Path(str(self.args if isinstance(argv, str) else argv[0])).name
        self.log_path = log_path
        self.signals_sent: list[int] = []  # to the group
        self.killed = False

    @property
    def pgid(self) -> int:
        return self.pid

    @property
    def exit_status(self) -> int | None:
        """The exit status as a shell reports it (143 after SIGTERM); None while it runs."""
        code = self.poll()
        return None if code is None else exit_status(code)

    def signal_group(self, signum: int) -> bool:
        """``signum`` to the whole group; False when nobody is left in it."""
        if not signal_group(self.pgid, signum):
            return False
        self.signals_sent.append(signum)
        return True

    def leader_alive(self) -> bool:
        return self.poll() is None

    def group_alive(self) -> bool:
        """Whether the leader runs or any member of its group is left (reaps the leader)."""
        return self.poll() is None or group_alive(self.pgid)

    def stop(self, timeout: float = DEFAULT_APP_STOP_TIMEOUT) -> int | None:
        """The stop sequence (SIGTERM the group, ``timeout`` s, SIGKILL); the exit status."""
        stop_processes([self], timeout)
        return self.exit_status

    def kill_group(self) -> int | None:
        """SIGKILL the group (and its descendants' groups) at once; the exit status."""
        stop_processes([self], 0.0, kill=True)
        return self.exit_status

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return log_tail(self.log_path, lines) if self.log_path is not None else ""

    def statistics(self) -> dict[str, object]:
        return {"pid": self.pid, "running": self.poll() is None, "returncode": self.returncode,
                "exit_status": self.exit_status, "signals_sent": list(self.signals_sent),
                "killed": self.killed}

    def __repr__(self) -> str:
        status = self.exit_status
        state = "running" if status is None else f"exited {status}"
        return f"<GroupPopen {self.name} pid={self.pid} {state}>"


class ProcessGroup:
    """A process group this process did not start, known by its leader's PID: the app a sidecar
    runs in its own session, seen by the demo. Signalled and checked as a group like a
    :class:`GroupPopen`, and stopped by :func:`stop_processes` with them; the leader's
    ``cmdline`` (read when found) keeps a reused PID from counting as the leader."""

    def __init__(self, pid: int, *, name: str | None = None, cmdline: bytes | None = None) -> None:
        self.pid = pid
        self.cmdline = read_cmdline(pid) if cmdline is None else cmdline
        self.name = name or f"group {pid}"
        self.signals_sent: list[int] = []
        self.killed = False

    @property
    def pgid(self) -> int:
        return self.pid

    def leader_alive(self) -> bool:
        return pid_runs(self.pid, self.cmdline)

    def group_alive(self) -> bool:
        return self.leader_alive() or group_alive(self.pgid)

    def signal_group(self, signum: int) -> bool:
        if not self.group_alive() or not signal_group(self.pgid, signum):
            return False
        self.signals_sent.append(signum)
        return True

    def __repr__(self) -> str:
        return f"<ProcessGroup {self.name} pgid={self.pgid} alive={self.group_alive()}>"


def spawn_logged(argv: Sequence[str], log_path: Path, *, name: str | None = None,
                 env: Mapping[str, str] | None = None, cwd: Path | str | None = None,
                 append: bool = True, die_with_parent: bool = False) -> GroupPopen:
    """Start ``argv`` in its own group, stdin closed, stdout and stderr to ``log_path`` (appended,
    or truncated first unless ``append``); ``env`` replaces the environment when given."""
    with open(log_path, "ab" if append else "wb") as log:  # the child keeps its own descriptor
        return GroupPopen(argv, name=name, log_path=log_path, die_with_parent=die_with_parent,
                          stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                          env=None if env is None else dict(env), cwd=cwd)


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of the log file ``path`` ("" if it cannot be read)."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def stop_processes(procs: Sequence[GroupPopen | ProcessGroup], timeout: float = DEFAULT_APP_STOP_TIMEOUT, *,
                   kill: bool = False) -> list[GroupPopen | ProcessGroup]:
    """The stop sequence over ``procs`` at once (module docstring; ``kill``: SIGKILL at once);
    returns those whose group outlived it (empty when every group is gone)."""
    pending = [p for p in procs if p.group_alive()]
    orphans: set[int] = set()  # descendants' groups, SIGKILLed with the SIGKILL step
    for index, step in enumerate(stop_steps(timeout, kill=kill)):
        for p in pending:
            signum = stop_steps(timeout, signalled=bool(p.signals_sent), kill=kill)[index].signum
            if signum == signal.SIGKILL:
                p.killed = True
                if p.leader_alive():
                    orphans.update(descendant_groups(p.pid))
            if signum is not None:
                p.signal_group(signum)
        if step.signum == signal.SIGKILL:
            for pgid in orphans:
                signal_group(pgid, signal.SIGKILL)
        deadline = time.monotonic() + step.timeout
        while True:
            pending = [p for p in pending if p.group_alive()]
            if not pending and not any(group_alive(g) for g in orphans):
                return []
            if time.monotonic() >= deadline:
                break
            time.sleep(GROUP_POLL_INTERVAL)
    return pending
