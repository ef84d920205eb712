"""details, ratings and reviews v1/v2/v3 over real loopback sockets, against the sample's contract."""

from __future__ import annotations

import logging

import pytest
import trio

from examples_testkit import FakePeer
from trimesh.samples._client import fetch
from trimesh.samples.bookinfo import BOOK_DETAILS, REVIEWS, Details, Ratings, Reviews

TRACE = {
    "x-request-id": "6f0b2c1e-1111-2222-3333-444455556666",
    "x-b3-traceid": "80f198ee56343ba8",
    "x-b3-spanid": "e457b5a2e4d86bd1",
    "x-b3-parentspanid": "05e3ac9a4f6e3b90",
    "x-b3-sampled": "1",
    "x-b3-flags": "0",
    "x-ot-span-context": "80f198ee56343ba8;e457b5a2e4d86bd1;05e3ac9a4f6e3b90",
}


async def get(url: str, headers=(), timeout: float = 30.0):
    return await fetch(url, headers=list(headers), timeout=timeout)


# --- details -------------------------------------------------------------------------------------


async def test_details_json_shape(serve, caplog):
    caplog.set_level(logging.INFO, logger="trimesh.samples")
    base = await serve(Details(), "details v1")
    assert f"details v1 ready on {base}" in caplog.messages
    r = await get(f"{base}/details/0")
    assert r.status == 200
    assert r.header("content-type") == "application/json"
    assert r.json() == {
        "id": 0, "author": "William Shakespeare", "year": 1595, "type": "paperback", "pages": 200,
        "publisher": "PublisherA", "language": "English", "ISBN-10": "1234567890",
        "ISBN-13": "123-1234567890",
    }
    assert (await get(f"{base}/details/7")).json() == {"id": 7, **BOOK_DETAILS}


async def test_details_bad_id_health_and_unknown_path(serve):
    app = Details()
    base = await serve(app)
    bad = await get(f"{base}/details/abc")
    assert (bad.status, bad.json()) == (400, {"error": "please provide numeric product id"})
    health = await get(f"{base}/health")
    assert (health.status, health.json()) == (200, {"status": "Details is healthy"})
    assert (await get(f"{base}/nothing-here")).status == 404
    assert app.statistics()["requests"] == 3


# --- ratings -------------------------------------------------------------------------------------


async def test_ratings_json_and_400_for_bad_id(serve):
    base = await serve(Ratings(), "ratings v1")
    ok = await get(f"{base}/ratings/0")
    assert (ok.status, ok.json()) == (200, {"id": 0, "ratings": {"Reviewer1": 5, "Reviewer2": 4}})
    for bad_id in ("abc", "1x", "-1"):
        bad = await get(f"{base}/ratings/{bad_id}")
        assert bad.status == 400, bad_id
        assert bad.json() == {"error": "please provide numeric product ID"}
    assert (await get(f"{base}/health")).json() == {"status": "Ratings is healthy"}


async def test_ratings_rejects_other_methods(serve):
    base = await serve(Ratings())
    r = await fetch(f"{base}/ratings/0", method="POST", timeout=10)
    assert r.status == 405
    assert r.header("allow") == "GET"


# --- reviews -------------------------------------------------------------------------------------


def expected_reviews(rating=None):
    out = []
    for i, (who, text) in enumerate(REVIEWS):
        review = {"reviewer": who, "text": text}
        if rating is not None:
            review["rating"] = rating(i)
        out.append(review)
    return out


async def test_reviews_v1_has_no_rating_and_never_calls_ratings(serve):
    ratings = FakePeer(body={"id": 0, "ratings": {"Reviewer1": 5, "Reviewer2": 4}})
    ratings_url = await serve(ratings)
    base = await serve(Reviews("v1", ratings_url=ratings_url), "reviews v1")
    r = await get(f"{base}/reviews/0")
    assert r.status == 200
    assert r.json() == {"id": "0", "reviews": expected_reviews()}
    assert r.json()["reviews"][0]["text"] == ("An extremely entertaining play by Shakespeare. "
                                              "The slapstick humour is refreshing!")
    assert ratings.requests == []


@pytest.mark.parametrize(("version", "color"), [("v2", "black"), ("v3", "red")])
async def test_reviews_v2_v3_stars_from_ratings(serve, version, color):
    base = await serve(Reviews(version, ratings_url=await serve(Ratings())))
    r = await get(f"{base}/reviews/0")
    stars = [5, 4]
    assert r.json() == {"id": "0",
                        "reviews": expected_reviews(lambda i: {"stars": stars[i], "color": color})}


@pytest.mark.parametrize("version", ["v2", "v3"])
async def test_reviews_ratings_failure_is_reported_per_review(serve, closed_port_url, version):
    unavailable = {"error": "Ratings service is currently unavailable"}
    broken = FakePeer(status=500, body={"error": "boom"})
    for ratings_url in (await serve(broken), closed_port_url):
        app = Reviews(version, ratings_url=ratings_url)
        base = await serve(app)
        r = await get(f"{base}/reviews/0")
        assert r.status == 200
        assert r.json() == {"id": "0", "reviews": expected_reviews(lambda i: unavailable)}
        assert app.statistics()["ratings_failures"] == 1
    assert len(broken.requests) == 1


@pytest.mark.parametrize(("version", "timeout"), [("v2", 10.0), ("v3", 2.5)])
async def test_reviews_ratings_timeout_by_version(serve, autojump_clock, version, timeout):
    hanging = FakePeer(hang=True)
    base = await serve(Reviews(version, ratings_url=await serve(hanging)))
    start = trio.current_time()
    r = await get(f"{base}/reviews/0", timeout=60)
    elapsed = trio.current_time() - start
    assert timeout <= elapsed < timeout + 0.05
    assert r.json()["reviews"][1]["rating"] == {"error": "Ratings service is currently unavailable"}


async def test_reviews_forwards_cookie_and_tracing_headers_to_ratings(serve):
    ratings = FakePeer(body={"id": 0, "ratings": {"Reviewer1": 1, "Reviewer2": 2}})
    base = await serve(Reviews("v2", ratings_url=await serve(ratings)))
    sent = {**TRACE, "cookie": "session=x; user=jason", "x-not-forwarded": "1", "user-agent": "probe"}
    r = await get(f"{base}/reviews/3", headers=sent.items())
    assert [rv["rating"]["stars"] for rv in r.json()["reviews"]] == [1, 2]
    (got,) = ratings.requests
    assert got.path == "/ratings/3"
    assert {k: got.header(k) for k in TRACE} == TRACE
    assert got.header("cookie") == "session=x; user=jason"
    assert got.header("x-not-forwarded") is None
    assert got.header("user-agent") != "probe"


async def test_reviews_without_incoming_headers_forwards_nothing_extra(serve):
    ratings = FakePeer(body={"id": 0, "ratings": {"Reviewer1": 5, "Reviewer2": 4}})
    base = await serve(Reviews("v3", ratings_url=await serve(ratings)))
    await get(f"{base}/reviews/0")
    names = {k for k, _ in ratings.requests[0].headers}
    assert names.isdisjoint(TRACE) and "cookie" not in names


def test_reviews_unknown_version_is_refused():
    with pytest.raises(ValueError, match="v4"):
        Reviews("v4")
