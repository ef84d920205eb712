"""The app as a child process of a supervision tree, and OS signals as a task.

:class:`AppProcess` runs one command (``trimesh run sidecar ... -- APP ARGS``) in its own session,
so the app leads a new process group and everything it forks stays in it (:mod:`._group`).
``run()`` starts it and returns its exit status as a shell reports it (143 after SIGTERM) once the
whole group is gone; ``send_signal()`` forwards a signal to the group (SIGTERM/SIGINT from the
sidecar's own signal handler); ``stop()`` runs the stop sequence: SIGTERM to the group (unless a
signal was already forwarded), up to ``stop_timeout`` seconds for the group to be gone, then
SIGKILL to the group. Cancelling ``run()`` does the same inside a shielded scope, so an app never
outlives the tree that started it; and a leader that exits on its own but leaves members in its
group (``sh -c 'server & wait'`` whose shell was killed, a reloader parent whose serving child
lives on) does not end ``run()`` either: the members get the stop sequence. Kubernetes' pod
termination is the model: SIGTERM, a grace period (30 s there), SIGKILL.

Its own session also takes the app off the terminal: Ctrl-C in a terminal signals the terminal's
foreground group, which holds the sidecar but no longer the app, so the app gets SIGINT once, as
forwarded by the sidecar (before, it got it twice: directly and forwarded). The cost: the app has
no controlling terminal (it can still read and write the terminal it inherited as stdin/stdout;
opening ``/dev/tty`` fails). ``process_group=0`` would keep the terminal but make the app a
background job, stopped by SIGTTIN the moment it reads from it.

No ``PR_SET_PDEATHSIG`` for the app: Trio forks in a worker thread, and Linux sends that signal
when the forking *thread* exits, so the app would die when Trio's idle thread does. A sidecar
killed with SIGKILL leaves its app's group running; ``stop()`` is the only clean way down.

:func:`serve_signals` turns SIGTERM/SIGINT into calls of ``on_signal(signum)`` for as long as it
runs (Trio's ``open_signal_receiver``; main thread only).

:func:`local_no_proxy` builds the ``NO_PROXY`` value an app under a sidecar gets: loopback names
plus the sidecar's own addresses, so an app's calls to itself skip the mesh (curl, requests and
urllib all read ``NO_PROXY``/``no_proxy`` as a comma-separated list of hosts).
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Iterable, Mapping, Sequence

import trio

from ._group import (
    DEFAULT_APP_STOP_TIMEOUT,
    GROUP_POLL_INTERVAL,
    KILL_TIMEOUT,
    describe_exit,
    exit_status,
    group_alive,
    group_members,
    signal_group,
    stop_steps,
)

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")

log = logging.getLogger("trimesh.nursery")


def local_no_proxy(addresses: Iterable[str], existing: str = "") -> str:
    """``NO_PROXY``: ``existing`` entries first, then loopback names and ``addresses`` (deduped)."""
    out: list[str] = []
    for entry in [*existing.split(","), *LOOPBACK_NAMES, *addresses]:
        entry = entry.strip()
        if entry and entry not in out:
            out.append(entry)
    return ",".join(out)


class AppProcess:
    """One child process in its own process group (module docstring). Not restartable: one
    ``run()`` per object."""

    def __init__(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                 stop_timeout: float = DEFAULT_APP_STOP_TIMEOUT, name: str = "app") -> None:
        if not argv:
            raise ValueError(f"{name}: empty command")
        stop_steps(stop_timeout)  # a bad timeout is an error here, not at stop time
        self.argv = list(argv)
        self.env = dict(env) if env is not None else None
        self.stop_timeout = stop_timeout
        self.name = name
        self.pid: int | None = None
        self.returncode: int | None = None  # Python's: -N when killed by signal N
        self.signals_sent: list[int] = []
        self.killed = False
        self.left_behind = 0  # members the leader left in its group when it exited
        self._proc: trio.Process | None = None
        self._wait_scope = trio.CancelScope()  # cancelled by stop(): run() then stops the group
        self._started = trio.Event()
        self._exited = trio.Event()

    @property
    def pgid(self) -> int | None:
        """The app's process group: its own session's, numbered by its PID."""
        return self.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self.returncode is None

    @property
    def exit_status(self) -> int | None:
        """The exit status as a shell reports it (143 after SIGTERM); None while it runs."""
        return None if self.returncode is None else exit_status(self.returncode)

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> int | None:
        """Start the process in a new session, report ``started(pid)``, return its exit status as
        a shell reports it, once its whole group is gone. Cancelled, or asked to :meth:`stop`:
        the stop sequence (shielded, bounded by ``stop_timeout`` + KILL_TIMEOUT)."""
        if self._proc is not None:
            raise RuntimeError(f"{self.name}: run() can be called once")
        # start_new_session: its own group, and off the terminal, whose Ctrl-C reaches only us
        self._proc = await trio.lowlevel.open_process(self.argv, env=self.env,
                                                      start_new_session=True)
        self.pid = self._proc.pid
        self._started.set()
        log.info("%s started: pid %d: %s", self.name, self.pid, " ".join(self.argv))
        task_status.started(self.pid)
        try:
            with self._wait_scope:
                await self._proc.wait()
        finally:
            with trio.CancelScope(shield=True):
                await self._stop_group()
            self.returncode = self._proc.returncode
            self._exited.set()
        return self.exit_status

    def send_signal(self, signum: int) -> bool:
        """Forward ``signum`` to the app's whole group while it runs; True when sent."""
        if self._proc is None or self._exited.is_set() or self.pid is None:
            return False
        if not signal_group(self.pid, signum):
            return False
        self.signals_sent.append(signum)
        return True

    def _gone(self) -> bool:
        assert self._proc is not None and self.pid is not None
        return self._proc.returncode is not None and not group_alive(self.pid)

    async def _stop_group(self) -> None:
        """The stop sequence, unless the leader exited and took its group with it."""
        assert self._proc is not None and self.pid is not None
        if self._gone():
            return
        if self._proc.returncode is not None:
            self.left_behind = len(group_members(self.pid))
        if self.left_behind and not self.signals_sent:  # not merely slower to die than its leader
            log.warning("%s (pid %d) exited with %s, leaving %d process(es) of its group: "
                        "stopping them", self.name, self.pid,
                        describe_exit(self._proc.returncode), self.left_behind)
        for step in stop_steps(self.stop_timeout, signalled=bool(self.signals_sent)):
            if step.signum == signal.SIGKILL:
                log.warning("%s (pid %d): its group outlived the stop timeout (%gs); killing it",
                            self.name, self.pid, self.stop_timeout)
                self.killed = True
            if step.signum is not None:
                self.send_signal(step.signum)
            with trio.move_on_after(step.timeout):
                await self._proc.wait()
                while group_alive(self.pid):
                    await trio.sleep(GROUP_POLL_INTERVAL)
            if self._gone():
                return
        log.error("%s (pid %d): processes %s of its group outlived SIGKILL by %gs", self.name,
                  self.pid, group_members(self.pid), KILL_TIMEOUT)

    async def stop(self) -> None:
        """Run the stop sequence and wait for ``run()`` to return (no-op if never started)."""
        if not self._started.is_set() or self._exited.is_set():
            return
        self._wait_scope.cancel()
        await self._exited.wait()

    def statistics(self) -> dict[str, object]:
        return {"pid": self.pid, "pgid": self.pgid, "running": self.running,
                "returncode": self.returncode, "exit_status": self.exit_status,
                "signals_sent": list(self.signals_sent), "killed": self.killed,
                "left_behind": self.left_behind}

    def __repr__(self) -> str:
        state = "running" if self.running else f"exited {self.exit_status}"
        return f"<AppProcess {self.name} pid={self.pid} {state}>"


async def serve_signals(on_signal: Callable[[int], None],
                        signums: Sequence[int] = (signal.SIGTERM, signal.SIGINT), *,
                        task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Call ``on_signal(signum)`` for each of ``signums`` received, until cancelled."""
    with trio.open_signal_receiver(*signums) as signals:
        task_status.started()
        async for signum in signals:
            on_signal(signum)
