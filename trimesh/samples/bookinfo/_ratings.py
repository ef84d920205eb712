"""BookInfo ratings v1: each reviewer's star rating for a product, from memory.

``GET /ratings/<id>`` → ``{"id": <id>, "ratings": {"Reviewer1": 5, "Reviewer2": 4}}``; a non-numeric id
is a 400 ``{"error": "please provide numeric product ID"}``; ``GET /health`` says it is healthy. Same
contract as the Istio sample's Node.js ratings v1 (traffic-tasks.md §11).

Run it: ``python -m trimesh.samples.bookinfo.ratings --address 127.0.0.4 --port 9080``.
"""

from __future__ import annotations

import argparse
from typing import Any

from .._server import (Request, Response, add_server_arguments, compile_routes, dispatch, json_response,
                       run_server)
from ._common import numeric_id

RATINGS = {"Reviewer1": 5, "Reviewer2": 4}


class Ratings:
    """The ratings service as an HTTP handler."""

    def __init__(self, version: str = "v1", ratings: dict[str, int] | None = None) -> None:
        self.version = version
        self.ratings = dict(RATINGS if ratings is None else ratings)
        self._served = 0
        self._routes = compile_routes([
            ("GET", r"/ratings/(?P<raw_id>[^/]*)", self._ratings),
            ("GET", r"/health", self._health),
        ])

    def statistics(self) -> dict[str, Any]:
        return {"version": self.version, "requests": self._served}

    def __repr__(self) -> str:
        return f"<Ratings {self.version} requests={self._served}>"

    async def __call__(self, request: Request) -> Response:
        self._served += 1
        return await dispatch(self._routes, request)

    async def _ratings(self, request: Request, raw_id: str) -> Response:
        product_id = numeric_id(raw_id)
        if product_id is None:
            return json_response({"error": "please provide numeric product ID"}, 400)
        return json_response({"id": product_id, "ratings": self.ratings})

    async def _health(self, request: Request) -> Response:
        return json_response({"status": "Ratings is healthy"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trimesh.samples.bookinfo.ratings",
                                     description="BookInfo ratings service (v1)")
    add_server_arguments(parser)
    args = parser.parse_args(argv)
    return run_server(Ratings(), name="ratings v1", address=args.address, port=args.port,
                      access_log=args.access_log)

