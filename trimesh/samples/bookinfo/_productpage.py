"""BookInfo productpage v1: the page a user sees, assembled from details and reviews.

Routes (the Istio sample's, guides-reference.md §2.6):

- ``GET /productpage``: HTML for product 0, "The Comedy of Errors": summary, a details table and the
  reviews with their stars (``glyphicon-star`` / ``glyphicon-star-empty`` inside
  ``<font color="black|red">``), or the sample's "Sorry, … unavailable" messages.
- ``POST /login`` (form field ``username``, or ``user``): sets the cookie ``user=<name>`` and redirects
  to the referring page (``/productpage`` when there is none); ``GET /logout`` clears it.
- ``GET /api/v1/products``, ``/api/v1/products/<id>``, ``/api/v1/products/<id>/reviews``,
  ``/api/v1/products/<id>/ratings``: the same data as JSON; ``GET /health``; ``GET /`` an index page.

Upstream calls (``http://details:9080/details/0``, ``http://reviews:9080/reviews/0``, ratings for the
API) carry the incoming ``Cookie`` and tracing headers and have a 3 s timeout each. The reviews call
is tried **twice** — the deliberate bug the fault-injection task is built on (3 s × 2 = ~6 s before
"Sorry, product reviews are currently unavailable for this book."; traffic-tasks.md §3.3).

Run it: ``python -m trimesh.samples.bookinfo.productpage --address 127.0.0.5 --port 9080``. With
``HTTP_PROXY`` set (the sidecar sets it) the calls go through the sidecar; otherwise straight to
``DETAILS_HOSTNAME:DETAILS_PORT`` etc. or the ``--details-url``/``--reviews-url``/``--ratings-url`` given.
"""

from __future__ import annotations

import argparse
import html
import os
import urllib.parse
from collections.abc import Mapping
from typing import Any

from .._client import FetchError, Proxy, fetch, no_proxy_matches, proxy_from_environ, split_url
from .._server import (Request, Response, add_server_arguments, compile_routes, dispatch, form_fields,
                       html_response, json_response, redirect, request_cookies, run_server,
                       text_response)
from ._common import forwarded_headers, numeric_id, service_url

UPSTREAM_TIMEOUT = 3.0  # productpage.py: requests.get(url, headers=headers, timeout=3.0)
REVIEWS_TRIES = 2  # productpage.py: "Bug introduced explicitly for illustration in fault injection task"

DETAILS_UNAVAILABLE = "Sorry, product details are currently unavailable for this book."
REVIEWS_UNAVAILABLE = "Sorry, product reviews are currently unavailable for this book."
RATINGS_UNAVAILABLE = "Sorry, product ratings are currently unavailable for this book."

PRODUCT: dict[str, Any] = {
    "id": 0,
    "title": "The Comedy of Errors",
    "descriptionHtml": (
        '<a href="https://en.wikipedia.org/wiki/The_Comedy_of_Errors">Wikipedia Summary</a>: '
        "The Comedy of Errors is one of <b>William Shakespeare's</b> early plays. It is his shortest "
        "and one of his most farcical comedies, with a major part of the humour coming from slapstick "
        "and mistaken identity, in addition to puns and word play."
    ),
}

MAX_STARS = 5
DETAIL_FIELDS = (("Author", "author"), ("Year", "year"), ("Type", "type"), ("Pages", "pages"),
                 ("Publisher", "publisher"), ("Language", "language"), ("ISBN-10", "ISBN-10"),
                 ("ISBN-13", "ISBN-13"))


