"""``trimesh demo`` and ``trimesh demo --check`` as a user runs them: a real command, a real mesh,
Ctrl-C, and no process left behind (every PID the demo printed is gone)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import httpx
from demo_testkit import CHECKOUT, SEED, pid_gone

from trimesh.demo import run_demo
from trimesh.demo._mesh import trimesh_command

CHECK_TIMEOUT = 120.0  # the issue: `trimesh demo --check` passes in under two minutes
START_TIMEOUT = 60.0


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "TRIMESH_CONTROL"}


def _pids(text: str) -> list[int]:
    return [int(p) for p in re.findall(r"\bpid (\d+)", text)]


def test_demo_check_passes_and_leaves_no_process():
    began = time.monotonic()
    out = subprocess.run([*trimesh_command(), "demo", "--check", "--addresses", "127.0.15",
                          "--seed", str(SEED)],
                         cwd=CHECKOUT, env=_env(), capture_output=True, text=True,
                         timeout=CHECK_TIMEOUT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert time.monotonic() - began < CHECK_TIMEOUT
    lines = out.stdout.splitlines()
    verdicts = [line for line in lines if line.startswith(("PASS", "FAIL"))]
    assert len(verdicts) == 10 and all(v.startswith("PASS") for v in verdicts), out.stdout
    assert "check: 10 of 10 scenarios passed" in out.stdout
    ready = [line for line in lines if "] ready " in line]
    assert len(ready) == 13  # control, 6 sidecars, 6 apps: one line each
    # the sidecars find each other by gossip, and the mesh is up only once it converged
    assert "members find each other by gossip through 127.0.15.1:7946" in lines[0]
    converged = [line for line in lines if "] gossip: 7 of 7 members alive in " in line]
    assert len(converged) == 1, out.stdout
    assert lines.index(converged[0]) < lines.index(next(x for x in lines if x.startswith("PASS")))
    pids = set(_pids(out.stdout))
    assert len(pids) == 13
    assert [p for p in pids if not pid_gone(p)] == []
    assert "0 killed, 0 still running" in out.stdout


def test_demo_prints_url_and_commands_and_stops_on_ctrl_c():
    proc = subprocess.Popen([*trimesh_command(), "demo", "--addresses", "127.0.16",
                             "--control-port", "15011"],
                            cwd=CHECKOUT, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    seen: list[str] = []
    try:
        deadline = time.monotonic() + START_TIMEOUT
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line.rstrip("\n"))
            if line.startswith("Press Ctrl-C"):
                break
        text = "\n".join(seen)
        assert "Product page:  http://127.0.16.2:9080/productpage" in text, text
        control = "--control http://127.0.16.1:15011"  # not the default: every command says so
        first = f"trimesh create -f examples/bookinfo/route-rule-all-v1.yaml {control}"
        assert first in text, text
        assert "found each other by gossip (seed 127.0.16.1:7946)" in text, text
        members_cmd = f"trimesh members {control}"
        assert members_cmd in text, text
        listed = subprocess.run([*trimesh_command(), *members_cmd.split()[1:]], cwd=CHECKOUT,
                                env=_env(), capture_output=True, text=True, timeout=30)
        assert listed.returncode == 0, listed.stderr
        assert "reviews-v3@127.0.16.6:7946" in listed.stdout and "alive" in listed.stdout
        assert httpx.get("http://127.0.16.2:9080/productpage", timeout=10).status_code == 200

        # the printed command works as printed (from the checkout)
        applied = subprocess.run([*trimesh_command(), *first.split()[1:]], cwd=CHECKOUT,
                                 env=_env(), capture_output=True, text=True, timeout=30)
        assert applied.returncode == 0, applied.stderr
        assert "Created config route-rule/default/reviews-default" in applied.stdout
    finally:
        proc.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal does
        rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, rest
    pids = set(_pids("\n".join(seen)))
    assert len(pids) == 13
    assert "0 killed, 0 still running" in rest, rest
    assert set(_pids(rest)) == pids  # the summary names every process it started
    assert [p for p in pids if not pid_gone(p)] == []


def test_demo_without_examples_exits_1_with_a_clear_message(monkeypatch, tmp_path):
    import trimesh.demo._run as run_module
    from trimesh.demo import find_checkout

    monkeypatch.setattr(run_module, "find_checkout", lambda: find_checkout([tmp_path]))
    lines: list[str] = []
    assert run_demo(echo=lines.append) == 1
    assert len(lines) == 1
    assert lines[0].startswith("Error: cannot find the BookInfo examples")
    assert str(tmp_path / "examples") in lines[0] and "pip install -e ." in lines[0]


def test_demo_refuses_a_block_outside_loopback():
    lines: list[str] = []
    assert run_demo(block="10.0.0", echo=lines.append) == 1
    assert "127.0.0.0/8" in lines[0]
