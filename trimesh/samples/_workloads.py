"""The example workloads as data: which service, version and port each is, and how to start it.

A mesh launcher (``trimesh demo``, the e2e tests) runs each as ``python -m <module> <args>`` with the
installed package (any working directory), behind a sidecar started with
``--service <service> --version <version> --port <port>``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Workload:
    service: str  # the mesh service name other services call (http://<service>:<port>/)
    version: str  # the `version` label
    module: str  # python -m target
    args: tuple[str, ...] = ()
    port: int = 9080  # the service port the docs use

    def argv(self, *, address: str = "127.0.0.1", port: int | None = None,
             python: str = sys.executable) -> list[str]:
        """The command line that runs this workload listening on ``address:port``."""
        return [python, "-m", self.module, "--address", address, "--port", str(self.port if port is None else port),
                *self.args]


BOOKINFO = (
    Workload("productpage", "v1", "trimesh.samples.bookinfo.productpage"),
    Workload("details", "v1", "trimesh.samples.bookinfo.details"),
    Workload("reviews", "v1", "trimesh.samples.bookinfo.reviews", ("--version", "v1")),
    Workload("reviews", "v2", "trimesh.samples.bookinfo.reviews", ("--version", "v2")),
    Workload("reviews", "v3", "trimesh.samples.bookinfo.reviews", ("--version", "v3")),
    Workload("ratings", "v1", "trimesh.samples.bookinfo.ratings"),
)

HTTPBIN = (
    Workload("httpbin", "v1", "trimesh.samples.httpbin", ("--version", "v1"), port=8000),
    Workload("httpbin", "v2", "trimesh.samples.httpbin", ("--version", "v2"), port=8000),
)
