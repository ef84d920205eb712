"""Issue 3 acceptance, real processes: traffic mirroring (the docs' httpbin task).

httpbin v1 and v2 answer normally; httpbin v3 never answers (the hanging mirror)."""

from __future__ import annotations

import statistics
import subprocess
import time
import uuid

import httpx
from e2e_harness import dump_rules, require_tool, rule, served_by, wait_until

# The mirroring task's rules (guides §8.3–8.4), verbatim apart from the namespace
RULES_MIRROR = """\
apiVersion: config.istio.io/v1alpha2
kind: RouteRule
metadata:
  name: httpbin-default-v1
spec:
  destination:
    name: httpbin
  precedence: 5
  route:
  - labels:
      version: v1
---
apiVersion: config.istio.io/v1alpha2
kind: RouteRule
metadata:
  name: mirror-traffic-to-httbin-v2
spec:
  destination:
    name: httpbin
  precedence: 11
  route:
  - labels:
      version: v1
    weight: 100
  - labels:
      version: v2
    weight: 0
  mirror:
    name: httpbin
    labels:
      version: v2
"""


def test_both_versions_see_each_request_and_the_mirror_host_is_shadow(mesh):
    """The docs' task with curl as the client (one curl, 20 URLs on a keep-alive connection
    through the outbound proxy)."""
    curl = require_tool("curl")
    mesh.apply(RULES_MIRROR)
    tag = uuid.uuid4().hex
    paths = [f"/headers/{tag}/{i}" for i in range(20)]
    urls = [arg for p in paths for arg in ("-o", "/dev/null", f"http://httpbin:9080{p}")]
    out = subprocess.run([curl, "-s", "-x", mesh.sidecar.proxy_url, "-w",
                          "%{http_code} %header{x-upstream-name}\n", *urls],
                         capture_output=True, text=True, timeout=30)
    assert out.stdout.splitlines() == ["200 httpbin-v1"] * 20, out.stdout
    v1 = [q for q in mesh.upstreams["httpbin-v1"].requests() if tag in q["path"]]
    assert sorted(q["path"] for q in v1) == sorted(paths)
    assert {q["headers"]["host"] for q in v1} == {"httpbin:9080"}  # the primary keeps its Host

    def mirrored():  # fire-and-forget: the copies may land just after the answers
        got = [q for q in mesh.upstreams["httpbin-v2"].requests() if tag in q["path"]]
        return got if len(got) >= 20 else None

    v2 = wait_until(mirrored, 5.0, "20 mirrored requests at httpbin-v2")
    assert sorted(q["path"] for q in v2) == sorted(paths)
    # Envoy's shadow host: "-shadow" goes on the host name, before the port
    assert {q["headers"]["host"] for q in v2} == {"httpbin-shadow:9080"}


def test_a_hanging_mirror_changes_neither_status_nor_latency(mesh):
    """Interleave requests that are mirrored to the hanging v3 with requests that are not (same
    config, chosen by a header), and compare median latencies."""
    route_v1 = [{"labels": {"version": "v1"}}]
    mesh.apply(dump_rules(
        rule("httpbin-mirror-hang", "httpbin", route_v1, 6,
             match={"request": {"headers": {"x-mirror": {"exact": "yes"}}}},
             mirror={"name": "httpbin", "labels": {"version": "v3"}}),
        rule("httpbin-default-v1", "httpbin", route_v1, 5)))
    tag = uuid.uuid4().hex
    plain: list[float] = []
    mirrored: list[float] = []
    statuses = set()
    with httpx.Client(base_url=mesh.sidecar.proxy_url, headers={"host": "httpbin:9080"},
                      timeout=10) as client:
        client.get("/warm")
        for i in range(60):
            for sink, headers in ((plain, {}), (mirrored, {"x-mirror": "yes"})):
                start = time.perf_counter()
                r = client.get(f"/hang/{tag}/{i}", headers=headers)
                sink.append(time.perf_counter() - start)
                statuses.add((r.status_code, served_by(r)))
    assert statuses == {(200, "httpbin-v1")}
    added = statistics.median(mirrored) - statistics.median(plain)
    print(f"median latency plain {statistics.median(plain) * 1e3:.2f} ms, "
          f"mirrored to a hanging instance {statistics.median(mirrored) * 1e3:.2f} ms")
    assert added < 0.005, f"a hanging mirror added {added * 1e3:.1f} ms to the median"
    hung = wait_until(lambda: sum(1 for q in mesh.upstreams["httpbin-v3"].requests()
                                  if tag in q["path"]) or None, 5.0, "mirrored copies at v3")
    assert hung >= 1  # the mirror really was sent (and never answered)
