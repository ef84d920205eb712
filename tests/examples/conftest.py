"""Fixtures for the example workloads: in-process servers on 127.0.0.1 free ports, fake peers."""

from __future__ import annotations

import functools

import pytest

from trimesh.samples._server import serve_sample


@pytest.fixture
def serve(nursery):
    """``await serve(handler, name)`` starts ``handler`` on 127.0.0.1:<free port>; returns its URL."""

    async def start(handler, name: str = "test") -> str:
        listening = await nursery.start(functools.partial(serve_sample, handler, address="127.0.0.1",
                                                          port=0, name=name))
        return listening.url

    return start


@pytest.fixture
def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
