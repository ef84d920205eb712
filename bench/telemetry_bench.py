#!/usr/bin/env python3
"""What telemetry costs per request: the same run of bench/proxy_micro.py's in-memory harness
(the real HttpServer + OutboundProxy + pool, no sockets) with telemetry off and on, alternating.

- ``off``: the access log alone (to /dev/null), no tracer — the proxy before issue 14;
- ``on``: what a sidecar runs — the record fan-out (``RecordSinks``) to the access log, Istio's
  request metrics (``MeshMetrics``) and the Zipkin exporter's span queue, the identity stamped per
  batch, and a ``Tracer`` (B3 ids made and sent upstream, a span per request). The batch work
  (stamping, metrics, spans and their JSON) is done inside the timed region, a batch each
  ``BATCH_RECORDS`` requests as the flusher would; only the POST to a collector is left out (it
  is I/O in the flusher task).

    python bench/telemetry_bench.py --requests 20000 --rounds 5

Prints the median and min–max of CPU µs per request (``time.process_time``) for each variant and
the difference of the medians (the budget: ≤ 8 µs, issue 14).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proxy_micro import alternate, child, report  # noqa: E402

ON = r'''
import msgspec
from trimesh.telemetry import LocalIdentity, MeshMetrics, RecordSinks, Tracer, ZipkinExporter

_encode = msgspec.json.Encoder().encode

class BenchSinks(RecordSinks):
    # No flusher task runs in the harness: flush when a batch is full, as its wake-up would,
    # and encode the spans a POST would carry (the POST itself is I/O, left out).
    def log(self, record):
        RecordSinks.log(self, record)
        if len(self._buffer) >= self.batch:
            self.flush()

    def flush(self):
        RecordSinks.flush(self)
        zipkin = self.sinks[2]
        if zipkin._queue:
            _encode(zipkin._queue)
            zipkin._queue.clear()

def make_access_log(access_log):
    return BenchSinks([access_log, MeshMetrics(), ZipkinExporter("127.0.0.1:9411")],
                      identity=LocalIdentity("bench.default.svc.cluster.local", "v1"))

def configure(proxy):
    proxy.tracer = Tracer(random.Random(2))

def finish(proxy):
    proxy.access_log.flush()
'''


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=20000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--core", type=int, default=None, help="pin to this core (taskset)")
    args = p.parse_args()
    env = dict(os.environ)
    n = str(args.requests)
    results = alternate([("off", [sys.executable, "-c", child(), n], env),
                         ("on", [sys.executable, "-c", child(ON), n], env)],
                        args.rounds, args.core)
    print(f"{args.requests} requests per run, {args.rounds} rounds alternating; "
          "Python CPU µs per request (no sockets)")
    report(results)
    diff = statistics.median(results["on"]) - statistics.median(results["off"])
    print(f"telemetry on - off: {diff:+.2f} µs per request")


if __name__ == "__main__":
    main()
