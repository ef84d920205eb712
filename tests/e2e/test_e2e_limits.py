"""Issue 3 acceptance, real processes: request smuggling and size limits through a real sidecar,
with raw bytes on a socket (no client library would send these)."""

from __future__ import annotations

import socket
import uuid

import pytest
from e2e_harness import dump_rules, rule

HEADER_BLOCK = 70 * 1024  # above the 60 KiB default of Envoy's max_request_headers_kb


def _exchange(mesh, raw: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes to the outbound listener; return what comes back until close or timeout."""
    with socket.create_connection((mesh.sidecar.address, mesh.sidecar.proxy_port), timeout) as s:
        try:
            s.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the proxy may answer and close before reading everything we send
        chunks = []
        try:
            while True:
                data = s.recv(65536)
                if not data:
                    break
                chunks.append(data)
                if b"\r\n\r\n" in b"".join(chunks):
                    break  # one response head is all these tests look at
        except (socket.timeout, ConnectionResetError):
            pass
    return b"".join(chunks)


def _status(response: bytes) -> int:
    assert response.startswith(b"HTTP/1.1 "), response[:200]
    return int(response.split(b" ", 2)[1])


@pytest.fixture
def reviews_v1(mesh):
    mesh.apply(dump_rules(rule("reviews-default", "reviews", [{"labels": {"version": "v1"}}])))
    return mesh.upstreams["reviews-v1"]


def _reached(upstream, tag: str) -> int:
    return sum(1 for q in upstream.requests() if tag in q["path"])


CASES = {
    "content-length-and-transfer-encoding": (
        b"POST /{tag} HTTP/1.1\r\nHost: reviews:9080\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /{tag}/smuggled HTTP/1.1\r\n"
        b"Host: reviews:9080\r\n\r\n", 400),
    "duplicate-content-length": (
        b"POST /{tag} HTTP/1.1\r\nHost: reviews:9080\r\nContent-Length: 5\r\n"
        b"Content-Length: 6\r\n\r\nhello!", 400),
    "bad-chunk-size": (
        b"POST /{tag} HTTP/1.1\r\nHost: reviews:9080\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\nhello\r\n0\r\n\r\n", 400),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_framing_is_rejected_with_400(mesh, reviews_v1, case):
    tag = uuid.uuid4().hex
    raw, expected = CASES[case]
    response = _exchange(mesh, raw.replace(b"{tag}", tag.encode()))
    assert _status(response) == expected
    if case != "bad-chunk-size":  # the head was well-formed there and may be forwarded first
        assert _reached(reviews_v1, tag) == 0
    assert _reached(reviews_v1, f"{tag}/smuggled") == 0  # never a second request


def test_70_kib_header_block_is_431(mesh, reviews_v1):
    tag = uuid.uuid4().hex
    filler = b"".join(b"x-filler-%d: %s\r\n" % (i, b"a" * 1000)
                      for i in range(HEADER_BLOCK // 1000))
    raw = b"GET /%s HTTP/1.1\r\nHost: reviews:9080\r\n%s\r\n" % (tag.encode(), filler)
    assert len(raw) > HEADER_BLOCK
    assert _status(_exchange(mesh, raw)) == 431
    assert _reached(reviews_v1, tag) == 0
    # and a normal request on a new connection still works
    ok = _exchange(mesh, b"GET /%s/ok HTTP/1.1\r\nHost: reviews:9080\r\n\r\n" % tag.encode())
    assert _status(ok) == 200