class ProductPage:
    """The productpage service as an HTTP handler."""

    def __init__(self, *, details_url: str = "http://details:9080", reviews_url: str = "http://reviews:9080",
                 ratings_url: str = "http://ratings:9080", proxy: Proxy | None = None, no_proxy: str = "",
                 timeout: float = UPSTREAM_TIMEOUT, reviews_tries: int = REVIEWS_TRIES) -> None:
        self.details_url = details_url.rstrip("/")
        self.reviews_url = reviews_url.rstrip("/")
        self.ratings_url = ratings_url.rstrip("/")
        self.proxy = proxy
        self.no_proxy = no_proxy  # NO_PROXY: upstream hosts called directly even with a proxy
        self.timeout = timeout
        self.reviews_tries = reviews_tries
        self._served = 0
        self._upstream_calls = 0
        self._upstream_failures = 0
        self._routes = compile_routes([
            ("GET", r"/|/index\.html", self._index),
            ("GET", r"/health", self._health),
            ("POST", r"/login", self._login),
            ("GET", r"/logout", self._logout),
            ("GET", r"/productpage", self._productpage),
            ("GET", r"/api/v1/products", self._api_products),
            ("GET", r"/api/v1/products/(?P<raw_id>[^/]*)", self._api_details),
            ("GET", r"/api/v1/products/(?P<raw_id>[^/]*)/reviews", self._api_reviews),
            ("GET", r"/api/v1/products/(?P<raw_id>[^/]*)/ratings", self._api_ratings),
        ])

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None, *, details_url: str | None = None,
                     reviews_url: str | None = None, ratings_url: str | None = None) -> ProductPage:
        env = os.environ if environ is None else environ
        return cls(details_url=details_url or service_url("details", env),
                   reviews_url=reviews_url or service_url("reviews", env),
                   ratings_url=ratings_url or service_url("ratings", env),
                   proxy=proxy_from_environ(env), no_proxy=env.get("no_proxy") or env.get("NO_PROXY") or "")

    def statistics(self) -> dict[str, Any]:
        return {"requests": self._served, "upstream_calls": self._upstream_calls,
                "upstream_failures": self._upstream_failures}

    def __repr__(self) -> str:
        return (f"<ProductPage requests={self._served} upstream_calls={self._upstream_calls} "
                f"upstream_failures={self._upstream_failures} proxy={self.proxy}>")

    async def __call__(self, request: Request) -> Response:
        self._served += 1
        return await dispatch(self._routes, request)

    # --- upstream calls ------------------------------------------------------------------------

    async def _get_json(self, url: str, request: Request) -> tuple[int, Any]:
        """(status, parsed JSON) of one upstream call; status 0 when there was no usable answer."""
        self._upstream_calls += 1
        try:
            response = await fetch(url, headers=forwarded_headers(request), timeout=self.timeout,
                                   proxy=self._proxy_for(url))
            body = response.json() if response.status == 200 else None
            return response.status, body
        except (FetchError, ValueError):
            return 0, None

    def _proxy_for(self, url: str) -> Proxy | None:
        if self.proxy is None or (self.no_proxy and no_proxy_matches(self.no_proxy, split_url(url)[0])):
            return None
        return self.proxy

    async def _upstream(self, url: str, request: Request, tries: int, error: str) -> tuple[int, Any]:
        status = 0
        for _ in range(tries):
            status, body = await self._get_json(url, request)
            if status == 200 and isinstance(body, dict):
                return 200, body
            self._upstream_failures += 1
        return (status or 500), {"error": error}

    async def product_details(self, product_id: int, request: Request) -> tuple[int, Any]:
        return await self._upstream(f"{self.details_url}/details/{product_id}", request, 1,
                                    DETAILS_UNAVAILABLE)

    async def product_reviews(self, product_id: int, request: Request) -> tuple[int, Any]:
        return await self._upstream(f"{self.reviews_url}/reviews/{product_id}", request,
                                    self.reviews_tries, REVIEWS_UNAVAILABLE)

    async def product_ratings(self, product_id: int, request: Request) -> tuple[int, Any]:
        return await self._upstream(f"{self.ratings_url}/ratings/{product_id}", request, 1,
                                    RATINGS_UNAVAILABLE)

    # --- routes --------------------------------------------------------------------------------

    async def _index(self, request: Request) -> Response:
        return html_response(_INDEX_HTML)

    async def _health(self, request: Request) -> Response:
        return text_response("Product page is healthy")

    async def _login(self, request: Request) -> Response:
        fields = form_fields(request)
        user = fields.get("username") or fields.get("user")
        if not user:
            return text_response("login needs the form field 'username'\n", 400)
        value = urllib.parse.quote(user, safe="")  # no way to smuggle cookie attributes in
        return redirect(request.header("referer") or "/productpage",
                        headers=[("set-cookie", f"user={value}; Path=/")])

    async def _logout(self, request: Request) -> Response:
        return redirect(request.header("referer") or "/productpage",
                        headers=[("set-cookie", "user=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/")])

    async def _productpage(self, request: Request) -> Response:
        product_id = 0  # the sample has one product
        details_status, details = await self.product_details(product_id, request)
        reviews_status, reviews = await self.product_reviews(product_id, request)
        page = render_product_page(PRODUCT, details_status, details, reviews_status, reviews,
                                   user=request_cookies(request).get("user") or None)
        return html_response(page)

    async def _api_products(self, request: Request) -> Response:
        return json_response([PRODUCT])

    async def _api_details(self, request: Request, raw_id: str) -> Response:
        return await self._api(raw_id, request, self.product_details)

    async def _api_reviews(self, request: Request, raw_id: str) -> Response:
        return await self._api(raw_id, request, self.product_reviews)

    async def _api_ratings(self, request: Request, raw_id: str) -> Response:
        return await self._api(raw_id, request, self.product_ratings)

    async def _api(self, raw_id: str, request: Request, get: Any) -> Response:
        product_id = numeric_id(raw_id)
        if product_id is None:
            return json_response({"error": "please provide numeric product id"}, 400)
        status, body = await get(product_id, request)
        return json_response(body, status)


# --- HTML -------------------------------------------------------------------------------------


def _details_html(status: int, details: Any) -> str:
    if status != 200:
        return ('<h4 class="text-center text-primary">Error fetching product details!</h4>\n'
                f"<p>{html.escape(str(details.get('error', DETAILS_UNAVAILABLE)))}</p>")
    rows = "\n".join(f"<dt>{label}:</dt><dd>{html.escape(str(details.get(key, '')))}</dd>"
                     for label, key in DETAIL_FIELDS if key in details)
    return f'<h4 class="text-center text-primary">Book Details</h4>\n<dl>\n{rows}\n</dl>'


