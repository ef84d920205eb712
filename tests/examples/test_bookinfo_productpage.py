"""productpage against real details/reviews/ratings (or fakes) on loopback, without a sidecar."""

from __future__ import annotations

import re

import httpx
import pytest
import trio

from trimesh.samples._client import Proxy
from trimesh.samples.bookinfo import (DETAILS_UNAVAILABLE, PRODUCT, RATINGS_UNAVAILABLE, REVIEWS_UNAVAILABLE,
                               Details, ProductPage, Ratings, Reviews)
from examples_testkit import FakePeer

TRACE = {
    "x-request-id": "2b5e3a1c-aaaa-bbbb-cccc-ddddeeeeffff",
    "x-b3-traceid": "463ac35c9f6413ad",
    "x-b3-spanid": "a2fb4a1d1a96d312",
    "x-b3-parentspanid": "0020000000000001",
    "x-b3-sampled": "1",
    "x-b3-flags": "1",
    "x-ot-span-context": "463ac35c9f6413ad;a2fb4a1d1a96d312;0020000000000001",
}

STAR = 'class="glyphicon glyphicon-star"'
EMPTY = 'class="glyphicon glyphicon-star-empty"'


def star_colors(page: str) -> list[str]:
    return re.findall(r'<font color="([a-z]+)">', page)


async def bookinfo(serve, version: str, **reviews_overrides) -> tuple[str, ProductPage]:
    """The four real services; returns productpage's URL and handler."""
    ratings = await serve(Ratings(), "ratings v1")
    reviews = await serve(Reviews(version, ratings_url=reviews_overrides.get("ratings_url", ratings)),
                          f"reviews {version}")
    details = await serve(Details(), "details v1")
    app = ProductPage(details_url=details, reviews_url=reviews, ratings_url=ratings)
    return await serve(app, "productpage v1"), app


async def page(client: httpx.AsyncClient, base: str, **kwargs) -> str:
    r = await client.get(f"{base}/productpage", **kwargs)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    return r.text


@pytest.fixture
async def client():
    async with httpx.AsyncClient(timeout=60) as c:
        yield c


async def test_page_v1_has_title_details_and_no_stars(serve, client):
    base, _ = await bookinfo(serve, "v1")
    html = await page(client, base)
    assert '<h3 class="text-center text-primary">The Comedy of Errors</h3>' in html
    assert "Summary: " in html and "early plays" in html
    for label, value in [("Type", "paperback"), ("Pages", "200"), ("Publisher", "PublisherA"),
                         ("Language", "English"), ("ISBN-10", "1234567890"),
                         ("ISBN-13", "123-1234567890"), ("Author", "William Shakespeare")]:
        assert f"<dt>{label}:</dt><dd>{value}</dd>" in html
    assert "Reviewer1" in html and "Reviewer2" in html
    assert "The slapstick humour is refreshing!" in html
    assert "glyphicon" not in html and star_colors(html) == []
    assert "Sorry" not in html


@pytest.mark.parametrize(("version", "color"), [("v2", "black"), ("v3", "red")])
async def test_page_stars_by_version(serve, client, version, color):
    base, _ = await bookinfo(serve, version)
    html = await page(client, base)
    assert star_colors(html) == [color, color]
    # Reviewer1: 5 stars; Reviewer2: 4 stars and one empty
    first, second = html.split("<blockquote>")[1:3]
    assert (first.count(STAR), first.count(EMPTY)) == (5, 0)
    assert (second.count(STAR), second.count(EMPTY)) == (4, 1)


async def test_page_shows_ratings_unavailable_when_ratings_is_down(serve, client, closed_port_url):
    base, _ = await bookinfo(serve, "v2", ratings_url=closed_port_url)
    html = await page(client, base)
    assert html.count("Ratings service is currently unavailable") == 2
    assert "glyphicon" not in html


async def test_reviews_hang_gives_unavailable_after_two_tries_of_3s(serve, autojump_clock):
    hanging = FakePeer(hang=True)
    details = await serve(Details())
    app = ProductPage(details_url=details, reviews_url=await serve(hanging))
    base = await serve(app)
    start = trio.current_time()
    async with httpx.AsyncClient(timeout=60) as c:
        html = await page(c, base)
    elapsed = trio.current_time() - start
    assert 6.0 <= elapsed < 6.05  # 2 tries × 3 s, the fault-injection task's "about 6 seconds"
    assert REVIEWS_UNAVAILABLE in html
    assert "<dt>Pages:</dt><dd>200</dd>" in html  # details still shown
    assert len(hanging.requests) == 2
    assert hanging.times[1] - hanging.times[0] == pytest.approx(3.0, abs=0.01)
    assert app.statistics()["upstream_failures"] == 2


