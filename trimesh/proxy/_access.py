"""Access log: one JSON line per request, written through stdlib logging in batches.

Fields (docs/sidecar.md): ``time`` (Unix seconds), ``direction`` (outbound/inbound), ``method``,
``authority``, ``path``, ``status``, ``flags`` (Envoy's response flags, ``-`` when none: NR, UH, UF,
UT, DI, FI, ...), ``upstream`` (``address:port`` or ``-``), ``cluster``, ``rule``, ``duration_ms``,
``attempts``, ``request_id``.

Formatting one line is the only per-request work (msgspec's JSON encoder, ~1 µs). Lines are buffered
and handed to the ``trimesh.access`` logger :data:`FLUSH_LINES` at a time, or by
:meth:`AccessLog.serve_flusher` every :data:`FLUSH_INTERVAL` seconds, so the per-request cost does not
include a logging record, a lock and a ``write`` syscall. The logger's handler decides where lines go
(stderr by default; ``--access-log FILE``).
"""

from __future__ import annotations

import logging
import time

import msgspec
import trio

FLUSH_LINES = 64  # lines buffered before a write
FLUSH_INTERVAL = 0.5  # seconds between background flushes

_encode = msgspec.json.Encoder().encode


class AccessLog:
    """Collects access-log lines. ``sink`` (for tests) receives each record dict instead of the
    logger; ``enabled=False`` turns the log off (counts stay)."""

    def __init__(self, logger: logging.Logger | None = None, *, enabled: bool = True,
                 sink=None) -> None:
        self.logger = logger or logging.getLogger("trimesh.access")
        # A disabled logger (``--access-log off``) costs nothing per request.
        self.enabled = enabled and not self.logger.disabled
        self.sink = sink
        self._lines: list[str] = []
        self.records = 0

    def log(self, direction: str, method: str, authority: str, path: str, status: int,
            flags: str, upstream: str, cluster: str, rule: str | None, duration: float,
            attempts: int, request_id: str | None) -> None:
        self.records += 1
        if not self.enabled:
            return
        rec = {"time": int(time.time() * 1000) / 1000, "direction": direction, "method": method,
               "authority": authority, "path": path, "status": status, "flags": flags or "-",
               "upstream": upstream or "-", "cluster": cluster or "-", "rule": rule or "-",
               "duration_ms": int(duration * 1e6) / 1000, "attempts": attempts,
               "request_id": request_id or "-"}
        if self.sink is not None:
            self.sink(rec)
            return
        self._lines.append(_encode(rec).decode())
        if len(self._lines) >= FLUSH_LINES:
            self.flush()

    def flush(self) -> None:
        if self._lines:
            lines, self._lines = self._lines, []
            self.logger.info("\n".join(lines))

    async def serve_flusher(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            while True:
                await trio.sleep(FLUSH_INTERVAL)
                self.flush()
        finally:
            self.flush()

    def statistics(self) -> dict[str, object]:
        return {"records": self.records, "buffered": len(self._lines), "enabled": self.enabled}

    def __repr__(self) -> str:
        return f"<AccessLog records={self.records} buffered={len(self._lines)}>"
