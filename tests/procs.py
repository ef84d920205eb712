"""Real child processes for the tests that run trimesh on loopback: start one with its output in a
log file, read the log's tail for failure messages, and stop it by PID (terminate, wait, kill)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

STOP_TIMEOUT = 5.0  # seconds between SIGTERM and SIGKILL


def trimesh_command() -> list[str]:
    """The installed ``trimesh`` script beside this interpreter, or the module through it."""
    script = Path(sys.executable).with_name("trimesh")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from trimesh.cli import main; main()"]


def free_port(host: str, kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class Proc:
    """A child process with its log file; ``stop()`` ends it by PID."""

    name: str
    popen: subprocess.Popen
    log_path: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def kill9(self) -> None:
        os.kill(self.popen.pid, signal.SIGKILL)
        self.popen.wait(STOP_TIMEOUT)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(STOP_TIMEOUT)


def spawn(name: str, argv: list[str], log_dir: Path, env: dict | None = None) -> Proc:
    """Start ``argv`` with stdout and stderr appended to ``log_dir/NAME.log``."""
    log_path = log_dir / f"{name}.log"
    with open(log_path, "ab") as log:  # the child keeps its own descriptor
        popen = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL,
                                 env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    return Proc(name=name, popen=popen, log_path=log_path)
