"""The shared server and client helpers, against raw sockets and an h11 peer."""

from __future__ import annotations

import functools
import logging

import h11
import pytest
import trio

from trimesh.samples._client import FetchError, HttpConnection, Proxy, fetch, proxy_from_environ
from trimesh.samples._server import (Request, Response, compile_routes, dispatch, form_fields,
                                    json_response, request_cookies)


async def raw_exchange(url: str, data: bytes) -> bytes:
    """Send raw bytes, half-close, read everything the server answers until it closes."""
    host, port = url.removeprefix("http://").split(":")
    stream = await trio.open_tcp_stream(host, int(port))
    await stream.send_all(data)
    await stream.send_eof()
    out = b""
    with trio.fail_after(10):
        while chunk := await stream.receive_some(65536):
            out += chunk
    await stream.aclose()
    return out


async def echo(request: Request) -> Response:
    return json_response({"method": request.method, "path": request.path, "query": request.query,
                          "cookies": request_cookies(request), "form": form_fields(request), "body": request.body.decode()})


async def test_request_fields(serve):
    base = await serve(echo)
    r = await fetch(f"{base}/a%20b/c?x=1&x=2&y=", method="POST", body=b"u=jason&p=1",
                    headers=[("content-type", "application/x-www-form-urlencoded"),
                             ("cookie", "user=jason; theme=dark"), ("cookie", "x=1")], timeout=10)
    assert r.json() == {"method": "POST", "path": "/a b/c", "query": {"x": ["1", "2"], "y": [""]},
                        "cookies": {"user": "jason", "theme": "dark", "x": "1"},
                        "form": {"x": "1", "y": "", "u": "jason", "p": "1"}, "body": "u=jason&p=1"}


async def test_malformed_request_gets_400_and_close(serve):
    base = await serve(echo)
    answer = await raw_exchange(base, b"GET / HTTP/1.1\r\nHost: x\r\nbad header line\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ")


async def test_too_large_body_gets_413(serve):
    base = await serve(echo)
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n"
    answer = await raw_exchange(base, head + b"a" * 1_100_000)
    assert answer.startswith(b"HTTP/1.1 413 ")


async def test_expect_100_continue(serve):
    base = await serve(echo)
    host, port = base.removeprefix("http://").split(":")
    stream = await trio.open_tcp_stream(host, int(port))
    await stream.send_all(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    with trio.fail_after(5):
        first = await stream.receive_some(1024)
    assert first.startswith(b"HTTP/1.1 100 ")
    await stream.send_all(b"hello")
    rest = b""
    with trio.fail_after(5):
        while b"}" not in rest:  # the JSON body ends the response
            rest += await stream.receive_some(65536)
    assert rest.startswith(b"HTTP/1.1 200 ") and b'"body": "hello"' in rest
    await stream.aclose()


async def test_handler_exception_is_a_500_and_the_connection_survives(serve, caplog):
    calls = []

    async def flaky(request: Request) -> Response:
        calls.append(request.path)
        if request.path == "/boom":
            raise RuntimeError("kaput")
        return json_response({"ok": True})

    base = await serve(flaky)
    host, port = base.removeprefix("http://").split(":")
    conn = await HttpConnection.connect(host, int(port))
    with caplog.at_level(logging.ERROR, logger="trimesh.samples"):
        assert (await conn.request("GET", "/boom", [("host", "x")])).status == 500
    assert (await conn.request("GET", "/fine", [("host", "x")])).status == 200
    await conn.aclose()
    assert calls == ["/boom", "/fine"]
    assert any("GET /boom failed" in m for m in caplog.messages)


async def test_pipelined_requests_with_an_h11_client(serve):
    """Two requests sent back to back on one connection get two responses in order."""
    base = await serve(echo)
    host, port = base.removeprefix("http://").split(":")
    stream = await trio.open_tcp_stream(host, int(port))
    await stream.send_all(b"GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\n")
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/one", headers=[("host", "x")]))
    client.send(h11.EndOfMessage())
    paths = []
    with trio.fail_after(5):
        while len(paths) < 2:
            event = client.next_event()
            if event is h11.NEED_DATA:
                client.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Data):
                paths.append(event.data)
            elif isinstance(event, h11.EndOfMessage) and len(paths) == 1:
                client.start_next_cycle()
                client.send(h11.Request(method="GET", target="/two", headers=[("host", "x")]))
                client.send(h11.EndOfMessage())
    await stream.aclose()
    assert [b'"path": "/one"' in paths[0], b'"path": "/two"' in paths[1]] == [True, True]


async def test_dispatch_table():
    async def item(request: Request, name: str) -> Response:
        return json_response({"name": name})

    table = compile_routes([("GET", r"/items/(?P<name>[^/]+)", item), ("DELETE", r"/items/(?P<name>[^/]+)", item)])

    def req(method: str, target: str) -> Request:
        return Request(method=method, target=target, headers=())

    assert (await dispatch(table, req("GET", "/items/a"))).body == b'{"name": "a"}'
    assert (await dispatch(table, req("HEAD", "/items/a"))).status == 200
    not_allowed = await dispatch(table, req("PUT", "/items/a"))
    assert (not_allowed.status, dict(not_allowed.headers)["allow"]) == (405, "DELETE, GET")
    assert (await dispatch(table, req("GET", "/items/a/b"))).status == 404


# --- client --------------------------------------------------------------------------------------


async def test_fetch_errors_are_fetch_errors(serve, closed_port_url, nursery, autojump_clock):
    with pytest.raises(FetchError, match="cannot connect"):
        await fetch(closed_port_url, timeout=5)

    async def garbage(stream: trio.SocketStream) -> None:
        await stream.send_all(b"this is not HTTP\r\n\r\n")
        await stream.aclose()

    listeners = await nursery.start(functools.partial(trio.serve_tcp, garbage, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    with pytest.raises(FetchError, match="bad HTTP"):
        await fetch(f"http://127.0.0.1:{port}/", timeout=5)

    async def hang(request: Request) -> Response:
        await trio.sleep_forever()
        raise AssertionError

    start = trio.current_time()
    with pytest.raises(FetchError, match="timed out after 3s"):
        await fetch(await serve(hang) + "/", timeout=3.0)
    assert 3.0 <= trio.current_time() - start < 3.05
    with pytest.raises(FetchError, match="only http://"):
        await fetch("https://example.invalid/", timeout=1)


@pytest.mark.parametrize(("env", "host", "expected"), [
    ({}, "reviews", None),
    ({"HTTP_PROXY": "http://127.0.0.5:15001"}, "reviews", Proxy("127.0.0.5", 15001)),
    ({"http_proxy": "127.0.0.5:15001", "HTTP_PROXY": "http://127.0.0.9:1"}, "reviews", Proxy("127.0.0.5", 15001)),
    ({"HTTP_PROXY": "http://proxy"}, "reviews", Proxy("proxy", 80)),
    ({"HTTP_PROXY": "http://p:1", "NO_PROXY": "localhost,.svc.local"}, "x.svc.local", None),
    ({"HTTP_PROXY": "http://p:1", "no_proxy": "*"}, "reviews", None),
    ({"HTTP_PROXY": "http://p:1", "NO_PROXY": "view"}, "reviews", Proxy("p", 1)),
])
def test_proxy_from_environ(env, host, expected):
    assert proxy_from_environ(env, for_host=host) == expected
