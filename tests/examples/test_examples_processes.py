"""Each sample runs as ``python -m trimesh.samples....`` (and through its ``examples`` launcher): ready line, serves, exits 0 on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest
import trio

from trimesh.samples import BOOKINFO, HTTPBIN
from trimesh.samples._client import fetch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
READY = re.compile(r"^(?P<name>.+) ready on (?P<url>http://127\.0\.0\.1:\d+)$")
START_TIMEOUT = 20.0  # seconds for interpreter start-up on a loaded 2-core machine

pytestmark = pytest.mark.e2e  # real processes on loopback


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "no_proxy")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Child:
    """A started example process and the lines it has written to stderr."""

    def __init__(self, proc: trio.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._buffer = b""

    async def wait_for_line(self, pattern: re.Pattern[str]) -> re.Match[str]:
        with trio.fail_after(START_TIMEOUT):
            while True:
                for line in self.lines:
                    if m := pattern.search(line):
                        return m
                chunk = await self.proc.stderr.receive_some(4096)
                if not chunk:
                    raise AssertionError(f"process exited before {pattern.pattern!r}: {self.lines}")
                self._buffer += chunk
                *complete, self._buffer = self._buffer.split(b"\n")
                self.lines += [c.decode() for c in complete]

    async def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        with trio.fail_after(START_TIMEOUT):
            return await self.proc.wait()


async def start(*args: str) -> Child:
    proc = await trio.lowlevel.open_process([sys.executable, "-m", *args], cwd=REPO, env=child_env(),
                                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.PIPE)
    return Child(proc)


PROBES = {  # service → (path, bytes the answer must contain)
    "productpage": ("/health", b"Product page is healthy"),
    "details": ("/details/0", b'"publisher": "PublisherA"'),
    "reviews": ("/reviews/0", b'"Reviewer2"'),
    "ratings": ("/ratings/0", b'"Reviewer1": 5'),
    "httpbin": ("/ip", b'"origin": "127.0.0.1"'),
}


@pytest.mark.parametrize("workload", [*BOOKINFO, *HTTPBIN], ids=lambda w: f"{w.service}-{w.version}")
async def test_every_workload_runs_as_a_module(workload):
    argv = workload.argv(address="127.0.0.1", port=0)
    assert argv[:3] == [sys.executable, "-m", workload.module]
    child = await start(*argv[2:])
    try:
        ready = await child.wait_for_line(READY)
        assert ready["name"] == f"{workload.service} {workload.version}"
        path, expect = PROBES[workload.service]
        response = await fetch(ready["url"] + path, timeout=10)
        assert response.status == 200 and expect in response.body
        if workload.service == "reviews" and workload.version == "v1":
            assert b"rating" not in response.body
    finally:
        status = await child.stop()
    assert status == 0


async def test_address_in_use_exits_1():
    first = await start("trimesh.samples.bookinfo.details", "--port", "0")
    try:
        url = (await first.wait_for_line(READY))["url"]
        port = url.rsplit(":", 1)[1]
        second = await start("trimesh.samples.bookinfo.ratings", "--port", port)
        with trio.fail_after(START_TIMEOUT):
            assert await second.proc.wait() == 1
        await second.wait_for_line(re.compile(rf"ratings v1: cannot listen on 127\.0\.0\.1:{port}"))
    finally:
        assert await first.stop() == 0


async def test_sleep_waits_until_sigterm():
    child = await start("trimesh.samples.sleep")
    await child.wait_for_line(re.compile("sleep ready"))
    await trio.sleep(0.1)
    assert child.proc.returncode is None
    assert await child.stop() == 0


async def test_loadgen_cli_against_httpbin():
    server = await start("trimesh.samples.httpbin", "--port", "0", "--quiet")
    try:
        url = (await server.wait_for_line(READY))["url"]
        result = await trio.run_process(
            [sys.executable, "-m", "trimesh.samples.loadgen", "load", "-c", "3", "-qps", "0", "-n", "30",
             "-loglevel", "Error", f"{url}/status/503"],
            cwd=REPO, env=child_env(), capture_stdout=True, capture_stderr=True)
        out = result.stdout.decode()
        assert "Starting at max qps with 3 thread(s) for exactly 30 calls (10 per thread + 0)" in out
        assert "Code 503 : 30 (100.0 %)" in out.splitlines()
        assert "Parsed non ok code" not in out  # -loglevel Error silences the per-call warnings
        curl = await trio.run_process([sys.executable, "-m", "trimesh.samples.loadgen", "-curl", f"{url}/get"],
                                      cwd=REPO, env=child_env(), capture_stdout=True)
        text = curl.stdout.decode()
        assert text.startswith("HTTP/1.1 200 OK\n") and '"url": "' + url + '/get"' in text
    finally:
        assert await server.stop() == 0


@pytest.mark.parametrize("launcher", ["examples.bookinfo.details", "examples.httpbin"])
async def test_the_checkouts_examples_launchers_run_the_samples(launcher):
    """``python -m examples.X`` from a checkout's root (what examples/README.md shows) still works:
    the launcher runs ``trimesh.samples.X``."""
    child = await start(launcher, "--port", "0", "--quiet") if launcher.endswith("httpbin") else (
        await start(launcher, "--port", "0"))
    try:
        ready = await child.wait_for_line(READY)
        assert ready["name"] in ("details v1", "httpbin v1")
    finally:
        assert await child.stop() == 0
