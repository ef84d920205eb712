"""Helpers of the demo's end-to-end tests (fixtures are in conftest.py): the docs' rule files as a
user gets them (``trimesh demo --write-rules DIR``), ``trimesh`` as a user runs it from ``DIR``, starting and stopping a mesh with trimesh.demo's launcher.

A uniquely named module, because every directory's conftest.py is a module named "conftest"."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
import sys
from pathlib import Path

import pytest

from trimesh.demo import DemoMesh, plan_mesh
from trimesh.demo._mesh import trimesh_command
from trimesh.nursery import group_members
from trimesh.samples import write_rules

# Where the tests' `trimesh` commands run: a directory holding what `--write-rules` writes, so the
# docs' paths (samples/bookinfo/kube/NAME) work as printed; nothing is read from the checkout.
RULES_HOME = Path(tempfile.mkdtemp(prefix="trimesh-demo-rules-"))
atexit.register(shutil.rmtree, RULES_HOME, True)
write_rules(RULES_HOME)
RULES = RULES_HOME / "samples" / "bookinfo" / "kube"
CLI_TIMEOUT = 30.0  # seconds for one `trimesh create|replace|delete|get`


def pid_gone(pid: int) -> bool:
    """No process ``pid`` (or only a zombie nobody reaped: not running anything)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[-1].split()[0] == b"Z"
    except FileNotFoundError:
        return True


def trimesh_cli(mesh: DemoMesh, *args: str, check: bool = True,
                wait: bool = True) -> subprocess.CompletedProcess:
    """``trimesh ARGS --control URL`` from :data:`RULES_HOME`, as a user types it; then (``wait``) block
    until every sidecar shows the control's latest revision (the docs' "wait a few seconds")."""
    env = {k: v for k, v in os.environ.items() if k != "TRIMESH_CONTROL"}
    out = subprocess.run([*trimesh_command(), *args, "--control", mesh.control_url],
                         cwd=RULES_HOME, env=env, capture_output=True, text=True,
                         timeout=CLI_TIMEOUT)
    if check and out.returncode != 0:
        pytest.fail(f"trimesh {' '.join(args)} exited {out.returncode}:\n{out.stderr}")
    if wait:
        mesh.wait_synced()
    return out


def skip_or_fail(reason: str) -> None:
    """tests/conftest.py's ``skip_or_fail`` (a module named conftest cannot be imported from here:
    tests/demo has its own): skip, or fail under CI=true, where everything needed is installed."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (a failure under CI=true, not a skip)")
    pytest.skip(reason)


SEED = 20180207  # the sidecars' routing RNGs are seeded: the 50 % split test is reproducible


def start_mesh(workloads, block: str, workdir: Path) -> DemoMesh:
    plan = plan_mesh(workloads, python=sys.executable, block=block)
    mesh = DemoMesh(plan, workdir=workdir, seed=SEED)
    try:
        mesh.start()
    except BaseException:
        mesh.stop()
        raise
    return mesh


def stop_mesh(mesh: DemoMesh) -> None:
    pids = mesh.pids()
    groups = [p.pid for p in mesh.processes]  # each leads its own process group
    summary = mesh.stop()
    left = [p for p in pids if not pid_gone(p)]
    left += [m for g in groups for m in group_members(g) if m not in left]
    assert not left, f"processes left behind: {left}\n" + "\n".join(summary.lines())
