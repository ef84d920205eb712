"""The app as a child process of a supervision tree, and OS signals as a task.

:class:`AppProcess` runs one command (``trimesh run sidecar ... -- APP ARGS``): ``run()`` starts it
and returns its exit status; ``send_signal()`` forwards a signal (SIGTERM/SIGINT from the
sidecar's own signal handler); ``stop()`` asks it to exit (SIGTERM, unless a signal was already
forwarded), waits up to ``stop_timeout`` seconds, then SIGKILLs it. Cancelling ``run()`` stops the
process the same way inside a shielded scope, so an app never outlives the tree that started it.
Kubernetes' pod termination is the model: SIGTERM, a grace period (30 s there), SIGKILL.

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

DEFAULT_APP_STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL (Kubernetes: 30)
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
    """One child process (module docstring). Not restartable: one ``run()`` per object."""

    def __init__(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                 stop_timeout: float = DEFAULT_APP_STOP_TIMEOUT, name: str = "app") -> None:
        if not argv:
            raise ValueError(f"{name}: empty command")
        self.argv = list(argv)
        self.env = dict(env) if env is not None else None
        self.stop_timeout = stop_timeout
        self.name = name
        self.pid: int | None = None
        self.returncode: int | None = None
        self.signals_sent: list[int] = []
        self.killed = False
        self._proc: trio.Process | None = None
        self._started = trio.Event()
        self._exited = trio.Event()

    @property
    def running(self) -> bool:
        return self._proc is not None and self.returncode is None

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> int:
        """Start the process, report ``started(pid)``, return its exit status (negative: killed by
        that signal). Cancelled: terminate, wait ``stop_timeout`` (shielded), kill."""
        if self._proc is not None:
            raise RuntimeError(f"{self.name}: run() can be called once")
        self._proc = await trio.lowlevel.open_process(self.argv, env=self.env)
        self.pid = self._proc.pid
        self._started.set()
        log.info("%s started: pid %d: %s", self.name, self.pid, " ".join(self.argv))
        task_status.started(self.pid)
        try:
            self.returncode = await self._proc.wait()
        finally:
            if self._proc.returncode is None:
                with trio.CancelScope(shield=True):
                    await self._terminate()
            self.returncode = self._proc.returncode
            self._exited.set()
        return self.returncode

    def send_signal(self, signum: int) -> bool:
        """Forward ``signum`` if the process runs; True when sent."""
        if not self.running:
            return False
        assert self._proc is not None
        self._proc.send_signal(signum)
        self.signals_sent.append(signum)
        return True

    async def _terminate(self) -> None:
        assert self._proc is not None
        if not self.signals_sent:
            self.send_signal(signal.SIGTERM)
        with trio.move_on_after(self.stop_timeout):
            await self._proc.wait()
        if self._proc.returncode is None:
            log.warning("%s (pid %s) ignored SIGTERM for %gs; killing it", self.name, self.pid,
                        self.stop_timeout)
            self.killed = True
            self._proc.kill()
            await self._proc.wait()

    async def stop(self) -> None:
        """Ask the process to exit and wait for ``run()`` to see it (no-op if never started)."""
        if not self._started.is_set() or self._exited.is_set():
            return
        await self._terminate()
        await self._exited.wait()

    def statistics(self) -> dict[str, object]:
        return {"pid": self.pid, "running": self.running, "returncode": self.returncode,
                "signals_sent": list(self.signals_sent), "killed": self.killed}

    def __repr__(self) -> str:
        state = "running" if self.running else f"exited {self.returncode}"
        return f"<AppProcess {self.name} pid={self.pid} {state}>"


async def serve_signals(on_signal: Callable[[int], None],
                        signums: Sequence[int] = (signal.SIGTERM, signal.SIGINT), *,
                        task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Call ``on_signal(signum)`` for each of ``signums`` received, until cancelled."""
    with trio.open_signal_receiver(*signums) as signals:
        task_status.started()
        async for signum in signals:
            on_signal(signum)
