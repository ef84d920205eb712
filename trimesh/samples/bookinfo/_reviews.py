"""BookInfo reviews v1, v2 and v3: one code base, the version picks the behaviour.

``GET /reviews/<id>`` returns two reviews of the book. The versions differ only in ratings, exactly as
in the Istio sample (BookInfo guide E:69-73; traffic-tasks.md §11):

========  ===========================================  ==========
version   ratings call                                 star color
========  ===========================================  ==========
v1        none: the reviews carry no ``rating``        —
v2        ``GET http://ratings:9080/ratings/<id>``, 10 s   black
v3        the same call with a 2.5 s timeout           red
========  ===========================================  ==========

The 10 s vs 2.5 s timeouts are what make the fault-injection task's lesson work: with a 7 s delay on
ratings, v2 waits longer than productpage's 3 s × 2 tries, while v3 gives up first and still answers.
When the ratings call fails (error, non-2xx, timeout) every review gets
``"rating": {"error": "Ratings service is currently unavailable"}`` and reviews still answers 200.
The caller's ``Cookie`` and tracing headers are forwarded to ratings so a rule can match them there.

Run it: ``python -m trimesh.samples.bookinfo.reviews --version v2 --address 127.0.0.7 --port 9080``
(``REVIEWS_VERSION`` is the default for ``--version``; ``RATINGS_HOSTNAME``/``RATINGS_PORT`` or
``--ratings-url`` point it elsewhere; ``HTTP_PROXY`` sends the call through the sidecar).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._client import FetchError, Proxy, fetch, proxy_from_environ
from .._server import (Request, Response, add_server_arguments, compile_routes, dispatch, json_response,
                       run_server)
from ._common import forwarded_headers, service_url

REVIEW_RATINGS_UNAVAILABLE = "Ratings service is currently unavailable"

REVIEWS = (
    ("Reviewer1", "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!"),
    ("Reviewer2", "Absolutely fun and entertaining. The play lacks thematic depth when compared to "
                  "other plays by Shakespeare."),
)


@dataclass(frozen=True)
class ReviewsVersion:
    ratings_enabled: bool
    star_color: str | None
    ratings_timeout: float | None  # seconds; reviews' LibertyRestEndpoint: 10000 ms if black else 2500


REVIEWS_VERSIONS: dict[str, ReviewsVersion] = {
    "v1": ReviewsVersion(False, None, None),
    "v2": ReviewsVersion(True, "black", 10.0),
    "v3": ReviewsVersion(True, "red", 2.5),
}


class Reviews:
    """The reviews service (any version) as an HTTP handler."""

    def __init__(self, version: str = "v1", *, ratings_url: str = "http://ratings:9080",
                 proxy: Proxy | None = None) -> None:
        if version not in REVIEWS_VERSIONS:
            raise ValueError(f"unknown reviews version {version!r}; expected one of {sorted(REVIEWS_VERSIONS)}")
        self.version = version
        self.behaviour = REVIEWS_VERSIONS[version]
        self.ratings_url = ratings_url.rstrip("/")
        self.proxy = proxy
        self._served = 0
        self._ratings_calls = 0
        self._ratings_failures = 0
        self._routes = compile_routes([
            ("GET", r"/reviews/(?P<raw_id>[^/]*)", self._reviews),
            ("GET", r"/health", self._health),
        ])

    @classmethod
    def from_environ(cls, version: str, environ: Mapping[str, str] | None = None,
                     ratings_url: str | None = None) -> Reviews:
        env = os.environ if environ is None else environ
        url = ratings_url or service_url("ratings", env)
        return cls(version, ratings_url=url, proxy=proxy_from_environ(env, for_host=_host_of(url)))

    def statistics(self) -> dict[str, Any]:
        return {"version": self.version, "requests": self._served, "ratings_calls": self._ratings_calls,
                "ratings_failures": self._ratings_failures}

    def __repr__(self) -> str:
        return (f"<Reviews {self.version} requests={self._served} ratings_calls={self._ratings_calls} "
                f"ratings_failures={self._ratings_failures}>")

    async def __call__(self, request: Request) -> Response:
        self._served += 1
        return await dispatch(self._routes, request)

    async def _reviews(self, request: Request, raw_id: str) -> Response:
        reviews: list[dict[str, Any]] = [{"reviewer": who, "text": text} for who, text in REVIEWS]
        if self.behaviour.ratings_enabled:
            stars = await self._fetch_ratings(raw_id, request)
            for review in reviews:
                count = stars.get(review["reviewer"]) if stars is not None else None
                if isinstance(count, int):
                    review["rating"] = {"stars": count, "color": self.behaviour.star_color}
                else:
                    review["rating"] = {"error": REVIEW_RATINGS_UNAVAILABLE}
        return json_response({"id": raw_id, "reviews": reviews})

    async def _fetch_ratings(self, raw_id: str, request: Request) -> dict[str, Any] | None:
        self._ratings_calls += 1
        assert self.behaviour.ratings_timeout is not None
        try:
            response = await fetch(f"{self.ratings_url}/ratings/{raw_id}", headers=forwarded_headers(request),
                                   timeout=self.behaviour.ratings_timeout, proxy=self.proxy)
            if 200 <= response.status < 300:
                ratings = response.json().get("ratings")
                if isinstance(ratings, dict):
                    return ratings
        except (FetchError, ValueError, AttributeError):
            pass
        self._ratings_failures += 1
        return None

    async def _health(self, request: Request) -> Response:
        return json_response({"status": "Reviews is healthy"})


def _host_of(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trimesh.samples.bookinfo.reviews",
                                     description="BookInfo reviews service (v1, v2 or v3)")
    add_server_arguments(parser)
    parser.add_argument("--version", choices=sorted(REVIEWS_VERSIONS),
                        default=os.environ.get("REVIEWS_VERSION", "v1"),
                        help="v1: no ratings; v2: black stars; v3: red stars (default $REVIEWS_VERSION or v1)")
    parser.add_argument("--ratings-url", help="base URL of ratings (default http://ratings:9080)")
    args = parser.parse_args(argv)
    app = Reviews.from_environ(args.version, ratings_url=args.ratings_url)
    return run_server(app, name=f"reviews {args.version}", address=args.address, port=args.port,
                      access_log=args.access_log)

