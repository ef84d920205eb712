"""Response parsing (HEAD, 1xx, 204/304, close-delimited), hop-by-hop filtering, serialisers."""

from __future__ import annotations

import pytest

from trimesh.proxy import HTTPError, RequestParser, ResponseParser, forwardable_headers
from trimesh.proxy._http1 import (DATA, END, HEAD, INFO, encode_chunk, render_request_head,
                                  render_response_head)


def parse_response(data: bytes, *, head_request=False, bytewise=False, eof=False):
    p = ResponseParser()
    p.expect(head_request=head_request)
    chunks = [data[i:i + 1] for i in range(len(data))] if bytewise else [data]
    for c in chunks:
        p.feed(c)
    if eof:
        p.feed_eof()
    out = []
    for kind, ev in p.events:
        if kind in (HEAD, INFO):
            out.append(("info" if kind == INFO else "head", ev.status))
        elif kind == DATA:
            if out and out[-1][0] == "data":
                out[-1] = ("data", out[-1][1] + ev)
            else:
                out.append(("data", ev))
        else:
            out.append(("end",))
    return out


@pytest.mark.parametrize("bytewise", [False, True])
def test_head_response_ends_after_the_head(bytewise):
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
    assert parse_response(data, head_request=True, bytewise=bytewise) == [("head", 200), ("end",)]


@pytest.mark.parametrize("bytewise", [False, True])
def test_interim_then_final(bytewise):
    data = (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
            b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")
    assert parse_response(data, bytewise=bytewise) == [
        ("info", 100), ("info", 103), ("head", 201), ("data", b"ok"), ("end",)]


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses(status):
    data = b"HTTP/1.1 %d X\r\nContent-Length: 5\r\n\r\n" % status
    assert parse_response(data) == [("head", status), ("end",)]


def test_close_delimited_body_ends_at_eof():
    data = b"HTTP/1.0 200 OK\r\n\r\nsome body"
    assert parse_response(data, eof=True) == [("head", 200), ("data", b"some body"), ("end",)]


def test_eof_mid_message_is_an_error():
    p = ResponseParser()
    p.expect()
    p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    with pytest.raises(HTTPError) as info:
        p.feed_eof()
    assert info.value.status == 502


def test_bad_upstream_framing_is_502():
    p = ResponseParser()
    p.expect()
    with pytest.raises(HTTPError) as info:
        p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert info.value.status == 502


def test_forwardable_headers_drop_hop_by_hop():
    headers = [("connection", "close, x-secret"), ("x-secret", "1"), ("keep-alive", "5"),
               ("proxy-connection", "keep-alive"), ("te", "trailers"), ("trailer", "x"),
               ("transfer-encoding", "chunked"), ("upgrade", "websocket"),
               ("content-length", "3"), ("x-kept", "yes")]
    assert forwardable_headers(headers) == [("x-kept", "yes")]
    assert forwardable_headers(headers, keep_upgrade=True) == [("upgrade", "websocket"),
                                                              ("x-kept", "yes")]


def test_serialisers_round_trip_through_the_parsers():
    head = render_request_head("POST", "/a?b", [("host", "h"), ("transfer-encoding", "chunked")])
    p = RequestParser()
    p.feed(head + encode_chunk(b"hello") + encode_chunk(b" world") + b"0\r\n\r\n")
    events = list(p.events)
    assert events[0][1].target == "/a?b" and events[0][1].chunked
    assert b"".join(ev for kind, ev in events if kind == DATA) == b"hello world"
    assert events[-1] == (END, None)
    resp = render_response_head(404, [("content-length", "0")])
    assert resp == b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"


def test_websocket_upgrade_stops_parsing_and_keeps_the_tunnel_bytes():
    p = RequestParser()
    p.feed(b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
           b"\x81\x05hello")
    assert p.upgraded and p.leftover == b"\x81\x05hello"
    p = RequestParser()  # any other upgrade is ignored and HTTP/1.1 continues
    p.feed(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
           b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n")
    heads = [ev for kind, ev in p.events if kind == HEAD]
    assert not p.upgraded and [h.target for h in heads] == ["/", "/next"]
    assert heads[0].upgrade is None
