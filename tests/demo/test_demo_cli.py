"""``trimesh demo`` and ``trimesh demo --check`` as a user runs them: a real command, a real mesh,
Ctrl-C, and no process left behind (every PID the demo printed is gone)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time

import httpx
import pytest
from demo_testkit import RULES_HOME, SEED, pid_gone

from trimesh.demo import run_demo
from trimesh.demo._mesh import trimesh_command

CHECK_TIMEOUT = 120.0  # the issue: `trimesh demo --check` passes in under two minutes
START_TIMEOUT = 60.0


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "TRIMESH_CONTROL"}


def _pids(text: str) -> list[int]:
    return [int(p) for p in re.findall(r"\bpid (\d+)", text)]


def test_demo_check_passes_and_leaves_no_process():
    """The default demo: mutual TLS between the sidecars (issue 15), the page through the
    ingress, the docs' scenarios plus the mutual-TLS check."""
    began = time.monotonic()
    out = subprocess.run([*trimesh_command(), "demo", "--check", "--addresses", "127.0.15",
                          "--seed", str(SEED)],
                         cwd=RULES_HOME, env=_env(), capture_output=True, text=True,
                         timeout=CHECK_TIMEOUT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert time.monotonic() - began < CHECK_TIMEOUT
    lines = out.stdout.splitlines()
    verdicts = [line for line in lines if line.startswith(("PASS", "FAIL"))]
    assert len(verdicts) == 11 and all(v.startswith("PASS") for v in verdicts), out.stdout
    assert "check: 11 of 11 scenarios passed" in out.stdout
    assert "mutual TLS between sidecars" in verdicts[0] and "plaintext refused" in verdicts[0]
    assert "6 of 6 sidecars require it with a certificate" in verdicts[0]
    assert "at http://127.0.15.100:8080/productpage" in out.stdout  # through the ingress
    ready = [line for line in lines if "] ready " in line]
    assert len(ready) == 14  # control, 6 sidecars, 6 apps, the ingress: one line each
    # the sidecars find each other by gossip, and the mesh is up only once it converged
    assert "members find each other by gossip through 127.0.15.1:7946" in lines[0]
    converged = [line for line in lines if "] gossip: 7 of 7 members alive in " in line]
    assert len(converged) == 1, out.stdout
    assert lines.index(converged[0]) < lines.index(next(x for x in lines if x.startswith("PASS")))
    pids = set(_pids(out.stdout))
    assert len(pids) == 14  # control, six sidecars, six apps, the ingress
    assert [p for p in pids if not pid_gone(p)] == []
    assert "0 killed, 0 still running" in out.stdout


def test_demo_prints_url_and_commands_and_stops_on_ctrl_c():
    proc = subprocess.Popen([*trimesh_command(), "demo", "--addresses", "127.0.16",
                             "--control-port", "15011"],
                            cwd=RULES_HOME, env=_env(), stdout=subprocess.PIPE,
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
        assert "Product page:  http://127.0.16.100:8080/productpage  (through the ingress" \
            in text, text
        assert "Mutual TLS between the sidecars: their ports refuse plaintext" in text, text
        edge = httpx.get("http://127.0.16.100:8080/productpage", timeout=10)
        assert edge.status_code == 200 and "The Comedy of Errors" in edge.text
        control = "--control http://127.0.16.1:15011"  # not the default: every command says so
        first = f"trimesh create -f samples/bookinfo/kube/route-rule-all-v1.yaml {control}"
        assert first in text, text
        assert "found each other by gossip (seed 127.0.16.1:7946)" in text, text
        members_cmd = f"trimesh members {control}"
        assert members_cmd in text, text
        listed = subprocess.run([*trimesh_command(), *members_cmd.split()[1:]], cwd=RULES_HOME,
                                env=_env(), capture_output=True, text=True, timeout=30)
        assert listed.returncode == 0, listed.stderr
        assert "reviews-v3@127.0.16.6:7946" in listed.stdout and "alive" in listed.stdout
        with pytest.raises(httpx.HTTPError):  # productpage's sidecar speaks mutual TLS only
            httpx.get("http://127.0.16.2:9080/productpage", timeout=10)
        # … to a caller with a certificate from the mesh, as the printed line says
        certs = re.search(r"root-cert\.pem are under (\S+)/NAME", text).group(1)
        curl = shutil.which("curl")
        if curl:
            pp = f"{certs}/productpage-v1"
            out = subprocess.run([curl, "-sk", "--cert", f"{pp}/cert-chain.pem", "--key",
                                  f"{pp}/key.pem", "https://127.0.16.7:9080/ratings/0"],
                                 capture_output=True, text=True, timeout=30)
            assert out.returncode == 0 and '"ratings"' in out.stdout, out

        # the printed command works as printed (where --write-rules wrote the rule files)
        applied = subprocess.run([*trimesh_command(), *first.split()[1:]], cwd=RULES_HOME,
                                 env=_env(), capture_output=True, text=True, timeout=30)
        assert applied.returncode == 0, applied.stderr
        assert "Created config route-rule/default/reviews-default" in applied.stdout
    finally:
        proc.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal does
        rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, rest
    pids = set(_pids("\n".join(seen)))
    assert len(pids) == 14  # control, six sidecars, six apps, the ingress
    assert "0 killed, 0 still running" in rest, rest
    assert set(_pids(rest)) == pids  # the summary names every process it started
    assert [p for p in pids if not pid_gone(p)] == []


def test_write_rules_writes_the_docs_files_under_their_docs_names(tmp_path):
    out = subprocess.run([*trimesh_command(), "demo", "--write-rules", str(tmp_path / "here")],
                         cwd="/", env=_env(), capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    written = sorted(p.relative_to(tmp_path / "here").as_posix()
                     for p in (tmp_path / "here").rglob("*.yaml"))
    for name in ("samples/bookinfo/kube/route-rule-all-v1.yaml",
                 "samples/bookinfo/kube/route-rule-reviews-50-v3.yaml",
                 "samples/httpbin/routerules/mirror-traffic-to-httbin-v2.yaml",
                 "samples/httpbin/destinationpolicies/httpbin-circuit-breaker.yaml"):
        assert name in written
    assert f"wrote {len(written)} rule files" in out.stdout
    assert "trimesh create -f samples/bookinfo/kube/route-rule-all-v1.yaml" in out.stdout


def test_write_rules_into_a_file_exits_1_naming_it(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    out = subprocess.run([*trimesh_command(), "demo", "--write-rules", str(blocker / "x")],
                         env=_env(), capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert out.stderr.startswith("Error: cannot write the docs' rule file ")
    assert str(blocker / "x" / "samples") in out.stderr
    assert blocker.read_text() == "not a directory"


def test_demo_refuses_a_block_outside_loopback():
    lines: list[str] = []
    assert run_demo(block="10.0.0", echo=lines.append) == 1
    assert "127.0.0.0/8" in lines[0]


def test_demo_check_passes_without_mutual_tls():
    """``trimesh demo --check --no-mtls``: plaintext between the sidecars, the page at
    productpage's sidecar and through the ingress, the docs' ten scenarios."""
    out = subprocess.run([*trimesh_command(), "demo", "--check", "--no-mtls", "--addresses",
                          "127.0.17", "--seed", str(SEED)],
                         cwd=RULES_HOME, env=_env(), capture_output=True, text=True,
                         timeout=CHECK_TIMEOUT)
    assert out.returncode == 0, out.stdout + out.stderr
    verdicts = [line for line in out.stdout.splitlines() if line.startswith(("PASS", "FAIL"))]
    assert len(verdicts) == 10 and all(v.startswith("PASS") for v in verdicts), out.stdout
    assert not any("mutual TLS" in v for v in verdicts)
    assert "at http://127.0.17.2:9080/productpage" in out.stdout  # productpage's sidecar
    assert "through the ingress 200" in out.stdout
    assert [p for p in set(_pids(out.stdout)) if not pid_gone(p)] == []
