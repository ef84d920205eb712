"""Access log: one JSON line per request record, written through stdlib logging in batches.

Fields (docs/sidecar.md): ``time`` (Unix seconds), ``direction`` (outbound/inbound), ``method``,
``authority``, ``path``, ``status``, ``flags`` (Envoy's response flags, ``-`` when none: NR, UH, UF,
UT, DI, FI, ...), ``upstream`` (``address:port`` or ``-``), ``cluster``, ``rule``, ``duration_ms``,
``attempts``, ``request_id``.

Per request the log keeps the pipeline's :class:`~trimesh.telemetry.RequestRecord` (the one record
every telemetry consumer reads); lines are formatted (msgspec's JSON encoder) when a batch is
written, not on the request's path. Batches go to the ``trimesh.access`` logger
:data:`FLUSH_LINES` at a time, or every :data:`FLUSH_INTERVAL` seconds from
:meth:`AccessLog.serve_flusher`, so a request costs no logging record, lock or ``write`` syscall. The logger's handler decides where lines go
(stderr by default; ``--access-log FILE``).
"""

from __future__ import annotations

import logging

import msgspec
import trio

from ._record import RequestRecord

FLUSH_LINES = 64  # lines buffered before a write
FLUSH_INTERVAL = 0.5  # seconds between background flushes

_encode = msgspec.json.Encoder().encode


def line(r: RequestRecord) -> dict:
    """The access-log line of a record (docs/sidecar.md lists the fields)."""
    out = {"time": int(r.time * 1000) / 1000, "direction": r.direction, "method": r.method,
            "authority": r.authority, "path": r.path, "status": r.status,
            "flags": r.flags or "-", "upstream": r.upstream or "-", "cluster": r.cluster or "-",
            "rule": r.rule or "-", "duration_ms": int(r.duration * 1e6) / 1000,
            "attempts": r.attempts, "request_id": r.request_id or "-"}
    if r.source_user:  # mutual TLS: the caller's verified identity (source.user)
        out["source_user"] = r.source_user
    if r.sent_bytes >= 0:  # a relayed TCP connection: its byte counts (connection.*)
        out["protocol"] = r.protocol
        out["received_bytes"] = r.received_bytes
        out["sent_bytes"] = r.sent_bytes
    return out


class AccessLog:
    """Collects access-log lines. ``sink`` (for tests) receives each record dict instead of the
    logger; ``enabled=False`` turns the log off (counts stay)."""

    def __init__(self, logger: logging.Logger | None = None, *, enabled: bool = True,
                 sink=None) -> None:
        self.logger = logger or logging.getLogger("trimesh.access")
        # A disabled logger (``--access-log off``) costs nothing per request.
        self.enabled = enabled and not self.logger.disabled
        self.sink = sink
        self._pending: list[RequestRecord] = []
        self.records = 0

    def log(self, record: RequestRecord) -> None:
        self.records += 1
        if not self.enabled:
            return
        if self.sink is not None:
            self.sink(line(record))
            return
        # Per request only the record is kept; lines are formatted in batches by flush().
        pending = self._pending
        pending.append(record)
        if len(pending) >= FLUSH_LINES:
            self.flush()

    def log_batch(self, records: list[RequestRecord]) -> None:
        """A batch from :class:`~trimesh.telemetry.RecordSinks`: written at once."""
        self.records += len(records)
        if not self.enabled:
            return
        if self.sink is not None:
            for r in records:
                self.sink(line(r))
            return
        self._pending.extend(records)
        self.flush()

    def flush(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, []
            self.logger.info("\n".join([_encode(line(r)).decode() for r in pending]))

    async def serve_flusher(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            while True:
                await trio.sleep(FLUSH_INTERVAL)
                self.flush()
        finally:
            self.flush()

    def statistics(self) -> dict[str, object]:
        return {"records": self.records, "buffered": len(self._pending), "enabled": self.enabled}

    def __repr__(self) -> str:
        return f"<AccessLog records={self.records} buffered={len(self._pending)}>"
