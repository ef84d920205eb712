"""Record sinks: one cheap hand-over per request, the work done in batches off the request path.

The pipeline hands each finished request's :class:`~trimesh.telemetry.RequestRecord` to its
``access_log`` argument's ``log(record)``. :class:`RecordSinks` is that argument in a sidecar: a
fan-out whose ``log`` appends the record to one bounded buffer and returns — no formatting, no
label lookup, no lock, no syscall per request. The telemetry child of the sidecar's tree runs
:meth:`RecordSinks.serve_flusher`, which every :data:`FLUSH_INTERVAL` seconds (sooner when
:data:`BATCH_RECORDS` are waiting) takes the buffer, completes the records with what the sidecar
knows about itself (:class:`LocalIdentity`: computed once per snapshot), and hands the batch to
each sink's ``log_batch(records)`` — the access log, the metrics registry, the span exporter.

The buffer is bounded (:data:`BUFFER_RECORDS`): when the flusher falls behind, records beyond the
bound are dropped and counted (``dropped`` in :meth:`~RecordSinks.statistics`), so telemetry never
holds memory or time the data path needs.

What the identity fills in (Istio's attribute producers, ``../shared/spec/concepts.md`` §11.4):

- outbound records: ``source_service`` / ``source_version`` are the sidecar's own (its
  ``SourceIdentity``); ``destination_version`` is the answering instance's ``version`` label,
  looked up by its ``address:port`` in the current snapshot's instances (an index built once per
  snapshot); ``destination_service`` is the route's FQDN (set on the request path already);
- inbound records: ``destination_service`` / ``destination_version`` are the sidecar's own. The
  caller is known only by its address: ``source_service`` / ``source_version`` stay empty (the
  metrics say ``unknown``) until the caller's sidecar forwards its source attributes in a header
  (Istio's ``x-istio-attributes``), which the inbound would then copy.
"""

from __future__ import annotations

from typing import Callable, Iterable

import trio

from ._record import RequestRecord

BUFFER_RECORDS = 16384  # records held between flushes; more are dropped (counted)
BATCH_RECORDS = 512  # a buffer this full wakes the flusher before its interval
FLUSH_INTERVAL = 0.5  # seconds between flushes (the access log's interval)


class LocalIdentity:
    """What a sidecar knows about itself for its records: its service FQDN and version, and
    (``snapshot()`` → the current Snapshot or None) the version label of every instance."""

    def __init__(self, service_fqdn: str, version: str,
                 snapshot: Callable[[], object] | None = None) -> None:
        self.service_fqdn = service_fqdn
        self.version = version
        self._snapshot = snapshot
        self._seen: object = None
        self._versions: dict[str, str] = {}

    def versions(self) -> dict[str, str]:
        """``address:port`` → ``version`` label of the current snapshot's instances."""
        snap = self._snapshot() if self._snapshot is not None else None
        if snap is not self._seen:
            self._seen = snap
            self._versions = {f"{i.address}:{i.port}": i.labels.get("version", "")
                              for i in getattr(snap, "instances", ())}
        return self._versions

    def stamp(self, records: list[RequestRecord]) -> None:
        """Fill in the identity fields the request path left empty (module docstring)."""
        versions = self.versions()
        fqdn, version = self.service_fqdn, self.version
        for r in records:
            if r.direction == "outbound":
                r.source_service = r.source_service or fqdn
                r.source_version = r.source_version or version
                if not r.destination_version and r.upstream:
                    r.destination_version = versions.get(r.upstream, "")
            else:
                r.destination_service = r.destination_service or fqdn
                r.destination_version = r.destination_version or version

    def __repr__(self) -> str:
        return f"<LocalIdentity {self.service_fqdn} version={self.version or '-'}>"


class RecordSinks:
    """The fan-out (module docstring). ``sinks`` have ``log_batch(records)``; ``identity`` (a
    :class:`LocalIdentity`) completes each batch before the sinks see it."""

    def __init__(self, sinks: Iterable[object], *, identity: LocalIdentity | None = None,
                 capacity: int = BUFFER_RECORDS, batch: int = BATCH_RECORDS) -> None:
        self.sinks = list(sinks)
        self.identity = identity
        self.capacity = capacity
        self.batch = batch
        self._buffer: list[RequestRecord] = []
        self._wake: trio.Event | None = None
        self.flushed = 0
        self.batches = 0
        self.dropped = 0

    def log(self, record: RequestRecord) -> None:
        """The request path's one call: append, or drop and count when the buffer is full."""
        buf = self._buffer
        n = len(buf)
        if n >= self.capacity:
            self.dropped += 1
            return
        buf.append(record)
        if n + 1 == self.batch and self._wake is not None:
            self._wake.set()

    def flush(self) -> None:
        """Hand everything buffered to every sink, now."""
        batch = self._buffer
        if not batch:
            return
        self._buffer = []
        if self.identity is not None:
            self.identity.stamp(batch)
        for sink in self.sinks:
            sink.log_batch(batch)
        self.flushed += len(batch)
        self.batches += 1

    async def serve_flusher(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Flush every :data:`FLUSH_INTERVAL` (or when a batch is waiting) until cancelled; the
        last records are flushed on the way out."""
        task_status.started()
        try:
            while True:
                self._wake = trio.Event()
                with trio.move_on_after(FLUSH_INTERVAL):
                    await self._wake.wait()
                self.flush()
        finally:
            self._wake = None
            self.flush()

    def statistics(self) -> dict[str, object]:
        s: dict[str, object] = {"records": self.flushed + len(self._buffer),
                                "buffered": len(self._buffer), "dropped": self.dropped,
                                "batches": self.batches}
        for sink in self.sinks:
            stats = getattr(sink, "statistics", None)
            if stats is not None:
                s[type(sink).__name__] = stats()
        return s

    def __repr__(self) -> str:
        return (f"<RecordSinks {[type(s).__name__ for s in self.sinks]} "
                f"buffered={len(self._buffer)} dropped={self.dropped}>")
