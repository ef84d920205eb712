"""The fast codec (httptools + trimesh's rules) against h11 as the oracle.

Both parse the same bytes, whole and one byte at a time; they must agree on accept/reject and on
framing (method, target, headers, body). Known, intentional differences (docs/http.md) are tested
separately: there the codec must be the stricter one.
"""

from __future__ import annotations

import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trimesh.proxy import HTTPError, RequestParser
from trimesh.proxy._http1 import DATA, END, HEAD

ERROR = "error"


def fast_parse(data: bytes, bytewise: bool):
    parser = RequestParser()
    msgs: list = []
    cur = None

    def drain():
        nonlocal cur
        while parser.events:
            kind, ev = parser.events.popleft()
            if kind == HEAD:
                cur = [ev.method, ev.target, list(ev.headers), b""]
            elif kind == DATA:
                cur[3] += ev
            elif kind == END:
                msgs.append(tuple(cur))
                cur = None

    try:
        if bytewise:
            for i in range(len(data)):
                parser.feed(data[i:i + 1])
                drain()
        else:
            parser.feed(data)
            drain()
    except HTTPError:
        drain()
        return msgs, ERROR
    return msgs, "ok"


def h11_parse(data: bytes, bytewise: bool):
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=1 << 20)
    msgs: list = []
    cur = None
    chunks = [data[i:i + 1] for i in range(len(data))] if bytewise else [data]
    try:
        for chunk in chunks:
            conn.receive_data(chunk)
            while True:
                if conn.their_state is h11.MUST_CLOSE or conn.their_state is h11.CLOSED:
                    return msgs, "ok"
                ev = conn.next_event()
                if ev is h11.NEED_DATA:
                    break
                if ev is h11.PAUSED:
                    conn.send(h11.Response(status_code=200, headers=[("content-length", "0")]))
                    conn.send(h11.EndOfMessage())
                    conn.start_next_cycle()
                    continue
                if isinstance(ev, h11.Request):
                    cur = [ev.method.decode(), ev.target.decode("latin-1"),
                           [(n.decode("latin-1"), v.decode("latin-1")) for n, v in ev.headers],
                           b""]
                elif isinstance(ev, h11.Data):
                    cur[3] += bytes(ev.data)
                elif isinstance(ev, h11.EndOfMessage):
                    msgs.append(tuple(cur))
                    cur = None
    except h11.RemoteProtocolError:
        return msgs, ERROR
    return msgs, "ok"


def _norm(result):
    """Transfer-Encoding values compare case-insensitively (h11 lower-cases them)."""
    msgs, status = result
    return [(m, t, [(n, v.lower() if n == "transfer-encoding" else v) for n, v in h], b)
            for m, t, h, b in msgs], status


def assert_agree(data: bytes) -> None:
    for bytewise in (False, True):
        fast = _norm(fast_parse(data, bytewise))
        ref = _norm(h11_parse(data, bytewise))
        assert fast[1] == ref[1], (bytewise, data, fast, ref)
        assert fast[0] == ref[0], (bytewise, data, fast, ref)


