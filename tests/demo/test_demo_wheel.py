"""The demo as users install it (issue 15, acceptance "From a wheel"): build the wheel, install it
into a fresh virtual environment in a temporary directory (its dependencies from the package
index), then from ``/`` run ``trimesh demo --check``: it passes, and no process is left — neither a
PID the demo printed, nor a member of any of their process groups, nor any process running the
temporary environment's Python.

Nothing of the checkout is on the installed demo's path (``PYTHONPATH`` is dropped, the working
directory is ``/``), so this fails if the demo or a sample reads the checkout at run time.

Skipped with the reason when the wheel cannot be built or installed here (no build backend, no
index reachable); under CI=true (.ci/run) that is a failure instead. Block 127.0.190.x."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from demo_testkit import SEED, pid_gone, skip_or_fail

from trimesh.nursery import group_members

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]  # the checkout the wheel is built from
COPY_IGNORE = (".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__",
               ".pytest_cache", ".hypothesis", "tests", "bench")
BLOCK = "127.0.190"
BUILD_TIMEOUT = 180.0  # seconds: pip wheel (setuptools in an isolated build env)
INSTALL_TIMEOUT = 300.0  # seconds: a fresh venv and the wheel's dependencies
CHECK_TIMEOUT = 180.0  # seconds: `trimesh demo --check` (about 40 s on the 2-core machine)


def _env() -> dict[str, str]:
    drop = {"PYTHONPATH", "TRIMESH_CONTROL", "VIRTUAL_ENV", "PYTHONHOME"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def _run(argv: list[str], *, timeout: float, cwd: Path | str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def _running_from(prefix: Path) -> list[int]:
    """PIDs whose command line names a file under ``prefix`` (the temporary environment)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if any(a.startswith(str(prefix).encode()) for a in argv) and not pid_gone(int(entry)):
            found.append(int(entry))
    return found


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory) -> Path:
    """A fresh venv with the built wheel installed (not editable); its ``bin`` directory."""
    where = tmp_path_factory.mktemp("wheel")
    # built from a copy: setuptools writes build/ into the source tree, and a stale build/lib
    # there (a module since removed) would end up in the wheel
    source = where / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*COPY_IGNORE))
    built = _run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q",
                  "-w", str(where / "dist")], timeout=BUILD_TIMEOUT, cwd=where)
    wheels = sorted((where / "dist").glob("trimesh_mesh-*.whl"))
    if built.returncode != 0 or len(wheels) != 1:
        skip_or_fail(f"cannot build the wheel here (pip wheel exited {built.returncode}): "
                     f"{built.stderr.strip()[-500:]}")
    venv = where / "venv"
    made = _run([sys.executable, "-m", "venv", str(venv)], timeout=INSTALL_TIMEOUT, cwd=where)
    if made.returncode != 0:
        skip_or_fail(f"cannot make a venv here: {made.stderr.strip()[-500:]}")
    installed = _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheels[0])],
                     timeout=INSTALL_TIMEOUT, cwd=where)
    if installed.returncode != 0:
        skip_or_fail(f"cannot install the wheel and its dependencies here (no index?): "
                     f"{installed.stderr.strip()[-500:]}")
    return venv


def test_the_wheel_ships_the_samples_and_not_the_checkout(wheel_venv):
    out = _run([str(wheel_venv / "bin" / "python"), "-c",
                "import trimesh.samples as s, importlib.util as u; "
                "print(s.__file__); print(len(s.rule_files())); "
                "print(u.find_spec('examples') is None)"], timeout=60, cwd="/")
    assert out.returncode == 0, out.stderr
    where, count, no_examples = out.stdout.split()
    assert where.startswith(str(wheel_venv)) and not where.startswith(str(ROOT))
    assert int(count) == len(list((ROOT / "trimesh" / "samples").rglob("*.yaml")))
    assert no_examples == "True"  # the checkout's examples/ is not installed


def test_demo_check_from_the_wheel_passes_from_root_and_leaves_no_process(wheel_venv):
    out = _run([str(wheel_venv / "bin" / "trimesh"), "demo", "--check", "--addresses", BLOCK,
                "--seed", str(SEED)],  # seeded like test_demo_cli: the 50 % split is reproducible
               timeout=CHECK_TIMEOUT, cwd="/")
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "cannot find" not in text
    assert "check: 11 of 11 scenarios passed" in out.stdout, text  # with mutual TLS
    assert f"BookInfo on {BLOCK}.0/24" in out.stdout
    assert "0 killed, 0 still running" in out.stdout, text
    pids = {int(p) for p in re.findall(r"\bpid (\d+)", out.stdout)}
    assert len(pids) == 14  # control, six sidecars, six apps, the ingress
    assert [p for p in pids if not pid_gone(p)] == []
    assert [m for p in pids for m in group_members(p)] == []  # each led its own process group
    assert _running_from(wheel_venv) == []


def test_write_rules_from_the_wheel_makes_the_docs_paths_work(wheel_venv, tmp_path):
    out = _run([str(wheel_venv / "bin" / "trimesh"), "demo", "--write-rules", str(tmp_path)],
               timeout=60, cwd="/")
    assert out.returncode == 0, out.stderr
    rule = tmp_path / "samples" / "bookinfo" / "kube" / "route-rule-all-v1.yaml"
    assert rule.read_bytes() == (ROOT / "trimesh" / "samples" / "bookinfo" / "kube" /
                                 "route-rule-all-v1.yaml").read_bytes()
