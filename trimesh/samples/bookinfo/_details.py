"""BookInfo details v1: static facts about the book.

``GET /details/<id>`` returns the book's details as JSON with the product id; a non-numeric id is a
400 ``{"error": "please provide numeric product id"}``; ``GET /health`` says the service is healthy.
Same paths and JSON as the Istio sample's details service (guides-reference.md §2.6).

Run it: ``python -m trimesh.samples.bookinfo.details --address 127.0.0.3 --port 9080``.
"""

from __future__ import annotations

import argparse
from typing import Any

from .._server import (Request, Response, add_server_arguments, compile_routes, dispatch, json_response,
                       run_server)
from ._common import numeric_id

BOOK_DETAILS: dict[str, Any] = {
    "author": "William Shakespeare",
    "year": 1595,
    "type": "paperback",
    "pages": 200,
    "publisher": "PublisherA",
    "language": "English",
    "ISBN-10": "1234567890",
    "ISBN-13": "123-1234567890",
}


def book_details(product_id: int) -> dict[str, Any]:
    return {"id": product_id, **BOOK_DETAILS}


class Details:
    """The details service as an HTTP handler."""

    def __init__(self, version: str = "v1") -> None:
        self.version = version
        self._served = 0
        self._routes = compile_routes([
            ("GET", r"/details/(?P<raw_id>[^/]*)", self._details),
            ("GET", r"/health", self._health),
        ])

    def statistics(self) -> dict[str, Any]:
        return {"version": self.version, "requests": self._served}

    def __repr__(self) -> str:
        return f"<Details {self.version} requests={self._served}>"

    async def __call__(self, request: Request) -> Response:
        self._served += 1
        return await dispatch(self._routes, request)

    async def _details(self, request: Request, raw_id: str) -> Response:
        product_id = numeric_id(raw_id)
        if product_id is None:
            return json_response({"error": "please provide numeric product id"}, 400)
        return json_response(book_details(product_id))

    async def _health(self, request: Request) -> Response:
        return json_response({"status": "Details is healthy"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trimesh.samples.bookinfo.details",
                                     description="BookInfo details service (v1)")
    add_server_arguments(parser)
    args = parser.parse_args(argv)
    return run_server(Details(), name="details v1", address=args.address, port=args.port,
                      access_log=args.access_log)

