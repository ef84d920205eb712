"""Fixtures of the end-to-end suite; the helpers live in e2e_harness.py (see its docstring)."""

from __future__ import annotations

import pytest
from e2e_harness import (SERVICE_PORT, Mesh, Proc, sidecar_available, skip_or_fail, start_sidecar,
                         start_upstream, wait_sidecar_ready, wait_upstream_ready)

UPSTREAMS = [
    ("reviews", "v1"), ("reviews", "v2"), ("reviews", "v3"),
    ("httpbin", "v1"), ("httpbin", "v2"), ("httpbin", "v3", "--hang"),
]


def pytest_collection_modifyitems(items):
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def mesh(tmp_path_factory) -> Mesh:
    ok, why = sidecar_available()
    if not ok:
        skip_or_fail(why)  # under CI=true a CLI that cannot start fails the suite
    log_dir = tmp_path_factory.mktemp("e2e")
    started: list[Proc] = []
    try:
        upstreams = {}
        for service, version, *extra in UPSTREAMS:
            u = start_upstream(log_dir, service, version, *extra)
            started.append(u.proc)
            upstreams[u.name] = u
        # ratings v1 sits behind its own (inbound) sidecar: requests to it take two hops
        ratings = start_upstream(log_dir, "ratings", "v1")
        started.append(ratings.proc)
        inbound = start_sidecar(log_dir, "ratings", [], app=(ratings.address, ratings.port),
                                port=SERVICE_PORT)
        started.append(inbound.proc)
        registry = [u.instance() for u in upstreams.values()]
        registry.append({**ratings.instance(), "address": inbound.address, "port": inbound.port})
        sidecar = start_sidecar(log_dir, "productpage", registry)
        started.append(sidecar.proc)
        for u in [*upstreams.values(), ratings]:
            wait_upstream_ready(u)
        wait_sidecar_ready(inbound)
        wait_sidecar_ready(sidecar)
        upstreams[ratings.name] = ratings
        yield Mesh(upstreams, sidecar, inbound)
    finally:
        for proc in reversed(started):
            proc.stop()


def pytest_runtest_makereport(item, call):
    """On a failed e2e test, attach the sidecar's log tail to the report."""
    if call.when == "call" and call.excinfo is not None and "mesh" in item.fixturenames:
        mesh = item.funcargs.get("mesh")
        if isinstance(mesh, Mesh):
            item.add_report_section("call", "sidecar log", mesh.sidecar.proc.log_tail(60))


