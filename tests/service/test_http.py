"""trimesh.service: the control-plane HTTP/1.1 helper, against a real h11 client over Trio memory
streams in virtual time, and once over loopback (127.0.130.x) for binding, readiness and stop."""

from __future__ import annotations

import json
import logging
import socket
from functools import partial

import h11
import pytest
import trio
import trio.testing

import trimesh.service
from trimesh.errors import ProtocolError, TrimeshError
from trimesh.service import (HTTPError, HttpService, Request, Response, Takeover, http_request,
                             json_error, json_response, serve_http, text_response)

ADDRESS = "127.0.130.1"


async def echo(request: Request) -> Response:
    """Echoes what the handler saw."""
    return json_response({"method": request.method, "target": request.target,
                          "path": request.path, "query": request.query,
                          "body": request.body.decode(), "host": request.header("host"),
                          "x": request.header("x-twice")})


class Client:
    """A real HTTP/1.1 peer (h11) on one connection."""

    def __init__(self, stream):
        self.stream = stream
        self.conn = h11.Connection(h11.CLIENT)

    async def request(self, method, target, body=b"", headers=()):
        hdrs = [("host", "svc"), *headers]
        if body or method == "POST":
            hdrs.append(("content-length", str(len(body))))
        data = self.conn.send(h11.Request(method=method, target=target, headers=hdrs))
        data += self.conn.send(h11.Data(data=body)) if body else b""
        await self.stream.send_all(data + self.conn.send(h11.EndOfMessage()))
        response, chunks = None, []
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(await self.stream.receive_some(65536))
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                chunks.append(event.data)
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                break
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        return response.status_code, dict(response.headers), b"".join(chunks)


async def read_all(stream) -> bytes:
    data = b""
    while chunk := await stream.receive_some(65536):
        data += chunk
    return data


@pytest.fixture
def connect(nursery):
    """connect(service) -> (client stream) with the service serving the other end."""

    def start(service: HttpService):
        client, server = trio.testing.memory_stream_pair()
        nursery.start_soon(service.serve_connection, server)
        return client

    return start


async def test_requests_on_one_kept_alive_connection(connect):
    service = HttpService(echo, name="echo")
    c = Client(connect(service))
    status, headers, body = await c.request("GET", "/a%20b/c?k=1&k=2&e=", headers=[
        ("x-twice", "1"), ("x-twice", "2")])
    assert status == 200 and headers[b"content-type"] == b"application/json"
    assert json.loads(body) == {"method": "GET", "target": "/a%20b/c?k=1&k=2&e=",
                                "path": "/a b/c", "query": {"k": ["1", "2"], "e": [""]},
                                "body": "", "host": "svc", "x": "1, 2"}
    assert b"date" in headers and headers[b"content-length"] == str(len(body)).encode()
    status, _, body = await c.request("POST", "/p", b"hello")
    assert status == 200 and json.loads(body)["body"] == "hello"
    stats = service.statistics()
    assert (stats["connections"], stats["open_connections"], stats["requests"]) == (1, 1, 2)
    assert stats["responses"] == {"2xx": 2}
    assert repr(service) == "<HttpService echo on unbound open=1 requests=2>"


