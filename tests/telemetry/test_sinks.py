"""RecordSinks: one append per record, batches to every sink, bounded and counted, the identity
stamped once per batch; the flusher in virtual time."""

from __future__ import annotations

import trio
import trio.testing

from trimesh.config import make_instance
from trimesh.telemetry import LocalIdentity, RecordSinks

from .records import record


class Collect:
    def __init__(self):
        self.batches = []

    def log_batch(self, records):
        self.batches.append(list(records))


class Snap:
    def __init__(self, instances):
        self.instances = instances


def test_fan_out_in_batches_and_drops_counted():
    a, b = Collect(), Collect()
    sinks = RecordSinks([a, b], capacity=3)
    for i in range(5):
        sinks.log(record(status=200 + i))
    assert a.batches == [] and sinks.statistics()["buffered"] == 3
    sinks.flush()
    assert [r.status for r in a.batches[0]] == [200, 201, 202] and b.batches == a.batches
    st = sinks.statistics()
    assert (st["records"], st["dropped"], st["batches"], st["buffered"]) == (3, 2, 1, 0)
    sinks.flush()  # nothing buffered: no empty batch
    assert len(a.batches) == 1


def test_identity_fills_what_the_request_path_left_empty():
    inst = make_instance("reviews", "127.0.0.9", 9080, labels={"version": "v3"})
    snap = Snap([inst])
    identity = LocalIdentity("productpage.default.svc.cluster.local", "v1", lambda: snap)
    out, inb = record(), record("inbound", destination_service="", upstream="127.0.0.1:9080")
    identity.stamp([out, inb])
    assert (out.source_service, out.source_version, out.destination_version) == (
        "productpage.default.svc.cluster.local", "v1", "v3")
    assert (inb.source_service, inb.destination_service, inb.destination_version) == (
        "", "productpage.default.svc.cluster.local", "v1")
    snap2 = Snap([make_instance("reviews", "127.0.0.9", 9080, labels={"version": "v2"})])
    snap = snap2  # a new snapshot rebuilds the index
    identity._snapshot = lambda: snap
    again = record()
    identity.stamp([again])
    assert again.destination_version == "v2"


async def test_flusher_interval_batch_wake_and_last_flush(autojump_clock):
    sink = Collect()
    sinks = RecordSinks([sink], batch=4)
    async with trio.open_nursery() as nursery:
        await nursery.start(sinks.serve_flusher)
        sinks.log(record())
        t0 = trio.current_time()
        while not sink.batches:
            await trio.sleep(0.01)
        assert 0.49 <= trio.current_time() - t0 <= 0.52  # FLUSH_INTERVAL
        for _ in range(4):
            sinks.log(record())
        await trio.testing.wait_all_tasks_blocked()
        assert len(sink.batches) == 2 and len(sink.batches[1]) == 4  # woken by a full batch
        sinks.log(record(status=503))
        nursery.cancel_scope.cancel()
    assert sink.batches[-1][0].status == 503  # flushed on the way out
