"""The issued-certificates record and re-issuing one identity's certificates."""

from __future__ import annotations

import msgspec
import pytest
from ca_helpers import NOW, PRODUCTPAGE, REVIEWS, ec_key, self_signed_ca

from trimesh.ca import IssuanceLog, IssuedRecord, make_csr


def rec(serial: int, ident=PRODUCTPAGE, issued_at: float = NOW, ttl: float = 3600.0) -> IssuedRecord:
    return IssuedRecord(serial=serial, identity=ident, issued_at=issued_at, not_before=issued_at - 120,
                        not_after=issued_at + ttl)


def test_issued_certificates_are_recorded_and_listed():
    ca, log = self_signed_ca(), IssuanceLog()
    for ident, t in [(PRODUCTPAGE, NOW), (REVIEWS, NOW + 1), (PRODUCTPAGE, NOW + 2)]:
        log.add(ca.sign(make_csr(ec_key(1), ident), identity=ident, now=t).record)
    assert [r.identity for r in log.records()] == [PRODUCTPAGE, REVIEWS, PRODUCTPAGE]
    assert [r.issued_at for r in log.records(PRODUCTPAGE)] == [NOW, NOW + 2]
    assert log.latest(PRODUCTPAGE) == log.records(PRODUCTPAGE)[-1]
    assert log.identities() == [PRODUCTPAGE, REVIEWS]
    assert log.statistics() == {"certificates": 3, "identities": 2, "superseded": 0, "reissue_requests": 0}


def test_latest_is_the_newest_even_when_recorded_out_of_order():
    log = IssuanceLog([rec(2, issued_at=NOW + 10), rec(1, issued_at=NOW)])
    assert log.latest(PRODUCTPAGE).serial == 2
    assert log.latest(REVIEWS) is None


def test_a_serial_twice_is_refused():
    log = IssuanceLog([rec(1)])
    with pytest.raises(ValueError, match="already recorded"):
        log.add(rec(1, REVIEWS))


def test_reissue_supersedes_what_the_identity_holds_now():
    log = IssuanceLog([rec(1), rec(2, issued_at=NOW + 5), rec(3, REVIEWS)])
    assert log.request_reissue(PRODUCTPAGE) == [1, 2]
    assert [log.is_current(s) for s in (1, 2, 3)] == [False, False, True]
    log.add(rec(4, issued_at=NOW + 5))  # the agent's fresh certificate, even within the same second
    assert log.is_current(4) and log.latest(PRODUCTPAGE).serial == 4
    assert log.superseded() == [1, 2]
    assert log.statistics()["reissue_requests"] == 1
    assert log.request_reissue(REVIEWS) == [3] and log.request_reissue(REVIEWS) == []


@pytest.mark.parametrize("serial, now, current", [
    (1, None, True), (1, NOW + 3599, True), (1, NOW + 3600, False), (99, None, False),
])
def test_is_current(serial, now, current):
    assert IssuanceLog([rec(1)]).is_current(serial, now=now) is current


def test_prune_forgets_expired_but_keeps_the_newest_per_identity():
    log = IssuanceLog([rec(1, ttl=10), rec(2, issued_at=NOW + 5, ttl=10), rec(3, REVIEWS, ttl=10 ** 6)])
    log.request_reissue(PRODUCTPAGE)
    assert log.prune(NOW + 100) == 1
    assert [r.serial for r in log.records()] == [2, 3]
    assert log.superseded() == [2]
    assert [r.serial for r in log.records(now=NOW + 100)] == [3]


class Saved(msgspec.Struct):
    records: list[IssuedRecord]
    superseded: list[int]


def test_the_log_round_trips_through_json():
    log = IssuanceLog([rec(1), rec(2, REVIEWS)])
    log.request_reissue(REVIEWS)
    data = msgspec.json.encode(Saved(log.records(), log.superseded()))
    saved = msgspec.json.decode(data, type=Saved)
    again = IssuanceLog(saved.records, saved.superseded)
    assert again.records() == log.records() and again.superseded() == [2]
    assert repr(again) == "<IssuanceLog certificates=2 identities=2 superseded=1>"
