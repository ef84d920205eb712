"""Fixtures of the demo's end-to-end tests: one real mesh per test module (trimesh.demo's
launcher), driven through the ``trimesh`` command as a user would.

Each module uses its own loopback block so a ``trimesh demo`` running on this machine (127.0.10.x)
and the other suites (e2e: 127.77.x) never collide:

====================  ==========
module                block
====================  ==========
test_demo_tasks       127.0.12
test_demo_mirroring   127.0.13
test_demo_cli         127.0.15, 127.0.16
====================  ==========
"""

from __future__ import annotations

import pytest
from demo_testkit import start_mesh, stop_mesh

from trimesh.demo import DemoMesh
from trimesh.samples import BOOKINFO


@pytest.fixture(scope="module")
def bookinfo_mesh(tmp_path_factory):
    """BookInfo (productpage, details, reviews v1/v2/v3, ratings) with sidecars and a control."""
    mesh = start_mesh(BOOKINFO, "127.0.12",
                      tmp_path_factory.mktemp("bookinfo-mesh"))
    yield mesh
    stop_mesh(mesh)


def pytest_runtest_makereport(item, call):
    """On a failure, attach the entry sidecar's log (app output included) to the report."""
    if call.when == "call" and call.excinfo is not None:
        for name in ("bookinfo_mesh", "httpbin_mesh"):
            mesh = item.funcargs.get(name)
            if isinstance(mesh, DemoMesh):
                for proc in list(mesh.sidecars.values())[:1]:
                    item.add_report_section("call", f"{proc.name} log", proc.log_tail(40))
