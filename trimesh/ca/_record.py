"""The record of issued certificates, and re-issuing one identity's certificates. PURE data.

Every certificate the CA signs is recorded (serial, identity, issue time, validity) and can be listed,
newest last, or per identity; :meth:`IssuanceLog.latest` is the newest serial of an identity — what
``/certs`` on a sidecar should show after a renewal (issue 12, acceptance "new serial").

Re-issuing (the docs' ``kubectl delete secret istio.default``, L2493–L2495, behaviour 53): the CA
cannot make a certificate on its own — the workload's key never leaves its host — so a re-issue is a
request to the identity's holders. :meth:`IssuanceLog.request_reissue` marks every certificate the
identity holds *now* as superseded; a cert agent that asks whether its serial is still current
(:meth:`IssuanceLog.is_current`) learns it is not and renews at once, and its fresh certificate
(recorded afterwards) is current. Marking by serial, not by time, means a certificate issued in the
same second as the request is not caught by it. Records of expired certificates can be dropped with
:meth:`IssuanceLog.prune`. The shell persists :meth:`records` and :meth:`superseded` (msgspec
structs encode as JSON) and rebuilds the log with ``IssuanceLog(records, superseded)``.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from ._spiffe import SpiffeId


class IssuedRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One issued certificate, as the CA remembers it (no key, no PEM)."""

    serial: int
    identity: SpiffeId
    issued_at: float
    not_before: float
    not_after: float

    def __repr__(self) -> str:
        return f"<IssuedRecord {self.serial:x} {self.identity} not_after={self.not_after:.0f}>"


class IssuanceLog:
    """Issued certificates by serial, in issue order."""

    def __init__(self, records: Iterable[IssuedRecord] = (), superseded: Iterable[int] = ()) -> None:
        self._records: dict[int, IssuedRecord] = {}
        self._latest: dict[SpiffeId, IssuedRecord] = {}
        self._superseded: set[int] = set()
        self._reissues = 0
        for record in records:
            self.add(record)
        self._superseded = {s for s in superseded if s in self._records}

    def add(self, record: IssuedRecord) -> None:
        """Record a certificate; a serial recorded twice is a bug in the serial source."""
        if record.serial in self._records:
            raise ValueError(f"serial {record.serial:x} is already recorded")
        self._records[record.serial] = record
        newest = self._latest.get(record.identity)
        if newest is None or record.issued_at >= newest.issued_at:
            self._latest[record.identity] = record

    def get(self, serial: int) -> IssuedRecord | None:
        return self._records.get(serial)

    def records(self, identity: SpiffeId | None = None, *, now: float | None = None) -> list[IssuedRecord]:
        """Recorded certificates in issue order; only ``identity``'s when given; only those still
        valid at ``now`` when given."""
        return [r for r in self._records.values()
                if (identity is None or r.identity == identity) and (now is None or now < r.not_after)]

    def identities(self) -> list[SpiffeId]:
        return sorted(self._latest)

    def latest(self, identity: SpiffeId) -> IssuedRecord | None:
        """The newest certificate issued for ``identity``."""
        return self._latest.get(identity)

    def superseded(self) -> list[int]:
        return sorted(self._superseded)

    def request_reissue(self, identity: SpiffeId) -> list[int]:
        """Supersede every certificate ``identity`` holds now; returns their serials."""
        serials = [r.serial for r in self.records(identity) if r.serial not in self._superseded]
        self._superseded.update(serials)
        self._reissues += 1
        return serials

    def is_current(self, serial: int, *, now: float | None = None) -> bool:
        """Whether the holder of ``serial`` may keep it: recorded, not superseded by a re-issue, and
        (with ``now``) not expired. An unknown serial is not current (another CA issued it)."""
        record = self._records.get(serial)
        if record is None or serial in self._superseded:
            return False
        return now is None or now < record.not_after

    def prune(self, now: float) -> int:
        """Forget certificates expired at ``now`` (the newest per identity stays listed)."""
        keep_latest = {r.serial for r in self._latest.values()}
        gone = [s for s, r in self._records.items() if now >= r.not_after and s not in keep_latest]
        for serial in gone:
            del self._records[serial]
            self._superseded.discard(serial)
        return len(gone)

    def statistics(self) -> dict[str, int]:
        return {"certificates": len(self._records), "identities": len(self._latest),
                "superseded": len(self._superseded), "reissue_requests": self._reissues}

    def __repr__(self) -> str:
        return (f"<IssuanceLog certificates={len(self._records)} identities={len(self._latest)} "
                f"superseded={len(self._superseded)}>")
