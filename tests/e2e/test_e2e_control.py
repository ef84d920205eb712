"""Issue 3 acceptance through the control: the request-routing task as the docs run it
(``trimesh create -f`` / ``trimesh delete -f`` against a real ``trimesh run control``), with a
sidecar that takes its rules from the control's config API. Each change must reach new requests
within 1 s of the command returning."""

from __future__ import annotations

import os
import subprocess
import time
from collections import Counter

import httpx
import pytest
from docs_yaml import bookinfo
from e2e_harness import (Proc, free_port, next_address, spawn, start_sidecar, trimesh_command,
                         wait_sidecar_ready, wait_until)

# the four rules of traffic task §2.2, and jason's rule of §2.3
ALL_V1 = bookinfo("route-rule-all-v1.yaml")

TEST_V2 = bookinfo("route-rule-reviews-test-v2.yaml")

APPLY_WITHIN = 1.0  # seconds from the command's return to new requests following the change


@pytest.fixture(scope="module")
def controlled(mesh, tmp_path_factory):
    """A control process and a second sidecar ("details") that follows it."""
    log_dir = tmp_path_factory.mktemp("e2e-control")
    address = next_address()
    port = free_port(address)
    control = spawn("control", trimesh_command() + [
        "run", "control", "--state-dir", str(log_dir / "state"), "--address", address,
        "--config-port", str(port)], log_dir)
    url = f"http://{address}:{port}"
    sidecar = None
    try:
        wait_until(lambda: httpx.get(f"{url}/v1/version", timeout=2).status_code == 200, 20,
                   "the control's config API", control)
        sidecar = start_sidecar(log_dir, "details", [u.instance() for u in mesh.upstreams.values()],
                                control_url=url)
        wait_sidecar_ready(sidecar)
        yield url, sidecar, log_dir
    finally:
        for proc in (sidecar.proc if sidecar else None, control):
            if isinstance(proc, Proc):
                proc.stop()


def _cli(url: str, log_dir, verb: str, text: str) -> str:
    path = log_dir / f"{verb}-{time.monotonic_ns()}.yaml"
    path.write_text(text)
    out = subprocess.run(trimesh_command() + [verb, "-f", str(path)], capture_output=True,
                         text=True, timeout=30, env={**os.environ, "TRIMESH_CONTROL": url})
    assert out.returncode == 0, out.stderr
    return out.stdout


def _follow(sidecar, want, headers=None) -> float:
    """Seconds until requests through ``sidecar`` are served by ``want`` (bounded: 5 s)."""
    start = time.monotonic()
    with httpx.Client(base_url=sidecar.proxy_url, headers={"host": "reviews:9080"},
                      timeout=10) as client:
        while time.monotonic() - start < 5.0:
            r = client.get("/reviews/0", headers=headers)
            if r.headers.get("x-upstream-name") == want:
                return time.monotonic() - start
            time.sleep(0.01)
    pytest.fail(f"requests did not reach {want} within 5 s")


def _versions(sidecar, n: int, headers=None) -> Counter:
    with httpx.Client(base_url=sidecar.proxy_url, headers={"host": "reviews:9080"},
                      timeout=10) as client:
        return Counter(client.get("/reviews/0", headers=headers).headers.get("x-upstream-name")
                       for _ in range(n))


def test_request_routing_task_through_the_control(controlled):
    url, sidecar, log_dir = controlled
    out = _cli(url, log_dir, "create", ALL_V1)
    assert "Created config route-rule/default/reviews-default at revision" in out
    took = _follow(sidecar, "reviews-v1")
    assert took <= APPLY_WITHIN, took
    assert _versions(sidecar, 30) == {"reviews-v1": 30}

    _cli(url, log_dir, "create", TEST_V2)
    took = _follow(sidecar, "reviews-v2", {"cookie": "user=jason"})
    assert took <= APPLY_WITHIN, took
    assert _versions(sidecar, 20, {"cookie": "user=jason"}) == {"reviews-v2": 20}
    assert _versions(sidecar, 20, {"cookie": "user=alice"}) == {"reviews-v1": 20}

    out = _cli(url, log_dir, "delete", ALL_V1 + "---\n" + TEST_V2)
    assert "Deleted config route-rule/default/reviews-test-v2" in out
    took = _follow(sidecar, "reviews-v3")
    assert took <= APPLY_WITHIN, took
    spread = _versions(sidecar, 60)
    assert set(spread) == {"reviews-v1", "reviews-v2", "reviews-v3"}, spread