def _rating_html(rating: Any) -> str:
    if not isinstance(rating, dict):
        return ""
    if "stars" in rating:
        stars = max(0, min(MAX_STARS, int(rating["stars"])))
        color = html.escape(str(rating.get("color", "black")), quote=True)
        glyphs = ['<span class="glyphicon glyphicon-star">&#9733;</span>'] * stars
        glyphs += ['<span class="glyphicon glyphicon-star-empty">&#9734;</span>'] * (MAX_STARS - stars)
        return f'<font color="{color}">\n' + "\n".join(glyphs) + "\n</font>"
    if "error" in rating:
        return f"<p><i>{html.escape(str(rating['error']))}</i></p>"
    return ""


def _reviews_html(status: int, reviews: Any) -> str:
    if status != 200:
        return ('<h4 class="text-center text-primary">Error fetching product reviews!</h4>\n'
                f"<p>{html.escape(str(reviews.get('error', REVIEWS_UNAVAILABLE)))}</p>")
    blocks = []
    for review in reviews.get("reviews", []):
        blocks.append("<blockquote>\n"
                      f"<p>{html.escape(str(review.get('text', '')))}</p>\n"
                      f"<small>{html.escape(str(review.get('reviewer', '')))}</small>\n"
                      f"{_rating_html(review.get('rating'))}\n"
                      "</blockquote>")
    return '<h4 class="text-center text-primary">Book Reviews</h4>\n' + "\n".join(blocks)


def render_product_page(product: dict[str, Any], details_status: int, details: Any, reviews_status: int,
                        reviews: Any, *, user: str | None = None) -> str:
    """The product page: the same observable structure as the Istio sample's template."""
    if user:
        who = (f'<p class="navbar-text navbar-right">Signed in as {html.escape(user)} '
               '<a href="logout" class="btn btn-default navbar-btn">sign out</a></p>')
    else:
        who = ('<form class="navbar-form navbar-right" action="login" method="post">'
               '<input type="text" name="username" placeholder="User Name"> '
               '<input type="password" name="passwd" placeholder="Password"> '
               '<button type="submit" class="btn btn-default">Sign in</button></form>')
    return f"""<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>Simple Bookstore App</title>
<style>
body {{ font-family: sans-serif; margin: 0; }}
.navbar {{ background: #222; color: #ddd; padding: 8px 16px; overflow: hidden; }}
.navbar a, .navbar p {{ color: #ddd; }}
.navbar-right {{ float: right; margin: 0; }}
.text-primary {{ color: #337ab7; }}
.text-center {{ text-align: center; }}
.row {{ display: flex; flex-wrap: wrap; padding: 0 16px; }}
.col-md-12 {{ flex: 0 0 100%; }}
.col-md-6 {{ flex: 1 1 45%; padding: 0 8px; }}
blockquote {{ border-left: 4px solid #eee; margin: 8px 0; padding: 4px 12px; }}
font span {{ font-size: 18px; }}
</style>
</head>
<body>
<nav class="navbar navbar-inverse navbar-static-top">
<div class="container">
<div class="navbar-header"><a class="navbar-brand" href="#">BookInfo Sample</a></div>
{who}
</div>
</nav>
<div class="container-fluid">
<div class="row">
<div class="col-md-12">
<h3 class="text-center text-primary">{html.escape(product["title"])}</h3>
<p>Summary: {product["descriptionHtml"]}</p>
</div>
</div>
<div class="row">
<div class="col-md-6">
{_details_html(details_status, details)}
</div>
<div class="col-md-6">
{_reviews_html(reviews_status, reviews)}
</div>
</div>
</div>
</body>
</html>
"""


_INDEX_HTML = """<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>Simple Bookstore App</title></head>
<body>
<h3>Hello! This is a simple bookstore application of four services running in a trimesh mesh.</h3>
<p><a href="/productpage">The product page</a> shows a book, its details (from <code>details</code>)
and its reviews (from <code>reviews</code>, which v2 and v3 decorate with stars from
<code>ratings</code>).</p>
<h4>Microservices API</h4>
<ul>
<li><code>GET /api/v1/products</code></li>
<li><code>GET /api/v1/products/&lt;id&gt;</code></li>
<li><code>GET /api/v1/products/&lt;id&gt;/reviews</code></li>
<li><code>GET /api/v1/products/&lt;id&gt;/ratings</code></li>
</ul>
</body>
</html>
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trimesh.samples.bookinfo.productpage",
                                     description="BookInfo productpage service (v1)")
    add_server_arguments(parser)
    parser.add_argument("--details-url", help="base URL of details (default http://details:9080)")
    parser.add_argument("--reviews-url", help="base URL of reviews (default http://reviews:9080)")
    parser.add_argument("--ratings-url", help="base URL of ratings (default http://ratings:9080)")
    args = parser.parse_args(argv)
    app = ProductPage.from_environ(details_url=args.details_url, reviews_url=args.reviews_url,
                                   ratings_url=args.ratings_url)
    return run_server(app, name="productpage v1", address=args.address, port=args.port,
                      access_log=args.access_log)

