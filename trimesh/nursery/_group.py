"""Process groups: how a child process and everything it started are stopped together.

Every child process trimesh starts (the app under ``trimesh run sidecar -- APP``, the demo's
control and sidecars, the test suites' servers) runs in **its own session**, so it leads a new
process group whose id is its PID. Whatever it forks stays in that group unless it asks for another
one: ``sh -c 'server & wait'``, a Flask debug reloader (a parent watching files and a child holding
the port), a ``gunicorn`` master and its workers. Signalling the group (``killpg``) reaches all of
them; signalling the PID reaches only the leader, and a leader that dies first leaves its children
running, orphaned, holding ports.

**The stop sequence** (:func:`stop_steps`, PURE) is Kubernetes' pod termination applied to the
group: SIGTERM to the group, wait up to ``stop_timeout`` for the group to be gone, then SIGKILL to
the group and wait up to :data:`KILL_TIMEOUT`. A signal already forwarded to the group (the
sidecar forwards the SIGTERM or SIGINT it got) replaces the SIGTERM step: the app is not asked
twice. "Gone" means the leader has been reaped *and* no other member remains; a leader that exits
on its own with members left (its shell was killed, its reloader parent crashed) is not the end
either: the remaining members get the same sequence.

**Is anyone left?** (:func:`group_members`) ``killpg(pgid, 0)`` failing with ESRCH means the
group is empty. A success may only mean a zombie remains (an orphan is reaped by PID 1, here up to
a second later), so on Linux the members are read from ``/proc/*/stat`` (field 5 is the process
group) and zombies are not counted. A group id cannot be reused while any member exists, since Linux
keeps a PID allocated while it names a live group, so signalling a group that still has members
never reaches a stranger.

**The status a shell reports** (:func:`exit_status`, PURE): 0-255 for a normal exit, 128+N for
death by signal N (143 for SIGTERM, 137 for SIGKILL, 130 for SIGINT), where Python's
``returncode`` says -N. Log lines and the sidecar's own exit status use the shell's form.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

DEFAULT_APP_STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL (Kubernetes: 30)
KILL_TIMEOUT = 5.0  # seconds a SIGKILLed group gets to vanish (only a task stuck in the kernel lasts)
GROUP_POLL_INTERVAL = 0.05  # seconds between checks for the members a leader left behind
_DEAD_STATES = (b"Z", b"X")  # zombie, dead: exited, not yet (or just) reaped


@dataclass(frozen=True)
class StopStep:
    """One step of the stop sequence: send ``signum`` to the group (None: send nothing, a signal
    was already forwarded), then wait up to ``timeout`` seconds for the group to be gone."""

    signum: int | None
    timeout: float


def stop_steps(stop_timeout: float, *, signalled: bool = False,
               kill: bool = False) -> tuple[StopStep, ...]:
    """The stop sequence (module docstring). PURE. ``signalled``: a signal was already sent to the
    group, so the first step sends none; ``kill``: skip the grace period (SIGKILL at once)."""
    if stop_timeout < 0:
        raise ValueError(f"stop timeout must be >= 0 seconds, not {stop_timeout}")
    killing = StopStep(signal.SIGKILL, KILL_TIMEOUT)
    if kill:
        return (killing,)
    return (StopStep(None if signalled else signal.SIGTERM, stop_timeout), killing)


def exit_status(returncode: int) -> int:
    """``returncode`` (Python's: -N when killed by signal N) as a shell reports it (128+N). PURE."""
    return 128 - returncode if returncode < 0 else returncode


def describe_exit(returncode: int) -> str:
    """``status 3``, ``status 143 (SIGTERM)`` for log lines. PURE."""
    if returncode >= 0:
        return f"status {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    return f"status {exit_status(returncode)} ({name})"


def signal_group(pgid: int, signum: int) -> bool:
    """Send ``signum`` to every member of process group ``pgid``; False when no member is left (or
    none may be signalled by us: EPERM)."""
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def group_members(pgid: int) -> list[int]:
    """PIDs of the live (not zombie) members of process group ``pgid``, leader included if it
    lives; [] when the group is gone. Without ``/proc``, ``[pgid]`` stands for "someone is left"."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return []
    except PermissionError:
        pass  # members exist, we may not signal them; /proc still lists them
    try:
        entries = os.listdir("/proc")
    except OSError:
        return [pgid]
    members = []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[-1].split()  # the name may hold spaces and ')'
        except OSError:
            continue  # exited while we looked
        # fields: state, ppid, pgrp, ... (proc(5) fields 3, 4, 5)
        if len(fields) > 2 and fields[2] == str(pgid).encode() and fields[0] not in _DEAD_STATES:
            members.append(int(entry))
    return sorted(members)


def group_alive(pgid: int) -> bool:
    """Whether process group ``pgid`` still has a live member."""
    return bool(group_members(pgid))


def read_cmdline(pid: int) -> bytes:
    """``/proc/<pid>/cmdline`` (b"" when gone or unreadable)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def pid_runs(pid: int, cmdline: bytes = b"") -> bool:
    """Whether ``pid`` runs (not a zombie) and, given ``cmdline``, still runs that command (a PID
    reused by another program does not count)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in _DEAD_STATES and (not cmdline or read_cmdline(pid) == cmdline)


def child_pids(pid: int) -> list[int]:
    """PIDs of ``pid``'s children (Linux ``/proc/<pid>/task/*/children``; [] elsewhere or when
    ``pid`` is gone)."""
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.extend(int(p) for p in f.read().split())
        except (OSError, ValueError):
            continue
    return out


def descendant_groups(pid: int) -> list[int]:
    """The process groups of ``pid``'s descendants other than ``pid``'s own group (an app the
    sidecar ``pid`` started in its own session, that app's own children's groups, ...), found by
    walking ``/proc`` children; bounded by the process count."""
    try:
        own = os.getpgid(pid)
    except ProcessLookupError:
        return []
    groups: list[int] = []
    seen = {pid}
    todo = child_pids(pid)
    while todo:
        child = todo.pop()
        if child in seen:
            continue
        seen.add(child)
        try:
            pgid = os.getpgid(child)
        except ProcessLookupError:
            continue
        if pgid != own and pgid not in groups:
            groups.append(pgid)
        todo.extend(child_pids(child))
    return groups
