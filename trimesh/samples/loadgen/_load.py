"""A small fortio-like load client: N calls over C keep-alive connections, then a report.

The circuit-breaking task (traffic-tasks.md §8.4-8.5) drives httpbin with
``fortio load -c 3 -qps 0 -n 30 http://httpbin:8000/get`` and reads the status-code histogram
(``Code 200 : 19 (63.3 %)``). This client accepts the same flags (``-c``, ``-n``, ``-qps``, ``-t``,
``-curl``, ``-H``, ``-loglevel``; a leading ``load`` word is ignored) and prints a report in fortio's
format: calls are split evenly over the connections ("10 per thread + 0"), each connection is kept
alive and reopened when the server closes it, a failed call (refused, reset, timeout) counts as code
-1 as in fortio, and with ``-qps`` > 0 each connection paces itself at qps/c. Requests go through
``HTTP_PROXY`` (the sidecar) when it is set.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio

from .._client import FetchError, HttpConnection, Proxy, split_url, proxy_from_environ

ERROR_CODE = -1  # fortio's code for a call that got no HTTP response
DEFAULT_DURATION = 5.0  # fortio's -t default
DEFAULT_TIMEOUT = 15.0  # per call
PERCENTILES = (50.0, 75.0, 90.0, 99.0, 99.9)
USER_AGENT = "trimesh/loadgen-0.1"


@dataclass
class LoadResult:
    url: str
    connections: int
    qps: float
    planned_calls: int | None
    elapsed: float = 0.0
    codes: Counter[int] = field(default_factory=Counter)
    durations: list[float] = field(default_factory=list)
    reconnects: int = 0

    @property
    def calls(self) -> int:
        return sum(self.codes.values())

    def percentile(self, p: float) -> float:
        """Nearest-rank percentile of the call durations, in seconds."""
        if not self.durations:
            return 0.0
        ordered = sorted(self.durations)
        rank = max(1, math.ceil(p / 100.0 * len(ordered)))
        return ordered[min(rank, len(ordered)) - 1]

    def statistics(self) -> dict[str, Any]:
        return {"calls": self.calls, "codes": dict(self.codes), "elapsed": self.elapsed,
                "reconnects": self.reconnects}

    def __repr__(self) -> str:
        return f"<LoadResult {self.url} calls={self.calls} codes={dict(sorted(self.codes.items()))}>"


def split_calls(calls: int, connections: int) -> list[int]:
    """fortio's split: ``calls // connections`` each, the remainder to the first ones."""
    base, extra = divmod(calls, connections)
    return [base + (1 if i < extra else 0) for i in range(connections)]


async def run_load(url: str, *, connections: int = 1, calls: int | None = None,
                   duration: float = DEFAULT_DURATION, qps: float = 0.0,
                   headers: Iterable[tuple[str, str]] = (), proxy: Proxy | None = None,
                   timeout: float = DEFAULT_TIMEOUT,
                   on_non_ok: Callable[[int], None] | None = None) -> LoadResult:
    """Make ``calls`` requests (or run for ``duration`` seconds) over ``connections`` connections."""
    if connections < 1:
        raise ValueError("connections must be at least 1")
    host, port, authority, target = split_url(url)
    if proxy is not None:
        host, port, target = proxy.host, proxy.port, url
    hdrs = [("host", authority), ("user-agent", USER_AGENT), *headers]
    result = LoadResult(url, connections, qps, calls)
    start = trio.current_time()
    stop_at = None if calls is not None else start + duration
    per_worker = split_calls(calls, connections) if calls is not None else [0] * connections
    interval = connections / qps if qps > 0 else 0.0

    async def worker(quota: int) -> None:
        conn: HttpConnection | None = None
        made = 0
        try:
            while (made < quota) if stop_at is None else (trio.current_time() < stop_at):
                if interval:
                    slot = start + made * interval
                    if stop_at is not None and slot >= stop_at:
                        break
                    await trio.sleep_until(slot)
                t0 = trio.current_time()
                code = ERROR_CODE
                with trio.move_on_after(timeout):
                    try:
                        if conn is None or not conn.reusable:
                            if conn is not None:
                                await conn.aclose()
                                result.reconnects += 1
                            conn = await HttpConnection.connect(host, port)
                        code = (await conn.request("GET", target, hdrs)).status
                    except FetchError:
                        conn = None
                if code == ERROR_CODE and conn is not None:
                    await conn.aclose()
                    conn = None
                result.durations.append(trio.current_time() - t0)
                result.codes[code] += 1
                made += 1
                if code != 200 and on_non_ok is not None:
                    on_non_ok(code)
        finally:
            if conn is not None:
                with trio.CancelScope(shield=True):
                    await conn.aclose()

    async with trio.open_nursery() as nursery:
        for quota in per_worker:
            nursery.start_soon(worker, quota)
    result.elapsed = trio.current_time() - start
    return result


