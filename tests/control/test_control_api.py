"""The config API in-process: an h11 client over Trio memory streams (virtual time), and the CLI's
blocking client over a real loopback socket."""

import json

import h11
import pytest
import trio
import trio.testing

from trimesh.config import load_text
from trimesh.control import (MAX_REQUEST_BYTES, ConfigStore, ControlClient, ControlUnreachableError,
                             handle_api_connection, serve_config_api)
from trimesh.errors import ConfigError, ConflictError, NotFoundError

RR = {"apiVersion": "config.istio.io/v1alpha2", "kind": "RouteRule",
      "metadata": {"name": "reviews-default"},
      "spec": {"destination": {"name": "reviews"}, "route": [{"labels": {"version": "v1"}}]}}


class Client:
    """A real HTTP/1.1 peer (h11) on one connection to handle_api_connection."""

    def __init__(self, stream):
        self.stream = stream
        self.conn = h11.Connection(h11.CLIENT)

    async def request(self, method, target, body=None, headers=()):
        data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        hdrs = [("host", "control"), ("content-length", str(len(data))), *headers]
        await self.stream.send_all(self.conn.send(h11.Request(method=method, target=target, headers=hdrs))
                                   + self.conn.send(h11.Data(data=data)) + self.conn.send(h11.EndOfMessage()))
        response, chunks = None, []
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(await self.stream.receive_some(65536))
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                chunks.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                break
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        return response.status_code, json.loads(b"".join(chunks)), dict(response.headers)


@pytest.fixture
async def api(nursery):
    store = ConfigStore.in_memory()
    client_stream, server_stream = trio.testing.memory_stream_pair()
    nursery.start_soon(handle_api_connection, server_stream, store)
    return store, Client(client_stream)


async def test_create_get_replace_delete_on_one_kept_alive_connection(api):
    store, c = api
    status, body, headers = await c.request("GET", "/v1/version")
    assert (status, body) == (200, {"version": "0.1.0", "revision": 0})
    assert headers[b"content-type"] == b"application/json"
    status, body, _ = await c.request("POST", "/v1/objects", RR)
    assert status == 201 and body["metadata"]["resourceVersion"] == "1"
    assert body["metadata"]["namespace"] == "default" and body["spec"] == RR["spec"]
    status, body, _ = await c.request("POST", "/v1/objects", RR)
    assert status == 409 and "route-rule/default/reviews-default already exists" in body["error"]
    status, body, _ = await c.request("GET", "/v1/objects/routerules/default/reviews-default")
    assert status == 200 and body["metadata"]["resourceVersion"] == "1"
    status, body, _ = await c.request("PUT", "/v1/objects/rr/default/reviews-default", RR)
    assert status == 200 and body["metadata"]["resourceVersion"] == "2"
    status, body, _ = await c.request("GET", "/v1/objects?kind=RouteRule&namespace=default")
    assert status == 200 and body["revision"] == 2 and len(body["objects"]) == 1
    status, body, _ = await c.request("DELETE", "/v1/objects/route-rule/default/reviews-default")
    assert (status, body) == (200, {"revision": 3})
    status, body, _ = await c.request("GET", "/v1/objects/RouteRule/default/reviews-default")
    assert status == 404 and "route-rule/default/reviews-default not found" in body["error"]
    status, body, _ = await c.request("DELETE", "/v1/objects/RouteRule/default/reviews-default")
    assert status == 404
    status, body, _ = await c.request("PUT", "/v1/objects/RouteRule/default/reviews-default", RR)
    assert status == 404
    status, body, _ = await c.request("GET", "/v1/version")
    assert (status, body) == (200, {"version": "0.1.0", "revision": 3})
    assert store.statistics()["refused"] == 3


