"""A small Zipkin v2 collector for tests: ``POST /api/v2/spans`` (a JSON array) answered 202,
the spans kept in order (trimesh.service's HTTP helper)."""

from __future__ import annotations

import json

import trio

from trimesh.service import HttpService, Request, Response


class ZipkinCollector:
    def __init__(self) -> None:
        self.spans: list[dict] = []
        self.posts = 0
        self.http = HttpService(self.handle, name="test zipkin collector")

    async def handle(self, request: Request) -> Response:
        if request.method != "POST" or request.path != "/api/v2/spans":
            return Response(404, [("content-type", "text/plain")], b"not found\n")
        batch = json.loads(request.body)
        assert isinstance(batch, list)
        self.posts += 1
        self.spans.extend(batch)
        return Response(202, [("content-type", "text/plain")], b"")

    async def serve(self, host: str, port: int = 0, *, task_status=trio.TASK_STATUS_IGNORED):
        await self.http.serve(host, port, task_status=task_status)

    @property
    def address(self) -> str:
        return f"{self.http.host}:{self.http.port}"

    async def wait_spans(self, n: int, timeout: float = 10.0) -> list[dict]:
        """Wait (bounded) until at least ``n`` spans arrived."""
        with trio.move_on_after(timeout):
            while len(self.spans) < n:
                await trio.sleep(0.05)
        return self.spans