VALID = [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /a/b?c=d&e HTTP/1.1\r\nHost: reviews:9080\r\nUser-Agent: x\r\nAccept: */*\r\n\r\n",
    b"GET / HTTP/1.0\r\n\r\n",
    b"GET http://reviews:9080/x?y HTTP/1.1\r\nHost: reviews:9080\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"a;ext=1\r\n0123456789\r\nA\r\nabcdefghij\r\n0\r\nTrailer-X: 1\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nX-Spaces:   v  v  \r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: b\r\n\r\n"
    b"POST /3 HTTP/1.1\r\nHost: c\r\nContent-Length: 3\r\n\r\nabc",
    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /ignored HTTP/1.1\r\nHost: b\r\n\r\n",
    b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
    b"DELETE /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
    b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3 \r\n\r\nabc",
    b"GET / HTTP/1.1\r\nHost: a\r\nCookie: user=jason\r\nx-envoy-max-retries: 2\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc",  # incomplete body
    b"GET / HTTP/1.1\r\nHost: a\r\nX: y",  # incomplete head
]

INVALID = [
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\nabcd",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -3\r\n\r\nabc",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\nabc\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n",  # no Host
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\n: empty\r\n\r\n",
    b"GET / HTTP/1.1\r\n Host: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
    b"GET / HTTX/1.1\r\nHost: a\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello
]

# Where the codec is deliberately stricter than h11 (docs/http.md): h11 accepts, we answer 4xx/5xx.
STRICTER = [
    # Content-Length with Transfer-Encoding: RFC 9112 §6.3 lets a server reject it; a proxy that
    # forwards it is the classic request-smuggling gap, so we do (h11 lets TE win).
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"0\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
     b"0\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400),  # obs-fold
    (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    (b"BREW /pot HTTP/1.1\r\nHost: a\r\n\r\n", 400),  # llhttp knows methods; h11 takes any token
]


@pytest.mark.parametrize("data", VALID, ids=range(len(VALID)))
def test_valid_corpus_agrees(data):
    assert_agree(data)
    assert fast_parse(data, False)[1] == "ok"


@pytest.mark.parametrize("data", INVALID, ids=range(len(INVALID)))
def test_invalid_corpus_agrees(data):
    assert_agree(data)
    assert fast_parse(data, False)[1] == ERROR


@pytest.mark.parametrize("data,status", STRICTER, ids=range(len(STRICTER)))
def test_stricter_than_h11(data, status):
    assert h11_parse(data, False)[1] == "ok"
    for bytewise in (False, True):
        parser = RequestParser()
        with pytest.raises(HTTPError) as info:
            if bytewise:
                for i in range(len(data)):
                    parser.feed(data[i:i + 1])
            else:
                parser.feed(data)
        assert info.value.status == status


# -- hypothesis: generated requests ----------------------------------------------------------

TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=12)
VALUE = st.text(alphabet="".join(chr(c) for c in range(0x21, 0x7f)) + " \t", max_size=40)
PATH = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789-._~/?=&%", max_size=40)
METHODS = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"]


@st.composite
def requests_(draw, last: bool):
    method = draw(st.sampled_from(METHODS))
    version = draw(st.sampled_from(["1.1", "1.0"])) if last else "1.1"
    absolute = draw(st.booleans())
    target = "/" + draw(PATH)
    if absolute:
        target = "http://reviews:9080" + target
    headers = []
    if version == "1.1" or draw(st.booleans()):
        headers.append(("Host", draw(st.sampled_from(["reviews", "reviews:9080", "a.b.c"]))))
    for _ in range(draw(st.integers(0, 6))):
        headers.append(("x-" + draw(TOKEN), draw(VALUE).strip(" \t") if draw(st.booleans())
                        else " " + draw(VALUE)))
    framing = draw(st.sampled_from(["none", "cl", "chunked"] if version == "1.1"
                                   else ["none", "cl"]))
    body = b""
    body_bytes = b""
    if framing == "cl":
        body = draw(st.binary(max_size=64))
        headers.append(("Content-Length", str(len(body))))
        body_bytes = body
    elif framing == "chunked":
        headers.append(("Transfer-Encoding", "chunked"))
        parts = draw(st.lists(st.binary(min_size=1, max_size=20), max_size=4))
        for part in parts:
            size = "%x" % len(part)
            if draw(st.booleans()):
                size = size.upper()
            body_bytes += size.encode() + b"\r\n" + part + b"\r\n"
            body += part
        body_bytes += b"0\r\n\r\n"
    head = f"{method} {target} HTTP/{version}\r\n" + "".join(f"{n}:{v}\r\n" for n, v in headers)
    return head.encode("latin-1") + b"\r\n" + body_bytes


@st.composite
def pipelines(draw):
    n = draw(st.integers(1, 3))
    reqs = [draw(requests_(last=i == n - 1)) for i in range(n)]
    data = b"".join(reqs)
    cut = draw(st.integers(0, len(data)))
    return data[:cut] if draw(st.booleans()) else data


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pipelines())
def test_generated_requests_agree(data):
    assert_agree(data)


@settings(max_examples=200, deadline=None)
@given(pipelines(), st.integers(0, 10_000), st.binary(min_size=1, max_size=3))
def test_fuzz_never_crashes(data, pos, junk):
    """Corrupted input: the codec either parses or raises HTTPError with a 4xx/5xx status."""
    pos = pos % (len(data) + 1)
    mutated = data[:pos] + junk + data[pos + 1:]
    for bytewise in (False, True):
        parser = RequestParser()
        try:
            if bytewise:
                for i in range(len(mutated)):
                    parser.feed(mutated[i:i + 1])
            else:
                parser.feed(mutated)
        except HTTPError as exc:
            assert 400 <= exc.status < 600
