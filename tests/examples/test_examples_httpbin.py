"""The httpbin-like service: httpbin.org's JSON shapes, status codes, capped delays."""

from __future__ import annotations

import json
import random
import re
from collections import Counter

import httpx
import pytest
import trio
import trio.testing

from trimesh.samples._client import fetch
from trimesh.samples.httpbin import MAX_DELAY, HttpBin, title_case


@pytest.fixture
async def client():
    async with httpx.AsyncClient(timeout=60) as c:
        yield c


@pytest.mark.parametrize(("raw", "shown"), [("x-b3-traceid", "X-B3-Traceid"), ("host", "Host"),
                                            ("x-ot-span-context", "X-Ot-Span-Context"),
                                            ("USER-AGENT", "User-Agent")])
def test_title_case(raw, shown):
    assert title_case(raw) == shown


async def test_headers_echo_title_cased(serve, client):
    base = await serve(HttpBin(), "httpbin v1")
    r = await client.get(f"{base}/headers", headers={"x-b3-sampled": "1", "x-request-id": "abc"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    headers = r.json()["headers"]
    assert list(r.json()) == ["headers"]
    assert headers["X-B3-Sampled"] == "1"
    assert headers["X-Request-Id"] == "abc"  # not hidden: in a mesh it is what one wants to see
    assert headers["Host"] == base.removeprefix("http://")
    assert r.text.startswith('{\n  "headers": {') and r.text.endswith("}\n")  # httpbin's layout


async def test_get_ip_and_user_agent(serve, client):
    base = await serve(HttpBin())
    r = await client.get(f"{base}/get?a=1&b=2&b=3", headers={"user-agent": "istio/fortio-0.6.2"})
    body = r.json()
    assert sorted(body) == ["args", "headers", "origin", "url"]
    assert body["args"] == {"a": "1", "b": ["2", "3"]}
    assert body["origin"] == "127.0.0.1"
    assert body["url"] == f"{base}/get?a=1&b=2&b=3"
    assert body["headers"]["User-Agent"] == "istio/fortio-0.6.2"
    assert (await client.get(f"{base}/ip")).json() == {"origin": "127.0.0.1"}
    forwarded = await client.get(f"{base}/ip", headers={"x-forwarded-for": "10.1.2.3"})
    assert forwarded.json() == {"origin": "10.1.2.3"}
    ua = await client.get(f"{base}/user-agent", headers={"user-agent": "curl/7.35.0"})
    assert ua.json() == {"user-agent": "curl/7.35.0"}


async def test_get_through_a_proxy_reports_the_absolute_url(serve):
    base = await serve(HttpBin())
    port = int(base.rsplit(":", 1)[1])
    from trimesh.samples._client import Proxy

    r = await fetch("http://httpbin:8000/get", timeout=10, proxy=Proxy("127.0.0.1", port))
    assert r.json()["url"] == "http://httpbin:8000/get"
    assert r.json()["headers"]["Host"] == "httpbin:8000"


@pytest.mark.parametrize("code", [200, 201, 204, 404, 500, 503])
async def test_status_codes(serve, client, code):
    base = await serve(HttpBin())
    r = await client.get(f"{base}/status/{code}")
    assert r.status_code == code
    assert r.content == b""
    assert r.headers["access-control-allow-origin"] == "*"
    assert r.headers["access-control-allow-credentials"] == "true"
    assert r.headers["content-type"] == "text/html; charset=utf-8"


async def test_status_special_and_invalid(serve, client):
    base = await serve(HttpBin())
    teapot = await client.get(f"{base}/status/418")
    assert teapot.status_code == 418 and b"teapot" in teapot.content
    moved = await client.get(f"{base}/status/302")
    assert (moved.status_code, moved.headers["location"]) == (302, "/redirect/1")
    auth = await client.get(f"{base}/status/401")
    assert auth.headers["www-authenticate"].startswith("Basic")
    for bad in ("abc", "99", "700", "200:x"):
        r = await client.get(f"{base}/status/{bad}")
        assert r.status_code == 400, bad
    # any method, like httpbin
    assert (await client.post(f"{base}/status/201")).status_code == 201
    # HEAD: headers only
    head = await client.head(f"{base}/get")
    assert head.status_code == 200 and head.content == b"" and int(head.headers["content-length"]) > 0


async def test_status_choices_are_weighted(serve, client):
    app = HttpBin(rng=random.Random(7))
    base = await serve(app)
    seen = Counter()
    for _ in range(60):
        seen[(await client.get(f"{base}/status/200:0.8,503:0.2")).status_code] += 1
    assert set(seen) == {200, 503}
    assert seen[200] > seen[503]
    assert app.statistics()["by_status"] == dict(seen)
    only = Counter([(await client.get(f"{base}/status/503,503")).status_code for _ in range(5)])
    assert only == {503: 5}


@pytest.mark.parametrize(("asked", "waited"), [("0", 0.0), ("1.5", 1.5), ("3", 3.0), ("100", MAX_DELAY)])
async def test_delay_is_capped(serve, autojump_clock, asked, waited):
    base = await serve(HttpBin())
    start = trio.current_time()
    r = await fetch(f"{base}/delay/{asked}", timeout=60)
    elapsed = trio.current_time() - start
    assert waited <= elapsed < waited + 0.05
    assert r.status == 200
    assert sorted(r.json()) == ["args", "data", "files", "form", "headers", "origin", "url"]


async def test_delay_rejects_a_non_number(serve, client):
    base = await serve(HttpBin())
    assert (await client.get(f"{base}/delay/soon")).status_code == 404


async def test_anything_echoes_method_body_and_json(serve, client):
    base = await serve(HttpBin())
    r = await client.put(f"{base}/anything/x/y?q=1", content=json.dumps({"k": [1, 2]}),
                         headers={"content-type": "application/json"})
    body = r.json()
    assert sorted(body) == ["args", "data", "files", "form", "headers", "json", "method", "origin", "url"]
    assert (body["method"], body["json"], body["args"]) == ("PUT", {"k": [1, 2]}, {"q": "1"})
    assert body["data"] == '{"k": [1, 2]}'
    form = (await client.post(f"{base}/anything", data={"a": "b"})).json()
    assert (form["form"], form["data"], form["json"]) == ({"a": "b"}, "", None)
    post = (await client.post(f"{base}/post", content=b"hello")).json()
    assert post["data"] == "hello" and "method" not in post


async def test_keep_alive_serves_several_requests_on_one_connection(serve):
    """Several requests on one client connection (the loadgen and proxies rely on keep-alive)."""
    from trimesh.samples._client import HttpConnection

    base = await serve(HttpBin())
    host, port = base.removeprefix("http://").split(":")
    conn = await HttpConnection.connect(host, int(port))
    try:
        codes = [(await conn.request("GET", f"/status/{c}", [("host", "x")])).status for c in (200, 503, 204)]
    finally:
        await conn.aclose()
    assert codes == [200, 503, 204]
    assert conn.statistics()["requests"] == 3


async def test_access_log_line(serve, caplog, nursery):
    import functools
    import logging

    from trimesh.samples._server import serve_sample

    caplog.set_level(logging.INFO, logger="trimesh.samples")
    listening = await nursery.start(functools.partial(serve_sample, HttpBin(), address="127.0.0.1", port=0,
                                                      name="httpbin v2", access_log=True))
    await fetch(f"{listening.url}/headers", headers=[("user-agent", "curl/7.35.0")], timeout=10)
    assert f"httpbin v2 ready on {listening.url}" in caplog.messages
    await trio.testing.wait_all_tasks_blocked()  # the server logs right after it has sent the response
    line = caplog.messages[-1]
    assert re.fullmatch(r'127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\] '
                        r'"GET /headers HTTP/1\.1" 200 \d+ "-" "curl/7\.35\.0"', line), line
