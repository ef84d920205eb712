"""`trimesh run control` as a process: ready line, clean exit on SIGINT/SIGTERM, start-up errors."""

import os
import signal
import socket
import subprocess
import sys

import pytest
from control_harness import CLI, ControlProcess

from trimesh.control import ControlClient

pytestmark = pytest.mark.e2e  # real processes on loopback


def test_sigint_exits_0_and_the_ready_line_names_url_and_state(tmp_path):
    proc = ControlProcess(tmp_path / "state", tmp_path / "log").start()
    assert ControlClient(proc.url).version()["revision"] == 0
    os.kill(proc.proc.pid, signal.SIGINT)
    assert proc.proc.wait(10) == 0
    lines = (tmp_path / "log").read_text().splitlines()
    assert [line for line in lines if "ready" in line] == [
        f"control ready: config API on {proc.url}, state in {tmp_path / 'state'}"]


def run_cli(*args):
    return subprocess.run([sys.executable, "-c", CLI, *args], capture_output=True, text=True,
                          timeout=30, stdin=subprocess.DEVNULL)


def test_second_control_on_the_same_state_dir_exits_1(tmp_path):
    first = ControlProcess(tmp_path / "state", tmp_path / "log").start()
    try:
        second = run_cli("run", "control", "--state-dir", str(tmp_path / "state"), "--config-port", "0")
        assert second.returncode == 1
        assert "another control is using the state directory" in second.stderr
    finally:
        assert first.stop() == 0


def test_busy_port_exits_1_naming_it(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("run", "control", "--state-dir", str(tmp_path), "--config-port", str(port))
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_default_state_dir_follows_xdg(tmp_path, monkeypatch):
    from trimesh.control import default_state_dir

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_state_dir() == tmp_path / "trimesh" / "control"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_state_dir() == tmp_path / ".local" / "state" / "trimesh" / "control"
