"""B3 span contexts (pure): new traces, joined traces, sampling and debug, the headers sent on."""

from __future__ import annotations

import random

import pytest

from trimesh.telemetry import B3_HEADERS, Tracer

T16 = "463ac35c9f6413ad"
T32 = "463ac35c9f6413ad48485a3953bb6124"
S16 = "a2fb4a1d1a96d312"


@pytest.mark.parametrize("headers, joined, parent, sampled, debug", [
    ({}, False, "", True, False),
    ({"x-b3-traceid": T16, "x-b3-spanid": S16}, True, S16, True, False),
    ({"x-b3-traceid": T32, "x-b3-spanid": S16, "x-b3-sampled": "1"}, True, S16, True, False),
    ({"x-b3-traceid": T16, "x-b3-spanid": S16, "x-b3-sampled": "0"}, True, S16, False, False),
    ({"x-b3-traceid": T16, "x-b3-spanid": S16, "x-b3-sampled": "false"}, True, S16, False,
     False),
    ({"x-b3-traceid": T16, "x-b3-spanid": S16, "x-b3-sampled": "0", "x-b3-flags": "1"}, True,
     S16, True, True),
    ({"x-b3-traceid": "not-hex-at-all!!"}, False, "", True, False),  # invalid: a new trace
    ({"x-b3-traceid": T16, "x-b3-spanid": "xyz"}, True, "", True, False),  # bad parent dropped
])
def test_span_context(headers, joined, parent, sampled, debug):
    tracer = Tracer(random.Random(7))
    ctx = tracer.span(headers)
    assert len(ctx.span_id) == 16 and ctx.span_id != parent
    if joined:
        assert ctx.trace_id == headers["x-b3-traceid"]
    else:
        assert ctx.trace_id == ctx.span_id  # a root's span id is its trace id (Envoy's)
    assert (ctx.parent_id, ctx.sampled, ctx[4]) == (parent, sampled, debug)
    assert tracer.statistics()["joined" if joined else "started"] == 1


def test_headers_carry_the_new_span():
    ctx = Tracer(random.Random(1)).span({"x-b3-traceid": T16, "x-b3-spanid": S16})
    h = dict(ctx.headers())
    assert set(h) <= B3_HEADERS
    assert h == {"x-b3-traceid": T16, "x-b3-spanid": ctx.span_id, "x-b3-parentspanid": S16,
                 "x-b3-sampled": "1", "x-ot-span-context": f"{T16};{ctx.span_id};{S16}"}
    root = dict(Tracer(random.Random(1)).span({}).headers())
    assert "x-b3-parentspanid" not in root
    assert root["x-ot-span-context"].endswith(";0000000000000000")
    forced = dict(Tracer(random.Random(1), sampling=0.0).span({"x-b3-flags": "1"}).headers())
    assert forced["x-b3-flags"] == "1" and forced["x-b3-sampled"] == "1"


@pytest.mark.parametrize("sampling, expected", [(0.0, 0), (1.0, 200)])
def test_sampling_of_new_traces(sampling, expected):
    tracer = Tracer(random.Random(3), sampling=sampling)
    assert sum(tracer.span({}).sampled for _ in range(200)) == expected


def test_half_sampling_is_roughly_half():
    tracer = Tracer(random.Random(3), sampling=0.5)
    assert 60 < sum(tracer.span({}).sampled for _ in range(200)) < 140


def test_sampling_out_of_range():
    with pytest.raises(ValueError, match="sampling"):
        Tracer(random.Random(), sampling=1.5)


def test_span_ids_stay_unique_across_id_batches():
    from trimesh.telemetry._b3 import ID_BATCH, ZERO_SPAN

    tracer = Tracer(random.Random(5))
    ids = [tracer.span({}).span_id for _ in range(3 * ID_BATCH + 5)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 16 and set(i) <= set("0123456789abcdef") and i != ZERO_SPAN
               for i in ids)
