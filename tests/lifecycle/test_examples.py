"""examples/embedding run as real processes against real upstream processes, routed by a
RouteRule: the Trio app (open_mesh) and the synchronous urllib script (start_in_thread)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs_yaml import bookinfo
from tests.lifecycle.proc import UPSTREAM, start, stop, wait_port

ROOT = Path(__file__).resolve().parents[2]

# the docs' request-routing task: every service to v1, jason to reviews v2
RULE = bookinfo("route-rule-all-v1.yaml", "route-rule-reviews-test-v2.yaml")


@pytest.fixture(scope="module")
def mesh_files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("embedding")
    procs = []
    try:
        for version, address in (("v1", "127.0.12.1"), ("v2", "127.0.12.2")):
            procs.append(start(UPSTREAM + ["--address", address, "--port", "9080", "--name",
                                           f"reviews-{version}", "--service", "reviews",
                                           "--version", version, "--no-record"]))
            wait_port(address, 9080)
        (tmp / "registry.yaml").write_text(
            "- {service: reviews, address: 127.0.12.1, port: 9080, labels: {version: v1}}\n"
            "- {service: reviews, address: 127.0.12.2, port: 9080, labels: {version: v2}}\n")
        (tmp / "rules.yaml").write_text(RULE)
        yield tmp
    finally:
        for p in procs:
            stop(p)


def _run(module, files, *extra):
    res = subprocess.run([sys.executable, "-m", module, "--registry",
                          str(files / "registry.yaml"), "--config", str(files / "rules.yaml"),
                          "--count", "6", *extra], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, check=False)
    lines = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    return res.returncode, [line for line in lines if "status" in line], res.stderr


@pytest.mark.parametrize("module", ["examples.embedding.trio_app",
                                    "examples.embedding.sync_script"])
def test_example_is_routed_by_the_route_rule(module, mesh_files):
    code, calls, err = _run(module, mesh_files)
    assert code == 0, err
    assert [c["upstream"] for c in calls] == ["reviews-v1"] * 6
    code, calls, err = _run(module, mesh_files, "--header", "cookie=user=jason")
    assert code == 0, err
    assert [c["upstream"] for c in calls] == ["reviews-v2"] * 6
    code, calls, err = _run(module, mesh_files, "http://nowhere:9080/")
    assert [(c["status"], c["flags"]) for c in calls] == [(404, "NR")] * 6