async def test_fault_injection_lesson_v2_waits_too_long_v3_does_not(serve, autojump_clock):
    """ratings delayed 7 s (the docs' rule for jason): v2 (10 s) outlasts productpage's 2 × 3 s and
    the reviews vanish after ~6 s; v3 (2.5 s) answers within the first try, ratings unavailable."""
    slow_ratings = FakePeer(body={"id": 0, "ratings": {"Reviewer1": 5, "Reviewer2": 4}}, delay=7.0)
    ratings = await serve(slow_ratings)
    details = await serve(Details())
    async with httpx.AsyncClient(timeout=60) as c:
        for version, expect_seconds, expect_text in [("v2", 6.0, REVIEWS_UNAVAILABLE),
                                                     ("v3", 2.5, "Ratings service is currently unavailable")]:
            reviews = await serve(Reviews(version, ratings_url=ratings))
            base = await serve(ProductPage(details_url=details, reviews_url=reviews))
            start = trio.current_time()
            html = await page(c, base)
            elapsed = trio.current_time() - start
            assert expect_seconds <= elapsed < expect_seconds + 0.05, version
            assert expect_text in html, version


async def test_reviews_error_status_is_retried_once_then_reported(serve, client):
    failing = FakePeer(status=503, body={"error": "overflow"})
    details = await serve(Details())
    base = await serve(ProductPage(details_url=details, reviews_url=await serve(failing)))
    html = await page(client, base)
    assert REVIEWS_UNAVAILABLE in html
    assert len(failing.requests) == 2
    api = await client.get(f"{base}/api/v1/products/0/reviews")
    assert (api.status_code, api.json()) == (503, {"error": REVIEWS_UNAVAILABLE})
    assert len(failing.requests) == 4


async def test_details_unavailable_is_tried_once(serve, client, closed_port_url):
    details = FakePeer(status=500)
    reviews = await serve(Reviews("v1"))
    base = await serve(ProductPage(details_url=await serve(details), reviews_url=reviews))
    html = await page(client, base)
    assert DETAILS_UNAVAILABLE in html and "Error fetching product details!" in html
    assert "Reviewer1" in html
    assert len(details.requests) == 1
    refused = await serve(ProductPage(details_url=closed_port_url, reviews_url=reviews))
    api = await client.get(f"{refused}/api/v1/products/0")
    assert (api.status_code, api.json()) == (500, {"error": DETAILS_UNAVAILABLE})


async def test_cookie_and_tracing_headers_are_forwarded(serve, client):
    details = FakePeer(body={"id": 0, "type": "paperback"})
    reviews = FakePeer(body={"id": "0", "reviews": []})
    base = await serve(ProductPage(details_url=await serve(details), reviews_url=await serve(reviews)))
    sent = {**TRACE, "cookie": "user=jason; theme=dark", "x-unrelated": "no", "authorization": "Bearer t"}
    await page(client, base, headers=sent)
    for peer in (details, reviews):
        (got,) = peer.requests
        assert {k: got.header(k) for k in TRACE} == TRACE
        assert got.header("cookie") == "user=jason; theme=dark"
        assert got.header("x-unrelated") is None and got.header("authorization") is None
    assert details.requests[0].path == "/details/0"
    assert reviews.requests[0].path == "/reviews/0"


async def test_upstream_calls_use_absolute_form_through_http_proxy(serve, client):
    proxy = FakePeer(body={"id": 0, "reviews": []})
    proxy_port = int((await serve(proxy, "fake proxy")).rsplit(":", 1)[1])
    app = ProductPage.from_environ({"HTTP_PROXY": f"http://127.0.0.1:{proxy_port}"})
    assert app.proxy == Proxy("127.0.0.1", proxy_port)
    base = await serve(app)
    await page(client, base, headers={"cookie": "user=jason", "x-request-id": "r-1"})
    await client.get(f"{base}/api/v1/products/0/ratings")
    targets = [(r.method, r.target, r.header("host")) for r in proxy.requests]
    assert targets == [
        ("GET", "http://details:9080/details/0", "details:9080"),
        ("GET", "http://reviews:9080/reviews/0", "reviews:9080"),
        ("GET", "http://ratings:9080/ratings/0", "ratings:9080"),
    ]
    assert proxy.requests[1].header("cookie") == "user=jason"
    assert proxy.requests[1].header("x-request-id") == "r-1"


async def test_no_proxy_sends_an_upstream_directly(serve, client):
    proxy = FakePeer(body={"id": "0", "reviews": []})
    details = FakePeer(body={"id": 0, "type": "paperback"})
    details_url = await serve(details)
    app = ProductPage.from_environ({"HTTP_PROXY": await serve(proxy), "NO_PROXY": "127.0.0.1"},
                                   details_url=details_url)
    await page(client, await serve(app))
    assert [r.path for r in details.requests] == ["/details/0"]  # direct, origin form
    assert [r.target for r in proxy.requests] == ["http://reviews:9080/reviews/0"]