async def test_pipelined_requests_are_answered_in_order(connect):
    stream = connect(HttpService(echo, name="echo"))
    await stream.send_all(b"GET /one HTTP/1.1\r\nhost: a\r\n\r\n"
                          b"GET /two HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
    data = await read_all(stream)
    assert data.count(b"HTTP/1.1 200 OK") == 2
    assert data.index(b'"/one"') < data.index(b'"/two"')


async def test_head_gets_the_head_only(connect):
    async def page(request):
        return text_response("0123456789")

    stream = connect(HttpService(page, name="page"))
    await stream.send_all(b"HEAD / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
    data = await read_all(stream)
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"content-length: 10" in head.lower()
    assert rest == b""


async def chunks(request):
    async def body():
        for part in (b"one,", b"", b"two"):
            yield part
            await trio.sleep(1)

    return Response(200, [("content-type", "text/plain")], body())


@pytest.mark.parametrize("version, framing", [
    (b"1.1", b"transfer-encoding: chunked"),
    (b"1.0", b"connection: close"),
])
async def test_streamed_bodies_are_chunked_or_close_delimited(connect, autojump_clock, version,
                                                              framing):
    stream = connect(HttpService(chunks, name="stream"))
    await stream.send_all(b"GET / HTTP/" + version + b"\r\nhost: a\r\nconnection: close\r\n\r\n")
    start = trio.current_time()
    data = await read_all(stream)
    head, _, body = data.partition(b"\r\n\r\n")
    assert framing in head.lower() and b"content-length" not in head.lower()
    conn = h11.Connection(h11.CLIENT)  # decode with the reference codec
    conn.send(h11.Request(method="GET", target="/", headers=[("host", "a")]))
    conn.receive_data(data)
    conn.receive_data(b"")
    events = []
    while not isinstance(event := conn.next_event(), (h11.EndOfMessage, h11.ConnectionClosed)):
        events.append(event)
    assert b"".join(e.data for e in events if isinstance(e, h11.Data)) == b"one,two"
    assert trio.current_time() - start == 3.0  # streamed as produced, not buffered


async def test_oversized_bodies_get_413(connect):
    service = HttpService(echo, name="small", max_body=10, discard_limit=100)
    c = Client(connect(service))
    status, _, body = await c.request("POST", "/", b"x" * 50)
    assert status == 413 and b"larger than the limit of 10 bytes" in body
    status, _, body = await c.request("POST", "/", b"y" * 10)  # drained: the connection works
    assert status == 200 and json.loads(body)["body"] == "y" * 10
    stream = connect(service)
    await stream.send_all(b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 1000\r\n\r\nxx")
    data = await read_all(stream)  # announced beyond the discard limit: answered, closed
    assert data.startswith(b"HTTP/1.1 413 ") and b"connection: close" in data.lower()
    assert service.statistics()["too_large"] == 2


async def test_expect_100_continue(connect):
    stream = connect(HttpService(echo, name="echo"))
    await stream.send_all(b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 2\r\n"
                          b"expect: 100-continue\r\nconnection: close\r\n\r\n")
    assert await stream.receive_some(65536) == b"HTTP/1.1 100 \r\n\r\n"
    await stream.send_all(b"ok")
    data = await read_all(stream)
    assert data.startswith(b"HTTP/1.1 200 ") and b'"body": "ok"' in data.replace(b'":"', b'": "')


@pytest.mark.parametrize("raw, status, fragment", [
    (b"GET / HTTP/1.1\r\nno colon\r\n\r\n", 400, b"bad HTTP request"),
    (b"GET / HTTP/1.1\r\nhost: a\r\nx: " + b"v" * 20000 + b"\r\n\r\n", 431,
     b"request head larger than 16384 bytes"),
    (b"POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n", 400,
     b"bad HTTP request"),
])
async def test_malformed_requests_get_an_error_and_close(connect, raw, status, fragment):
    service = HttpService(echo, name="strict", error_response=json_error)
    stream = connect(service)
    await stream.send_all(raw)
    data = await read_all(stream)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status)
    assert fragment in json.loads(body)["error"].encode()
    assert service.statistics()["bad_requests"] == 1


async def test_timeouts_idle_head_and_body(connect, autojump_clock):
    service = HttpService(echo, name="t", idle_timeout=75, header_timeout=10, body_timeout=20)
    start = trio.current_time()
    assert await read_all(connect(service)) == b""  # idle: closed quietly
    assert trio.current_time() - start == 75
    stream = connect(service)
    await trio.sleep(5)
    await stream.send_all(b"GET / HTTP/1.1\r\nhost:")  # a head begun, never finished
    start = trio.current_time()
    data = await read_all(stream)
    assert data.startswith(b"HTTP/1.1 408 ") and trio.current_time() - start == 10
    stream = connect(service)
    await stream.send_all(b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\n\r\nab")
    start = trio.current_time()
    data = await read_all(stream)
    assert data.startswith(b"HTTP/1.1 408 ") and trio.current_time() - start == 20
    assert service.statistics()["timeouts"] == 2


async def test_handler_errors_map_to_answers(connect, caplog):
    async def app(request):
        if request.path == "/teapot":
            raise HTTPError(418, "short and stout", [("allow", "GET")])
        if request.path == "/bug":
            raise KeyError("oops")
        return text_response("fine")

    service = HttpService(app, name="app", error_response=json_error)
    c = Client(connect(service))
    status, headers, body = await c.request("GET", "/teapot")
    assert (status, headers[b"allow"], json.loads(body)) == (418, b"GET",
                                                            {"error": "short and stout"})
    with caplog.at_level(logging.ERROR, logger="trimesh.service"):
        status, _, body = await c.request("GET", "/bug")
    assert status == 500 and json.loads(body) == {"error": "internal error (see the app log)"}
    assert "app: GET /bug failed" in caplog.text and "KeyError" in caplog.text
    status, _, body = await c.request("GET", "/")  # still serving on the same connection
    assert (status, body) == (200, b"fine")
    assert service.statistics()["errors"] == 1
    assert service.statistics()["responses"] == {"4xx": 1, "5xx": 1, "2xx": 1}


async def test_takeover_gets_the_raw_stream(connect):
    async def app(request):
        if request.path == "/drop":
            return Takeover()

        async def raw(stream):
            await stream.send_all(b"not http at all")

        return Takeover(raw)

    service = HttpService(app, name="raw")
    stream = connect(service)
    await stream.send_all(b"GET /drop HTTP/1.1\r\nhost: a\r\n\r\n")
    assert await read_all(stream) == b""
    stream = connect(service)
    await stream.send_all(b"GET /raw HTTP/1.1\r\nhost: a\r\n\r\n")
    assert await read_all(stream) == b"not http at all"
    assert service.statistics()["takeovers"] == 2 and service.statistics()["requests"] == 0


async def test_http_request_is_the_matching_client(connect):
    async def app(request):
        return text_response("x" * 1000, status=201, headers=[("x-a", "1")])

    service = HttpService(app, name="app")
    answer = await http_request(connect(service), "POST", "/make", host="svc", body=b"{}")
    assert (answer.status, answer.header("x-a"), answer.body) == (201, "1", b"x" * 1000)
    answer = await http_request(connect(service), "GET", "/", host="svc", read_body=False)
    assert (answer.status, answer.body) == (201, b"")
    with pytest.raises(ProtocolError, match="larger than 10 bytes"):
        await http_request(connect(service), "GET", "/", host="svc", max_body=10)
    drop = HttpService(lambda request: _takeover(), name="drop")
    with pytest.raises(ProtocolError, match="closed before an answer"):
        await http_request(connect(drop), "GET", "/", host="svc")


async def _takeover():
    return Takeover()


async def test_serve_binds_logs_one_ready_line_and_stops_gracefully(caplog):
    release = trio.Event()

    async def app(request):
        if request.path == "/slow":
            await release.wait()
        return text_response("done")

    with caplog.at_level(logging.INFO, logger="trimesh.service"):
        async with trio.open_nursery() as nursery:
            service = await nursery.start(partial(serve_http, app, ADDRESS, 0, name="graceful"))
            assert service.url == f"http://{ADDRESS}:{service.port}"
            idle = await trio.open_tcp_stream(ADDRESS, service.port)
            busy = await trio.open_tcp_stream(ADDRESS, service.port)
            answer = await http_request(idle, "GET", "/", host="g")  # now idle, kept alive
            assert answer.status == 200 and answer.header("connection") is None

            async def slow():
                nonlocal slow_answer
                slow_answer = await http_request(busy, "GET", "/slow", host="g")

            slow_answer = None
            nursery.start_soon(slow)
            while service.statistics()["open_connections"] < 2:
                await trio.sleep(0.01)
            await trio.testing.wait_all_tasks_blocked()
            service.stop()
            assert await idle.receive_some(10) == b""  # the idle connection closed at once
            with pytest.raises(OSError):
                socket.create_connection((ADDRESS, service.port), timeout=1).close()
            release.set()
        # serve returned by itself: the request in progress finished, told to close
        assert slow_answer.status == 200 and slow_answer.body == b"done"
        assert slow_answer.header("connection") == "close"
        await idle.aclose()
        await busy.aclose()
    ready = [r.getMessage() for r in caplog.records if "ready on" in r.getMessage()]
    assert ready == [f"graceful ready on {ADDRESS}:{service.port}"]
    assert service.statistics()["stopping"] and "stopping" in repr(service)


async def test_a_busy_port_is_a_user_error_naming_it():
    with socket.socket() as busy:
        busy.bind((ADDRESS, 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(TrimeshError, match=rf"busy: cannot listen on {ADDRESS}:{port}: "):
            await serve_http(echo, ADDRESS, port, name="busy")


def test_public_surface():
    exported = {n for n in vars(trimesh.service) if not n.startswith("_")} - {"annotations"}
    assert exported == {
        "BODY_TIMEOUT", "DRAIN_TIMEOUT", "HEADER_TIMEOUT", "IDLE_TIMEOUT", "MAX_BODY", "MAX_HEAD",
        "ClientResponse", "HTTPError", "HttpService", "Request", "Response", "Takeover",
        "http_request", "json_error", "json_response", "serve_http", "text_error",
        "text_response"}


class MemoryListener(trio.abc.Listener):
    """Connections over memory streams, for serving a listener in virtual time."""

    def __init__(self):
        self.send, self.receive = trio.open_memory_channel(10)

    async def connect(self):
        client, server = trio.testing.memory_stream_pair()
        await self.send.send(server)
        return client

    async def accept(self):
        return await self.receive.receive()

    async def aclose(self):
        self.receive.close()


async def test_stop_gives_a_long_request_the_drain_timeout_then_cuts_it(autojump_clock):
    async def long_poll(request):
        await trio.sleep(300)
        return text_response("late")

    service = HttpService(long_poll, name="poll", drain_timeout=5)
    listener = MemoryListener()
    async with trio.open_nursery() as nursery:
        assert await nursery.start(service.serve_listeners, [listener]) is service
        stream = await listener.connect()
        await stream.send_all(b"GET /watch HTTP/1.1\r\nhost: a\r\n\r\n")
        await trio.testing.wait_all_tasks_blocked()
        assert service.statistics()["open_connections"] == 1
        start = trio.current_time()
        service.stop()
    assert trio.current_time() - start == 5  # serve_listeners returned at the drain deadline
    assert await stream.receive_some(100) == b""  # cut, unanswered
    assert service.statistics()["open_connections"] == 0
