"""The fortio-like load client: call split, keep-alive, code histogram and report format."""

from __future__ import annotations

import re

import pytest
import trio

from trimesh.samples._server import Request, Response, json_response
from trimesh.samples.loadgen import ERROR_CODE, format_report, run_load, split_calls


class CountingServer:
    """200 for the first ``ok`` requests, then 503; records the client port of each request."""

    def __init__(self, ok: int) -> None:
        self.ok = ok
        self.seen = 0
        self.client_ports: list[int] = []

    async def __call__(self, request: Request) -> Response:
        self.seen += 1
        self.client_ports.append(request.client[1])
        return json_response({}, 200 if self.seen <= self.ok else 503)


@pytest.mark.parametrize(("calls", "conns", "split"), [(30, 3, [10, 10, 10]), (20, 3, [7, 7, 6]),
                                                       (2, 4, [1, 1, 0, 0]), (0, 1, [0])])
def test_split_calls_like_fortio(calls, conns, split):
    assert split_calls(calls, conns) == split
    assert sum(split) == calls


async def test_histogram_and_report(serve):
    server = CountingServer(ok=19)
    base = await serve(server)
    non_ok: list[int] = []
    result = await run_load(f"{base}/get", connections=3, calls=30, qps=0, on_non_ok=non_ok.append)
    assert dict(result.codes) == {200: 19, 503: 11}
    assert non_ok == [503] * 11
    report = format_report(result)
    assert "Code 200 : 19 (63.3 %)" in report.splitlines()
    assert "Code 503 : 11 (36.7 %)" in report.splitlines()
    assert re.search(r"^Ended after [0-9.e+-]+ms : 30 calls\. qps=[0-9.e+]+$", report, re.M)
    assert re.search(r"^# target 99% [0-9.e-]+$", report, re.M)
    assert re.search(r"^All done 30 calls \(plus 0 warmup\) [0-9.]+ ms avg, [0-9.]+ qps$", report, re.M)
    # each of the 3 connections was kept alive for all its calls
    assert len(set(server.client_ports)) == 3
    assert result.reconnects == 0


async def test_reconnects_when_the_server_closes(serve):
    class Closing:
        def __init__(self) -> None:
            self.ports: list[int] = []

        async def __call__(self, request: Request) -> Response:
            self.ports.append(request.client[1])
            return Response(200, [("connection", "close")], b"bye")

    server = Closing()
    result = await run_load(f"{await serve(server)}/x", connections=1, calls=4, qps=0)
    assert dict(result.codes) == {200: 4}
    assert len(set(server.ports)) == 4  # a fresh connection for every call


async def test_refused_calls_count_as_minus_one(closed_port_url):
    result = await run_load(f"{closed_port_url}/get", connections=2, calls=6, qps=0)
    assert dict(result.codes) == {ERROR_CODE: 6}
    assert "Code -1 : 6 (100.0 %)" in format_report(result)


async def test_qps_pacing_and_duration_in_virtual_time(serve, autojump_clock):
    base = await serve(CountingServer(ok=1000))
    start = trio.current_time()
    result = await run_load(f"{base}/get", connections=2, calls=10, qps=4)
    # 2 connections × 5 calls each at 2 qps each: the last call starts at 4 × 0.5 s = 2 s
    assert 2.0 <= trio.current_time() - start < 2.05
    assert result.calls == 10
    timed = await run_load(f"{base}/get", connections=1, duration=3.0, qps=2)
    assert timed.calls == 6  # calls start at 0, 0.5, ... 2.5 s, then 3 s is up


async def test_timeouts_count_as_minus_one(serve, autojump_clock):
    async def hang(request: Request) -> Response:
        await trio.sleep_forever()
        raise AssertionError

    start = trio.current_time()
    result = await run_load(f"{await serve(hang)}/", connections=1, calls=2, qps=0, timeout=1.5)
    assert dict(result.codes) == {ERROR_CODE: 2}
    assert 3.0 <= trio.current_time() - start < 3.05
