"""Fakes shared by the example tests (a module name unique in the suite: tests run in prepend mode)."""

from __future__ import annotations

import trio

from trimesh.samples._server import Request, Response, json_response


class FakePeer:
    """A fake upstream or proxy that records every request it gets and answers as told."""

    def __init__(self, *, status: int = 200, body: object = None, hang: bool = False,
                 delay: float = 0.0) -> None:
        self.status = status
        self.body = {"ok": True} if body is None else body
        self.hang = hang
        self.delay = delay
        self.requests: list[Request] = []
        self.times: list[float] = []

    async def __call__(self, request: Request) -> Response:
        self.requests.append(request)
        self.times.append(trio.current_time())
        if self.hang:
            await trio.sleep_forever()
        if self.delay:
            await trio.sleep(self.delay)
        return json_response(self.body, self.status)