async def test_invalid_objects_get_400_with_the_field_path_and_store_nothing(api):
    store, c = api
    bad = json.loads(json.dumps(RR))
    bad["spec"]["route"][0]["weight"] = "heavy"
    cases = [
        (bad, "$.spec.route[0].weight"),
        ({**RR, "kind": "Nope"}, "$.kind"),
        (b"\xff\xfe\x00garbage", "UTF-8"),
        (b"{not json", "request body:"),
        (b"[1, 2]", "mapping"),
        (b"", "got nothing"),
        (b"kind: RouteRule\nmetadata: {name: a}\nspec: {destination: {name: r}}\n---\n"
         b"kind: RouteRule\nmetadata: {name: b}\nspec: {destination: {name: r}}\n", "expected one config object, got 2"),
    ]
    for body, fragment in cases:
        status, answer, _ = await c.request("POST", "/v1/objects", body)
        assert status == 400, (body, answer)
        assert fragment in answer["error"]
    assert store.revision == 0 and store.list() == []


async def test_put_must_name_the_same_object_as_the_url(api):
    store, c = api
    await c.request("POST", "/v1/objects", RR)
    status, body, _ = await c.request("PUT", "/v1/objects/RouteRule/default/other", RR)
    assert status == 400 and "route-rule/default/reviews-default" in body["error"]
    # A body without a namespace takes the URL's.
    await c.request("POST", "/v1/objects", {**RR, "metadata": {"name": "x", "namespace": "bookinfo"}})
    status, body, _ = await c.request("PUT", "/v1/objects/RouteRule/bookinfo/x", {**RR, "metadata": {"name": "x"}})
    assert status == 200 and body["metadata"]["namespace"] == "bookinfo"
    assert store.revision == 3


async def test_unknown_paths_methods_kinds_and_queries(api):
    _, c = api
    status, body, _ = await c.request("GET", "/v2/things")
    assert status == 404 and "/v2/things" in body["error"]
    status, body, headers = await c.request("PATCH", "/v1/objects")
    assert status == 405 and headers[b"allow"] == b"GET, POST"
    status, body, _ = await c.request("GET", "/v1/objects?kind=bogus")
    assert status == 400 and "unknown kind 'bogus'" in body["error"] and "route-rule" in body["error"]
    status, body, _ = await c.request("GET", "/v1/objects?after=x")
    assert status == 400 and "after" in body["error"]
    status, body, _ = await c.request("GET", "/v1/objects?after=-1")
    assert status == 400


async def test_oversized_body_gets_413_and_stores_nothing(api):
    store, c = api
    doc = json.loads(json.dumps(RR))
    doc["metadata"]["annotations"] = {"big": "x" * (MAX_REQUEST_BYTES + 10)}
    status, body, _ = await c.request("POST", "/v1/objects", doc)
    assert status == 413 and str(MAX_REQUEST_BYTES) in body["error"]
    # The body was drained, so the connection is still usable.
    status, _, _ = await c.request("POST", "/v1/objects", RR)
    assert status == 201 and store.revision == 1


async def test_long_poll_answers_on_change_or_timeout(api, autojump_clock, nursery):
    store, c = api
    other_stream, server_stream = trio.testing.memory_stream_pair()
    nursery.start_soon(handle_api_connection, server_stream, store)
    other = Client(other_stream)
    answers = []

    async def poll():
        answers.append((await c.request("GET", "/v1/objects?after=0&timeout=30"), trio.current_time()))

    nursery.start_soon(poll)
    await trio.sleep(7)
    status, _, _ = await other.request("POST", "/v1/objects", RR)
    await trio.testing.wait_all_tasks_blocked()
    ((status, body, _), at) = answers[0]
    assert (status, body["revision"], len(body["objects"]), at) == (200, 1, 1, 7.0)
    start = trio.current_time()
    status, body, _ = await c.request("GET", "/v1/objects?after=1&timeout=30")
    assert (status, body["revision"], trio.current_time() - start) == (200, 1, 30.0)
    # Already past: answers at once.
    status, body, _ = await c.request("GET", "/v1/objects?after=0&timeout=30")
    assert body["revision"] == 1 and trio.current_time() - start == 30.0


async def test_malformed_http_gets_400_and_the_connection_closes(nursery):
    store = ConfigStore.in_memory()
    client_stream, server_stream = trio.testing.memory_stream_pair()
    nursery.start_soon(handle_api_connection, server_stream, store)
    await client_stream.send_all(b"GET /v1/version HTTP/1.1\r\nno colon here\r\n\r\n")
    data = b""
    while chunk := await client_stream.receive_some(65536):
        data += chunk
    assert data.startswith(b"HTTP/1.1 400 ") and b"bad HTTP request" in data


