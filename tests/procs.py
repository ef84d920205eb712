"""Real child processes for the tests that run trimesh on loopback: start one with its output in a
log file, read the log's tail for failure messages, and stop it by PID.

A thin layer over :class:`trimesh.nursery.GroupPopen`, the same supervisor the sidecar's app and
the demo use: each process runs in its own process group, ``stop()`` is the stop sequence
(SIGTERM to the group, up to :data:`STOP_TIMEOUT`, then SIGKILL to the group and to the groups of
its descendants, such as a sidecar's app), so a test never leaves a forked child behind."""

from __future__ import annotations

import os
import random
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from trimesh.nursery import GroupPopen, log_tail, spawn_logged

STOP_TIMEOUT = 5.0  # seconds between SIGTERM and SIGKILL


def trimesh_command() -> list[str]:
    """The installed ``trimesh`` script beside this interpreter, or the module through it."""
    script = Path(sys.executable).with_name("trimesh")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from trimesh.cli import main; main()"]


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux: 32768 by default)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_EPHEMERAL_LOW = _ephemeral_low()
_PORT_FLOOR = 20000  # below: the mesh's fixed ports (9080, 15000, 15001, 15010, ...)
_given: set[tuple[str, int]] = set()  # (host, port) handed out by this process
_pick = random.Random()


def free_port(host: str, kind: int = socket.SOCK_STREAM) -> int:
    """A port on ``host`` for a child process to bind, taken **below the kernel's ephemeral
    range**: a port from ``bind(0)`` lies inside it, and an outgoing connection from ``host``
    can take it as its source port before the child binds (``Address already in use``; seen in
    CI). Never the same port twice in one test process. Falls back to ``bind(0)`` when the
    range leaves no room."""
    if _EPHEMERAL_LOW - _PORT_FLOOR > 1000:
        for _ in range(500):
            port = _pick.randrange(_PORT_FLOOR, _EPHEMERAL_LOW)
            if (host, port) in _given:
                continue
            with socket.socket(socket.AF_INET, kind) as s:
                try:
                    s.bind((host, port))
                except OSError:
                    continue
            _given.add((host, port))
            return port
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class Proc:
    """A child process with its log file; ``stop()`` ends it (and its group) by PID."""

    name: str
    popen: GroupPopen
    log_path: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)

    def kill9(self) -> None:
        """SIGKILL now (a crash, as the tests simulate one): the group and its descendants'."""
        self.popen.kill_group()

    def stop(self) -> int | None:
        """The stop sequence; the exit status as a shell reports it (143 after SIGTERM)."""
        return self.popen.stop(STOP_TIMEOUT)


def spawn(name: str, argv: list[str], log_dir: Path, env: dict | None = None) -> Proc:
    """Start ``argv`` with stdout and stderr appended to ``log_dir/NAME.log``."""
    log_path = log_dir / f"{name}.log"
    popen = spawn_logged(argv, log_path, name=name,
                         env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    return Proc(name=name, popen=popen, log_path=log_path)


def wait_until(predicate, timeout: float, what: str, proc: Proc | None = None,
               interval: float = 0.05):
    """Poll ``predicate`` (bounded) until it returns a truthy value; fail with the process log."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except (OSError, httpx.HTTPError):
            value = None
        if value:
            return value
        if proc is not None and not proc.alive():
            pytest.fail(f"{proc.name} exited with {proc.popen.returncode} while waiting for "
                        f"{what}:\n{proc.log_tail()}")
        if time.monotonic() > deadline:
            tail = f":\n{proc.log_tail()}" if proc is not None else ""
            pytest.fail(f"timed out after {timeout} s waiting for {what}{tail}")
        time.sleep(interval)
