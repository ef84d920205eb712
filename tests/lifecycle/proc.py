"""Helpers for tests/lifecycle: real sidecar and upstream processes on loopback, stopped by PID.

``start`` returns a :class:`trimesh.nursery.GroupPopen` (a ``subprocess.Popen`` in its own process
group, the supervisor the sidecar's app and the demo use) with stdout and stderr piped as text;
``stop`` SIGKILLs its group and its descendants' groups (a sidecar's app) and reaps it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request

from trimesh.nursery import GroupPopen

READY = re.compile(r"sidecar (\S+) ready: inbound ([\d.]+):(\d+) -> ([\d.]+):(\d+), "
                   r"outbound ([\d.]+):(\d+), admin ([\d.]+):(\d+)")
SIDECAR = [sys.executable, "-c", "from trimesh.cli import main; main()", "run", "sidecar"]
UPSTREAM = [sys.executable, "-m", "trimesh.testing.upstream"]


def start(cmd, env=None, **kw) -> GroupPopen:
    full = dict(os.environ, **(env or {}))
    return GroupPopen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full,
                      **kw)


def wait_ready(proc, timeout=20.0):
    """The ready line's match (groups: name, inbound host/port, app host/port, outbound host/port,
    admin host/port); fails with the stderr seen so far."""
    deadline = time.monotonic() + timeout
    lines = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        m = READY.search(line)
        if m:
            return m
    stop(proc)
    raise AssertionError("no ready line: " + "".join(lines))


def wait_port(host, port, timeout=10.0):
    import socket
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {host}:{port}")


def stop(proc: GroupPopen) -> None:
    """Clean-up in ``finally``: SIGKILL whatever is left of ``proc``'s group at once (a test that
    wants a graceful stop sends SIGTERM by PID and waits itself)."""
    proc.kill_group()


def get(url, timeout=5.0):
    """(status, body) without any proxy."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def reloader_code(host: str, port: int, *, parent_exits: int | None = None) -> str:
    """A Flask-debug-reloader shape: a python parent that starts a python child holding the port
    and waits for it (``parent_exits``: the parent exits with that status once the child serves,
    leaving it behind)."""
    child = ("import socket, time\n"
             f"s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
             f"s.bind(({host!r}, {port})); s.listen()\n"
             "while True:\n    c, _ = s.accept(); c.close()\n")
    after = (f"import os; os._exit({parent_exits})" if parent_exits is not None
             else "child.wait()")
    return ("import socket, subprocess, sys, time\n"
            f"child = subprocess.Popen([sys.executable, '-c', {child!r}])\n"
            "for _ in range(400):\n"
            "    try:\n"
            f"        socket.create_connection(({host!r}, {port}), timeout=0.2).close(); break\n"
            "    except OSError:\n        time.sleep(0.05)\n"
            f"{after}\n")
