"""The fake upstream the e2e tests and benchmarks stand on: in-process on a real loopback socket,
and once as a process (the way the e2e mesh runs it)."""

from __future__ import annotations

import socket
import subprocess
import sys

import httpx
import pytest
import trio
from e2e_harness import free_port, next_address, wait_until

from trimesh.testing import FakeUpstream, serve_upstream


async def _started(nursery, **kw) -> tuple[FakeUpstream, str]:
    upstream = FakeUpstream(**kw)
    port = await nursery.start(serve_upstream, upstream, "127.0.0.1", 0)
    return upstream, f"http://127.0.0.1:{port}"


async def test_names_instance_and_echoes_headers():
    async with trio.open_nursery() as nursery:
        upstream, url = await _started(nursery, name="reviews-v2", service="reviews", version="v2")
        async with httpx.AsyncClient() as client:
            r = await client.get(url + "/reviews/0",
                                 headers={"x-request-id": "abc", "Host": "reviews"})
            r2 = await client.post(url + "/x", content=b"12345")
        body = r.json()
        assert (r.status_code, body["name"], body["version"]) == (200, "reviews-v2", "v2")
        assert body["path"] == "/reviews/0" and body["host"] == "reviews"
        assert body["headers"]["x-request-id"] == "abc"
        assert r.headers["x-upstream-name"] == "reviews-v2"
        assert r2.json()["count"] == 2
        recorded = upstream.requests
        assert [q["path"] for q in recorded] == ["/reviews/0", "/x"]
        assert recorded[1]["body_size"] == 5
        stats = upstream.statistics()
        assert stats["served"] == 2 and stats["connections"] == 1  # keep-alive reused
        assert "served=2" in repr(upstream)
        nursery.cancel_scope.cancel()


async def test_fail_first_n_per_key_then_succeed():
    async with trio.open_nursery() as nursery:
        upstream, url = await _started(nursery, name="flaky")
        async with httpx.AsyncClient() as client:
            hdrs = {"x-upstream-fail": "2", "x-upstream-key": "a", "x-upstream-fail-with": "500"}
            statuses = [(await client.get(url, headers=hdrs)).status_code for _ in range(4)]
            other = await client.get(url, headers={**hdrs, "x-upstream-key": "b"})
            status = await client.get(url, headers={"x-upstream-status": "418"})
        assert statuses == [500, 500, 200, 200]
        assert other.status_code == 500  # a different key has its own counter
        assert status.status_code == 418
        nursery.cancel_scope.cancel()


async def test_close_hang_and_delay():
    async with trio.open_nursery() as nursery:
        upstream, url = await _started(nursery, name="bad")
        async with httpx.AsyncClient() as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await client.get(url, headers={"x-upstream-close": "1"})
            with pytest.raises(httpx.ReadTimeout):
                await client.get(url, headers={"x-upstream-hang": "1"}, timeout=0.3)
            start = trio.current_time()
            r = await client.get(url, headers={"x-upstream-delay": "0.2"})
            assert r.status_code == 200 and trio.current_time() - start >= 0.2
            bad = await client.get(url, headers={"x-upstream-delay": "soon"})
            assert bad.status_code == 400
            # control endpoints are never failed nor recorded
            reqs = (await client.get(url + "/_upstream/requests")).json()["requests"]
            assert len(reqs) == 4
            await client.post(url + "/_upstream/reset")
            assert (await client.get(url + "/_upstream/stats")).json()["recorded"] == 0
        nursery.cancel_scope.cancel()


def test_process_mode_flags(tmp_path):
    address = next_address()
    port = free_port(address)
    proc = subprocess.Popen([sys.executable, "-m", "trimesh.testing.upstream", "--address", address,
                             "--port", str(port), "--name", "ratings-v1", "--fail-first", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        assert line.strip() == f"fake upstream ratings-v1 listening on http://{address}:{port}"
        wait_until(lambda: socket.create_connection((address, port), 1).close() or True, 10,
                   "fake upstream port")
        with httpx.Client(base_url=f"http://{address}:{port}") as client:
            assert [client.get("/").status_code for _ in range(2)] == [503, 200]
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    bad = subprocess.run([sys.executable, "-m", "trimesh.testing.upstream", "--port", "0",
                          "--fail-with", "sometimes"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "fail-with" in bad.stderr
