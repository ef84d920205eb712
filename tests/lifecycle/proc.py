"""Helpers for tests/lifecycle: real sidecar and upstream processes on loopback, stopped by PID."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request

READY = re.compile(r"sidecar (\S+) ready: inbound ([\d.]+):(\d+) -> ([\d.]+):(\d+), "
                   r"outbound ([\d.]+):(\d+), admin ([\d.]+):(\d+)")
SIDECAR = [sys.executable, "-c", "from trimesh.cli import main; main()", "run", "sidecar"]
UPSTREAM = [sys.executable, "-m", "trimesh.testing.upstream"]


def start(cmd, env=None, **kw):
    full = dict(os.environ, **(env or {}))
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=full, **kw)


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


def stop(proc, timeout=10.0):
    if proc.poll() is None:
        proc.kill()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        pass


def get(url, timeout=5.0):
    """(status, body) without any proxy."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