async def test_reviews_calls_ratings_through_http_proxy(serve):
    proxy = FakePeer(body={"id": 0, "ratings": {"Reviewer1": 3, "Reviewer2": 2}})
    proxy_url = await serve(proxy)
    reviews = Reviews.from_environ("v3", {"http_proxy": proxy_url})
    base = await serve(reviews)
    async with httpx.AsyncClient() as c:
        body = (await c.get(f"{base}/reviews/0", headers={"cookie": "user=jason"})).json()
    assert [r["rating"] for r in body["reviews"]] == [{"stars": 3, "color": "red"},
                                                      {"stars": 2, "color": "red"}]
    (got,) = proxy.requests
    assert (got.target, got.header("host"), got.header("cookie")) == (
        "http://ratings:9080/ratings/0", "ratings:9080", "user=jason")


def test_service_urls_from_environment():
    app = ProductPage.from_environ({"DETAILS_HOSTNAME": "127.0.0.3", "DETAILS_PORT": "9081",
                                    "REVIEWS_SERVICE_PORT": "9082", "SERVICES_DOMAIN": "svc.local"})
    assert app.details_url == "http://127.0.0.3.svc.local:9081"
    assert app.reviews_url == "http://reviews.svc.local:9082"
    assert app.ratings_url == "http://ratings.svc.local:9080"
    assert app.proxy is None
    assert Reviews.from_environ("v2", {"RATINGS_HOSTNAME": "127.0.0.4"}).ratings_url == "http://127.0.0.4:9080"
    # NO_PROXY exempts a host from the proxy
    exempt = Reviews.from_environ("v2", {"HTTP_PROXY": "127.0.0.9:15001", "NO_PROXY": "127.0.0.4",
                                         "RATINGS_HOSTNAME": "127.0.0.4"})
    assert exempt.proxy is None
    assert Reviews.from_environ("v2", {"HTTP_PROXY": "127.0.0.9:15001"}).proxy == Proxy("127.0.0.9", 15001)


async def test_login_sets_user_cookie_and_logout_clears_it(serve):
    base, _ = await bookinfo(serve, "v1")
    async with httpx.AsyncClient(follow_redirects=False) as c:
        r = await c.post(f"{base}/login", data={"username": "jason", "passwd": "x"})
        assert r.status_code == 302
        assert r.headers["location"] == "/productpage"
        assert r.headers["set-cookie"].startswith("user=jason")
        r = await c.post(f"{base}/login", data={"user": "anna"}, headers={"referer": "/productpage?u=1"})
        assert (r.headers["location"], r.headers["set-cookie"].split(";")[0]) == ("/productpage?u=1",
                                                                                   "user=anna")
        assert (await c.post(f"{base}/login", data={})).status_code == 400
        sneaky = await c.post(f"{base}/login", data={"username": "x; Domain=evil"})
        assert sneaky.headers["set-cookie"] == "user=x%3B%20Domain%3Devil; Path=/"
        out = await c.get(f"{base}/logout")
        assert out.status_code == 302 and out.headers["location"] == "/productpage"
        assert out.headers["set-cookie"].startswith("user=;") and "Max-Age=0" in out.headers["set-cookie"]
    async with httpx.AsyncClient(follow_redirects=True) as c:
        # a browser's round trip: log in, follow the redirect with the cookie, see the name
        r = await c.post(f"{base}/login", data={"username": "jason"})
        assert r.status_code == 200 and "Signed in as jason" in r.text
        r = await c.get(f"{base}/logout")
        assert "Signed in as" not in r.text and 'name="username"' in r.text


async def test_api_endpoints(serve, client):
    base, _ = await bookinfo(serve, "v2")
    products = await client.get(f"{base}/api/v1/products")
    assert products.json() == [PRODUCT]
    assert PRODUCT["title"] == "The Comedy of Errors"
    details = await client.get(f"{base}/api/v1/products/0")
    assert details.json()["ISBN-13"] == "123-1234567890" and details.json()["id"] == 0
    reviews = await client.get(f"{base}/api/v1/products/0/reviews")
    assert [r["rating"] for r in reviews.json()["reviews"]] == [{"stars": 5, "color": "black"},
                                                                {"stars": 4, "color": "black"}]
    ratings = await client.get(f"{base}/api/v1/products/0/ratings")
    assert ratings.json() == {"id": 0, "ratings": {"Reviewer1": 5, "Reviewer2": 4}}
    assert (await client.get(f"{base}/api/v1/products/zero")).status_code == 400
    health = await client.get(f"{base}/health")
    assert (health.status_code, health.text) == (200, "Product page is healthy")
    index = await client.get(f"{base}/")
    assert index.status_code == 200 and 'href="/productpage"' in index.text
    assert (await client.get(f"{base}/nope")).status_code == 404


async def test_ratings_api_reports_unavailable(serve, client, closed_port_url):
    base = await serve(ProductPage(ratings_url=closed_port_url))
    r = await client.get(f"{base}/api/v1/products/0/ratings")
    assert (r.status_code, r.json()) == (500, {"error": RATINGS_UNAVAILABLE})


async def test_page_escapes_user_name(serve, client):
    base, _ = await bookinfo(serve, "v1")
    html = await page(client, base, headers={"cookie": "user=<b>x</b>"})
    assert "Signed in as &lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html
