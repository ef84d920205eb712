"""Reports: the sidecar batches its inbound requests' attribute bags to Mixer, on Trio.

Istio's server-side proxy reports every request it served; here the inbound's access log is
wrapped (:class:`ReportingLog`, installed by ``trimesh.sidecar.install_mixer``) so each
:class:`~trimesh.telemetry.RequestRecord` is also queued, and the ``mixer-reports`` child
(:meth:`Reporter.serve`) sends the queue as one ``report`` frame every :data:`REPORT_INTERVAL`
(``RequestRecord.attributes()``: the bag, built off the request path). The queue is bounded
(:data:`REPORT_QUEUE`): beyond it records are dropped and counted, and a batch Mixer did not take
(unreachable) is dropped too — reports are telemetry, never a reason to hold memory or a request.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from trimesh.errors import ProtocolError

from ._client import MixerUnavailable

__all__ = ["Reporter", "ReportingLog", "REPORT_INTERVAL", "REPORT_QUEUE"]

log = logging.getLogger("trimesh.mixer.report")

REPORT_INTERVAL = 1.0  # seconds between report batches (Istio's mixer client flushes each 1 s)
REPORT_QUEUE = 10000  # records held at most between two batches


class Reporter:
    """The queue of records to report and the flusher that sends them."""

    def __init__(self, client: Any, *, interval: float = REPORT_INTERVAL,
                 limit: int = REPORT_QUEUE) -> None:
        self.client = client  # a MixerClient, or a callable returning the current one
        self.interval = interval
        self.limit = limit
        self._queue: list[Any] = []
        self._stats = {"queued": 0, "dropped": 0, "sent": 0, "batches": 0, "failed_batches": 0}

    def add(self, record: Any) -> None:
        if len(self._queue) >= self.limit:
            self._stats["dropped"] += 1
            return
        self._queue.append(record)
        self._stats["queued"] += 1

    async def flush(self) -> int:
        if not self._queue:
            return 0
        batch, self._queue = self._queue, []
        client = self.client() if callable(self.client) else self.client
        if client is None:
            self._stats["dropped"] += len(batch)
            return 0
        try:
            sent = await client.report([r.attributes() for r in batch])
        except (MixerUnavailable, ProtocolError) as exc:
            self._stats["failed_batches"] += 1
            self._stats["dropped"] += len(batch)
            log.debug("mixer reports: dropped %d records (%s)", len(batch), exc)
            return 0
        self._stats["batches"] += 1
        self._stats["sent"] += sent
        return sent

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            while True:
                await trio.sleep(self.interval)
                await self.flush()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(1.0):
                await self.flush()

    def statistics(self) -> dict[str, Any]:
        return {**self._stats, "pending": len(self._queue)}

    def __repr__(self) -> str:
        return f"<Reporter pending={len(self._queue)} sent={self._stats['sent']}>"


class ReportingLog:
    """An access log that also queues each record for Mixer (everything else is the log's)."""

    def __init__(self, access_log: Any, reporter: Reporter) -> None:
        self._log = access_log
        self.reporter = reporter

    def log(self, record: Any) -> None:
        self._log.log(record)
        self.reporter.add(record)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)

    def __repr__(self) -> str:
        return f"<ReportingLog {self._log!r} {self.reporter!r}>"


