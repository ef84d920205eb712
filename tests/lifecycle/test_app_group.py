"""``trimesh run sidecar ... -- APP`` as real processes: the app runs in its own process group and
the sidecar stops the whole group (SIGTERM, then SIGKILL after APP_STOP_TIMEOUT), within the drain
bound; a leader that dies alone does not leave its group behind; Ctrl-C reaches the app once.

Addresses 127.0.120.x only."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time

import pytest

from tests.lifecycle.proc import SIDECAR, reloader_code, start, stop, wait_port, wait_ready
from trimesh.nursery import KILL_TIMEOUT, child_pids, group_members
from trimesh.sidecar._sidecar import APP_STOP_TIMEOUT

DRAIN = 0.5  # --drain-timeout of these sidecars
# inbound drain + the app's stop sequence + outbound drain + a cold interpreter's slack
DRAIN_BOUND = 2 * DRAIN + APP_STOP_TIMEOUT + KILL_TIMEOUT + 5.0
BASE = ["--port", "0", "--proxy-port", "0", "--admin-port", "0", "--control", "none",
        "--access-log", "off", "--drain-timeout", str(DRAIN)]


def _sidecar(address: str, *app: str, service: str = "a"):
    return start(SIDECAR + ["--service", service, "--app-port", "1", "--address", address,
                            *BASE, "--", *app])


def _app_pid(proc, members: int, timeout: float = 20.0) -> int:
    """The app's PID (the sidecar's child), once its group has ``members`` live processes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = child_pids(proc.pid) if proc.poll() is None else []
        if kids and kids[0] in group_members(kids[0]) and len(group_members(kids[0])) >= members:
            return kids[0]
        time.sleep(0.05)
    raise AssertionError(f"no app with {members} processes under sidecar {proc.pid}")


def _gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return not group_members(pgid)  # zombies only, PID 1 reaps them


def _exit_within(proc, bound: float) -> tuple[int, float]:
    began = time.monotonic()
    code = proc.wait(bound)
    return code, time.monotonic() - began


def test_sigterm_to_the_sidecar_leaves_nothing_of_the_apps_group():
    proc = _sidecar("127.0.120.2", "sh", "-c", "sleep 300 & wait")
    try:
        wait_ready(proc)
        pgid = _app_pid(proc, members=2)
        assert os.getpgid(proc.pid) != pgid  # the app is not in the sidecar's group
        proc.send_signal(signal.SIGTERM)  # by PID, as a process manager does
        code, took = _exit_within(proc, DRAIN_BOUND)
        assert _gone(pgid), group_members(pgid)
        assert took < DRAIN_BOUND
        err = proc.stderr.read()
        assert code == 143, err  # sh died of the forwarded SIGTERM: 128 + 15
        assert "app exited with status 143" in err
    finally:
        stop(proc)


def test_an_app_leader_killed_alone_does_not_leave_its_group():
    proc = _sidecar("127.0.120.3", "sh", "-c", "sleep 300 & wait")
    try:
        wait_ready(proc)
        pgid = _app_pid(proc, members=2)
        os.kill(pgid, signal.SIGKILL)  # the shell only, by PID: its sleep stays in the group
        code, _ = _exit_within(proc, DRAIN_BOUND)
        err = proc.stderr.read()
        assert code == 137, err
        assert _gone(pgid), group_members(pgid)
        assert "leaving 1 process(es) of its group: stopping them" in err
    finally:
        stop(proc)


@pytest.mark.parametrize("how", ["sigterm", "parent-crash"])
def test_a_reloader_parent_and_its_serving_child_are_stopped(how):
    host, port = "127.0.120.4", 18080
    code_text = reloader_code(host, port, parent_exits=3 if how == "parent-crash" else None)
    proc = _sidecar("127.0.120.5", sys.executable, "-c", code_text)
    try:
        wait_ready(proc)
        pgid = _app_pid(proc, members=1)
        if how == "sigterm":
            wait_port(host, port, timeout=20)  # the child serves
            assert len(group_members(pgid)) == 2
            proc.send_signal(signal.SIGTERM)
        code, took = _exit_within(proc, DRAIN_BOUND)
        assert _gone(pgid), group_members(pgid)
        assert code == (143 if how == "sigterm" else 3), proc.stderr.read()
        with socket.socket() as s:
            assert s.connect_ex((host, port)) != 0  # the child no longer holds the port
    finally:
        stop(proc)


def test_ctrl_c_reaches_the_app_once(tmp_path):
    marks = tmp_path / "sigints"
    app = ("import signal, sys, time\n"
           f"def count(n, f):\n    open({str(marks)!r}, 'a').write('I')\n"
           "signal.signal(signal.SIGINT, count)\n"
           f"open({str(marks)!r}, 'a').write('u')\n"
           f"while 'I' not in open({str(marks)!r}).read():\n    time.sleep(0.02)\n"
           "time.sleep(0.5)  # a second SIGINT, if one came, would be counted now\n")
    proc = _sidecar("127.0.120.6", sys.executable, "-c", app)
    try:
        wait_ready(proc)
        pgid = _app_pid(proc, members=1)
        deadline = time.monotonic() + 20
        while not (marks.exists() and "u" in marks.read_text()) and time.monotonic() < deadline:
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal does: its foreground group
        code, _ = _exit_within(proc, DRAIN_BOUND)
        assert code == 0, proc.stderr.read()
        assert marks.read_text() == "uI"  # once, forwarded by the sidecar
        assert _gone(pgid)
    finally:
        stop(proc)
