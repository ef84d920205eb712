"""Runnable example workloads for trimesh: BookInfo, an httpbin-like service, sleep and a load client.

These are applications that run *inside* the mesh, next to a sidecar, the way the Istio docs' samples
do. They are not part of the installed ``trimesh`` package: run them from a checkout, for example

    python -m examples.bookinfo.productpage --address 127.0.0.5 --port 9080

Every server is a small Trio + h11 program built on :mod:`examples._server`; upstream calls go through
:mod:`examples._client`, which sends absolute-form requests to ``HTTP_PROXY`` (the sidecar's outbound
listener) when it is set.
"""

from ._workloads import BOOKINFO as BOOKINFO
from ._workloads import HTTPBIN as HTTPBIN
from ._workloads import Workload as Workload
