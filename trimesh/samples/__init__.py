"""The Istio docs' sample workloads and rule files, shipped with trimesh so ``trimesh demo`` works
from an installed wheel: BookInfo, an httpbin-like service, sleep and a fortio-like load client.

These are applications that run *inside* the mesh, next to a sidecar, the way the Istio docs'
samples do; run one as, for example,

    python -m trimesh.samples.bookinfo.productpage --address 127.0.0.5 --port 9080

Every server is a small Trio + h11 program built on :mod:`trimesh.samples._server`; upstream calls
go through :mod:`trimesh.samples._client`, which sends absolute-form requests to ``HTTP_PROXY`` (the
sidecar's outbound listener) when it is set. :data:`BOOKINFO` and :data:`HTTPBIN` list the
workloads for launchers (:mod:`._workloads`); the docs' rule files are package data under their
docs names, and :func:`write_rules` writes them out (:mod:`._rules`, ``trimesh demo --write-rules``).
"""

from ._client import FetchError as FetchError
from ._client import HttpConnection as HttpConnection
from ._client import Proxy as Proxy
from ._client import fetch as fetch
from ._client import split_url as split_url
from ._rules import BOOKINFO_RULES as BOOKINFO_RULES
from ._rules import DOCS_PREFIX as DOCS_PREFIX
from ._rules import SAMPLES_DIR as SAMPLES_DIR
from ._rules import rule_files as rule_files
from ._rules import write_rules as write_rules
from ._workloads import BOOKINFO as BOOKINFO
from ._workloads import HTTPBIN as HTTPBIN
from ._workloads import Workload as Workload