def format_report(result: LoadResult) -> str:
    """The part of fortio's output people read: timing summary, percentiles, the code histogram."""
    n = result.calls
    lines = []
    elapsed = result.elapsed
    qps = n / elapsed if elapsed > 0 else 0.0
    lines.append(f"Ended after {elapsed * 1000:.6g}ms : {n} calls. qps={qps:.5g}")
    if result.durations:
        d = result.durations
        avg = sum(d) / len(d)
        std = math.sqrt(sum((x - avg) ** 2 for x in d) / len(d))
        lines.append(f"Aggregated Function Time : count {len(d)} avg {avg:.8g} +/- {std:.4g} "
                     f"min {min(d):.8g} max {max(d):.8g} sum {sum(d):.8g}")
        for p in PERCENTILES:
            lines.append(f"# target {p:g}% {result.percentile(p):.6g}")
    for code in sorted(result.codes):
        count = result.codes[code]
        lines.append(f"Code {code} : {count} ({100.0 * count / n:.1f} %)")
    avg_ms = (sum(result.durations) / len(result.durations) * 1000) if result.durations else 0.0
    lines.append(f"All done {n} calls (plus 0 warmup) {avg_ms:.3f} ms avg, {qps:.1f} qps")
    return "\n".join(lines)


def _banner(result_url: str, connections: int, calls: int | None, duration: float, qps: float) -> str:
    rate = "max qps" if qps <= 0 else f"qps={qps:g}"
    if calls is not None:
        base, extra = divmod(calls, connections)
        what = f"for exactly {calls} calls ({base} per thread + {extra})"
    else:
        what = f"for {duration:g}s"
    return (f"Loadgen running at {qps:g} queries per second, {connections} connections: {result_url}\n"
            f"Starting at {rate} with {connections} thread(s) {what}")


def _parse_duration(text: str) -> float:
    text = text.strip()
    for suffix, scale in (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * scale
    return float(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m trimesh.samples.loadgen",
                                     description="A fortio-like HTTP load client (fortio load flags)")
    parser.add_argument("-c", type=int, default=4, metavar="N", help="connections/threads (default 4)")
    parser.add_argument("-n", type=int, default=None, metavar="N", help="total calls (default: run -t)")
    parser.add_argument("-qps", type=float, default=8.0, metavar="Q",
                        help="queries per second over all connections, 0 = max (default 8)")
    parser.add_argument("-t", type=_parse_duration, default=DEFAULT_DURATION, metavar="DURATION",
                        help="how long to run when -n is not given (default 5s)")
    parser.add_argument("-curl", action="store_true", help="make one call and print the response")
    parser.add_argument("-H", action="append", default=[], metavar="'Name: value'",
                        help="an extra request header (repeatable)")
    parser.add_argument("-timeout", type=_parse_duration, default=DEFAULT_TIMEOUT, metavar="DURATION",
                        help="per-call timeout (default 15s)")
    parser.add_argument("-loglevel", default="Info", help="Warning prints one line per non-200 call")
    parser.add_argument("url")
    return parser


def _headers(raw: Sequence[str]) -> list[tuple[str, str]]:
    out = []
    for item in raw:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise SystemExit(f"-H {item!r}: expected 'Name: value'")
        out.append((name.strip(), value.strip()))
    return out


async def _curl(url: str, headers: list[tuple[str, str]], proxy: Proxy | None, timeout: float) -> int:
    from .._client import fetch

    try:
        response = await fetch(url, headers=headers, timeout=timeout, proxy=proxy)
    except FetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    out = [f"HTTP/{response.http_version} {response.status} {response.reason}".rstrip()]
    out += [f"{k}: {v}" for k, v in response.headers]
    sys.stdout.write("\n".join(out) + "\n\n")
    sys.stdout.write(response.body.decode("utf-8", "replace"))
    sys.stdout.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in[:1] == ["load"]:  # fortio's subcommand word
        args_in = args_in[1:]
    args = build_parser().parse_args(args_in)
    host = split_url(args.url)[0]
    proxy = proxy_from_environ(for_host=host)
    headers = _headers(args.H)
    if args.curl:
        return trio.run(_curl, args.url, headers, proxy, args.timeout)
    if args.c < 1:
        raise SystemExit("-c must be at least 1")

    def warn(code: int) -> None:
        if not args.loglevel.lower().startswith(("err", "crit", "fatal")):
            stamp = time.strftime("%H:%M:%S")
            print(f"{stamp} W loadgen> Parsed non ok code {code} (HTTP/1.1 {code})"
                  if code != ERROR_CODE else f"{stamp} W loadgen> call failed (no response)")

    print(_banner(args.url, args.c, args.n, args.t, args.qps), flush=True)
    result = trio.run(lambda: run_load(args.url, connections=args.c, calls=args.n, duration=args.t,
                                       qps=args.qps, headers=headers, proxy=proxy, timeout=args.timeout,
                                       on_non_ok=warn))
    print(format_report(result), flush=True)
    return 0
