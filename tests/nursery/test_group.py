"""Process groups: the stop sequence and the exit status (pure), the group calls, AppProcess and
GroupPopen stopping a whole group, on real processes (sockets on 127.0.120.x only)."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time

import pytest
import trio

from tests.lifecycle.proc import reloader_code
from tests.procs import free_port
from trimesh.nursery import (
    KILL_TIMEOUT,
    AppProcess,
    GroupPopen,
    StopStep,
    child_pids,
    describe_exit,
    exit_status,
    group_alive,
    group_members,
    signal_group,
    spawn_logged,
    stop_processes,
    stop_steps,
)

PY = sys.executable
SH_WAIT = ["sh", "-c", "sleep 300 & wait"]  # a shell and its background job, one group


# -- pure ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("returncode", "status", "text"), [
    (0, 0, "status 0"),
    (3, 3, "status 3"),
    (255, 255, "status 255"),
    (-signal.SIGTERM, 143, "status 143 (SIGTERM)"),
    (-signal.SIGKILL, 137, "status 137 (SIGKILL)"),
    (-signal.SIGINT, 130, "status 130 (SIGINT)"),
    (-64, 192, "status 192 (signal 64)" if not hasattr(signal, "SIGRTMAX")
     or signal.SIGRTMAX != 64 else "status 192 (SIGRTMAX)"),
])
def test_exit_status_is_what_a_shell_reports(returncode, status, text):
    assert exit_status(returncode) == status
    assert describe_exit(returncode) == text


@pytest.mark.parametrize(("kwargs", "steps"), [
    ({}, (StopStep(signal.SIGTERM, 10.0), StopStep(signal.SIGKILL, KILL_TIMEOUT))),
    ({"signalled": True}, (StopStep(None, 10.0), StopStep(signal.SIGKILL, KILL_TIMEOUT))),
    ({"kill": True}, (StopStep(signal.SIGKILL, KILL_TIMEOUT),)),
    ({"kill": True, "signalled": True}, (StopStep(signal.SIGKILL, KILL_TIMEOUT),)),
])
def test_stop_steps(kwargs, steps):
    assert stop_steps(10.0, **kwargs) == steps


def test_a_negative_stop_timeout_is_refused():
    with pytest.raises(ValueError, match="stop timeout must be >= 0 seconds, not -1"):
        stop_steps(-1)
    with pytest.raises(ValueError, match="stop timeout"):
        AppProcess(["true"], stop_timeout=-1)


# -- helpers ------------------------------------------------------------------------------------

def _wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


async def _until_members(pgid: int, count: int, timeout: float = 15.0) -> None:
    with trio.fail_after(timeout):
        while len(group_members(pgid)) < count:
            await trio.sleep(0.02)


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return not group_members(pgid)  # only zombies left, waiting for PID 1 to reap them


def _refused(host: str, port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex((host, port)) != 0


# -- the group calls ----------------------------------------------------------------------------

def test_group_members_outlive_their_leader_until_the_group_is_signalled():
    proc = GroupPopen(SH_WAIT, name="sh")
    try:
        assert proc.pgid == proc.pid == os.getpgid(proc.pid)  # its own group
        assert os.getsid(proc.pid) == proc.pid  # its own session: off our terminal
        _wait_for(lambda: len(group_members(proc.pgid)) == 2)
        os.kill(proc.pid, signal.SIGKILL)  # the leader only, by PID
        assert proc.wait(10) == -signal.SIGKILL and proc.exit_status == 137
        assert group_alive(proc.pgid) and proc.group_alive()  # its sleep lives on
        assert signal_group(proc.pgid, signal.SIGKILL)
        _wait_for(lambda: _group_gone(proc.pgid))
        _wait_for(lambda: not signal_group(proc.pgid, 0))  # ESRCH once PID 1 reaped the zombie
        with pytest.raises(ProcessLookupError):
            os.killpg(proc.pgid, 0)
    finally:
        signal_group(proc.pgid, signal.SIGKILL)


# -- AppProcess (Trio) --------------------------------------------------------------------------

async def test_stop_ends_the_whole_group():
    app = AppProcess(SH_WAIT, stop_timeout=5, name="sh")
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(app.run)
        await _until_members(pid, 2)
        await app.stop()
    assert _group_gone(pid)
    assert app.returncode == -signal.SIGTERM and app.exit_status == 143
    assert app.signals_sent == [signal.SIGTERM] and not app.killed
    assert app.statistics()["exit_status"] == 143 and "exited 143" in repr(app)


async def test_a_leader_killed_alone_does_not_end_run_before_its_group():
    app = AppProcess(SH_WAIT, stop_timeout=5, name="sh")
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(app.run)
        await _until_members(pid, 2)
        os.kill(pid, signal.SIGKILL)  # the shell dies, its sleep stays in the group
        with trio.fail_after(10):
            while app.running:
                await trio.sleep(0.02)
    assert app.exit_status == 137 and app.left_behind == 1
    assert app.signals_sent == [signal.SIGTERM]  # the leftover sleep got the stop sequence
    assert _group_gone(pid)


async def test_forwarded_signal_reaches_every_member_once(tmp_path):
    marks = tmp_path / "marks"
    child = ("import signal, sys, time\n"
             f"def bye(n, f):\n    open({str(marks)!r}, 'a').write('c'); sys.exit(0)\n"
             "signal.signal(signal.SIGINT, bye)\n"
             f"open({str(marks)!r}, 'a').write('u')\n"
             "time.sleep(30)\n")
    parent = ("import signal, subprocess, sys, time\n"
              f"def bye(n, f):\n    open({str(marks)!r}, 'a').write('p')\n"
              "signal.signal(signal.SIGINT, bye)\n"
              f"child = subprocess.Popen([sys.executable, '-c', {child!r}])\n"
              "child.wait(); time.sleep(0.3); sys.exit(4)\n")
    app = AppProcess([PY, "-c", parent], stop_timeout=5)
    async with trio.open_nursery() as nursery:
        await nursery.start(app.run)
        with trio.fail_after(10):
            while not marks.exists():
                await trio.sleep(0.02)
        await trio.sleep(0.2)  # the child has installed its handler before writing 'u'
        assert app.send_signal(signal.SIGINT)
        await app.stop()  # already signalled: no SIGTERM on top
    assert sorted(marks.read_text()) == ["c", "p", "u"]
    assert app.exit_status == 4 and app.signals_sent == [signal.SIGINT] and not app.killed


async def test_a_member_ignoring_sigterm_is_killed_with_the_group():
    code = ("import signal, subprocess, sys, time\n"
            "subprocess.Popen([sys.executable, '-c', 'import signal, time; "
            "signal.signal(signal.SIGTERM, signal.SIG_IGN); print(1, flush=True); "
            "time.sleep(60)'], stdout=subprocess.PIPE).stdout.readline()\n"
            "print('ready', flush=True); time.sleep(60)\n")
    app = AppProcess([PY, "-c", code], stop_timeout=0.5)
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(app.run)
        await _until_members(pid, 2)
        await trio.sleep(0.3)
        began = trio.current_time()
        await app.stop()
        took = trio.current_time() - began
    assert app.killed and app.exit_status == 143  # the leader died of SIGTERM, its child of KILL
    assert 0.4 < took < 0.5 + KILL_TIMEOUT
    assert _group_gone(pid)


@pytest.mark.parametrize("parent_exits", [None, 1], ids=["stopped", "parent-crashed"])
async def test_a_reloader_parent_and_its_serving_child(parent_exits):
    host = "127.0.120.1"
    port = free_port(host)
    app = AppProcess([PY, "-c", reloader_code(host, port, parent_exits=parent_exits)],
                     stop_timeout=5, name="reloader")
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(app.run)
        if parent_exits is None:
            with trio.fail_after(20):
                while _refused(host, port):
                    await trio.sleep(0.05)
            await app.stop()
        else:  # the parent exits once its child serves; run() stops the child it left behind
            with trio.fail_after(20):
                while app.running:
                    await trio.sleep(0.02)
    assert _group_gone(pid) and _refused(host, port)
    if parent_exits is None:
        assert app.exit_status == 143 and app.left_behind == 0
    else:
        assert app.exit_status == 1 and app.left_behind == 1


# -- GroupPopen (sync) --------------------------------------------------------------------------

def test_group_popen_stop_and_logs(tmp_path):
    log = tmp_path / "sh.log"
    proc = spawn_logged(["sh", "-c", "echo hello; sleep 300 & wait"], log, name="sh")
    try:
        _wait_for(lambda: len(group_members(proc.pgid)) == 2 and "hello" in proc.log_tail())
        assert repr(proc).startswith(f"<GroupPopen sh pid={proc.pid} running")
        assert proc.stop(5) == 143
        assert _group_gone(proc.pgid) and not proc.killed
        assert proc.statistics()["signals_sent"] == [signal.SIGTERM]
        assert proc.log_tail() == "hello"
    finally:
        signal_group(proc.pgid, signal.SIGKILL)


def test_group_popen_refuses_another_group():
    with pytest.raises(ValueError, match="own session"):
        GroupPopen(["true"], start_new_session=False)


def test_stop_processes_kills_what_ignores_sigterm_and_the_descendants_own_groups(tmp_path):
    # a "sidecar" that ignores SIGTERM and runs an "app" in a session of its own
    code = ("import signal, subprocess, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "subprocess.Popen(['sleep', '300'], start_new_session=True)\n"
            "time.sleep(300)\n")
    proc = spawn_logged([PY, "-c", code], tmp_path / "p.log")
    quick = spawn_logged(SH_WAIT, tmp_path / "q.log")
    try:
        _wait_for(lambda: len(child_pids(proc.pid)) == 1)
        app_pgid = child_pids(proc.pid)[0]
        began = time.monotonic()
        assert stop_processes([proc, quick], 0.5) == []
        assert time.monotonic() - began < 0.5 + KILL_TIMEOUT
        assert proc.killed and proc.exit_status == 137
        assert not quick.killed and quick.exit_status == 143
        assert _group_gone(proc.pgid) and _group_gone(quick.pgid) and _group_gone(app_pgid)
    finally:
        for p in (proc, quick):
            signal_group(p.pgid, signal.SIGKILL)


def test_kill_group_does_not_wait(tmp_path):
    proc = spawn_logged(SH_WAIT, tmp_path / "k.log")
    _wait_for(lambda: len(group_members(proc.pgid)) == 2)
    assert proc.kill_group() == 137 and proc.killed
    assert _group_gone(proc.pgid)