async def test_idle_keepalive_connection_is_closed(autojump_clock, nursery):
    store = ConfigStore.in_memory()
    client_stream, server_stream = trio.testing.memory_stream_pair()
    nursery.start_soon(handle_api_connection, server_stream, store)
    start = trio.current_time()
    assert await client_stream.receive_some(10) == b""
    assert trio.current_time() - start == 75.0


async def test_blocking_client_over_loopback(tmp_path, nursery):
    store = ConfigStore.open(tmp_path)
    url = await nursery.start(serve_config_api, store, "127.0.0.1", 0)
    assert url.startswith("http://127.0.0.1:")

    def work():
        with ControlClient(url) as client:
            created = client.create(RR)
            with pytest.raises(ConflictError, match="already exists"):
                client.create(RR)
            replaced = client.replace(RR)
            listing = client.list(kind="routerule")
            got = client.get("rr", "default", "reviews-default")
            deleted = client.delete("RouteRule", "default", "reviews-default")
            with pytest.raises(NotFoundError, match="not found"):
                client.get("RouteRule", "default", "reviews-default")
            with pytest.raises(ConfigError, match=r"\$\.kind"):
                client.create({**RR, "kind": "Nope"})
            return created, replaced, listing, got, deleted, client.version(), client.statistics()

    created, replaced, listing, got, deleted, version, stats = await trio.to_thread.run_sync(work)
    assert created["metadata"]["resourceVersion"] == "1"
    assert replaced["metadata"]["resourceVersion"] == "2" == got["metadata"]["resourceVersion"]
    assert listing["revision"] == 2 and [o["metadata"]["name"] for o in listing["objects"]] == ["reviews-default"]
    assert deleted == 3 and version == {"version": "0.1.0", "revision": 3}
    assert stats["requests"] == 9
    (obj,) = load_text(json.dumps(got))
    assert obj.to_dict()["spec"] == RR["spec"]
    store.close()


def test_unreachable_control_is_named():
    with pytest.raises(ControlUnreachableError, match=r"cannot reach the control at http://127\.0\.0\.1:9"):
        ControlClient("http://127.0.0.1:9", timeout=2).version()
    with pytest.raises(ValueError, match="http://HOST:PORT"):
        ControlClient("https://x")


async def test_listing_is_encoded_once_per_revision_and_never_stale():
    from trimesh.control._api import ListingCache, dispatch

    store, cache = ConfigStore.in_memory(), ListingCache()
    _, first = await dispatch(store, "GET", "/v1/objects", b"", cache)
    _, again = await dispatch(store, "GET", "/v1/objects?after=0&timeout=0", b"", cache)
    assert again is first and cache.statistics() == {"entries": 1, "hits": 1, "misses": 1}
    _, by_kind = await dispatch(store, "GET", "/v1/objects?kind=rr", b"", cache)
    assert cache.statistics()["entries"] == 2 and json.loads(by_kind)["objects"] == []
    (obj,) = load_text(json.dumps(RR))
    await store.create(obj)
    _, after = await dispatch(store, "GET", "/v1/objects", b"", cache)
    assert json.loads(after)["revision"] == 1 and len(json.loads(after)["objects"]) == 1
    assert cache.statistics() == {"entries": 1, "hits": 1, "misses": 3}  # old revision dropped
    assert "entries=1" in repr(cache)


async def test_huge_declared_body_is_refused_without_reading_it(nursery):
    store = ConfigStore.in_memory()
    client_stream, server_stream = trio.testing.memory_stream_pair()
    nursery.start_soon(handle_api_connection, server_stream, store)
    await client_stream.send_all(b"POST /v1/objects HTTP/1.1\r\nhost: c\r\ncontent-length: 1000000000\r\n\r\n{")
    data = b""
    while chunk := await client_stream.receive_some(65536):
        data += chunk
    assert data.startswith(b"HTTP/1.1 413 ") and b"connection: close" in data.lower()
    assert store.revision == 0
