"""Issue 10's request-id and attempts-header acceptance, in real processes.

- The inbound proxy adds ``x-request-id`` when the request has none, and the app sees it (a fake
  upstream behind a sidecar echoes the headers it got); a given id is passed on unchanged.
- A three-hop chain of apps that forward ``x-request-id`` (BookInfo: productpage -> reviews v2 ->
  ratings, each app the child of its own sidecar, calling through its HTTP_PROXY; a static
  registry) shows ONE id in every access-log line of every sidecar for one client request, whether
  the client sent an id or not. Without the inbound generating it, productpage gets none and its
  outbound proxy makes up a fresh id per call, so the first hop's line and the later ones differ.
- Every response the client sees carries ``x-trimesh-attempts`` once, also when the callee's
  sidecar made the reply itself (a 503 because its app is down) and the client's sidecar relays
  it, with or without retries.
"""

from __future__ import annotations

import sys

import pytest
from e2e_fleet import (ATTEMPTS_HEADER, access_lines, instance, next_address, require_sidecar,
                       start_app, start_node, stop_all, wait_access_lines, wait_ready)
from e2e_harness import Upstream
from procs import free_port

from trimesh.samples._client import Proxy, fetch

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

GIVEN_ID = "e2e-given-request-id-1"
RETRY_RULE = """\
apiVersion: config.istio.io/v1alpha2
kind: RouteRule
metadata:
  name: gone-retry
  namespace: default
spec:
  destination:
    name: gone-retry
  precedence: 1
  httpReqRetries:
    simpleRetry:
      attempts: 3
"""


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """An ``echo`` instance (fake upstream app + its sidecar), a ``gone`` instance (a sidecar whose
    app is not running; ``gone-retry`` is the same instance under a retry rule) and a client
    sidecar whose static registry lists them."""
    require_sidecar()
    log_dir = tmp_path_factory.mktemp("request-id")
    procs = []
    try:
        app = start_app(log_dir, "echo-app", next_address())
        procs.append(app.proc)
        echo = start_node(log_dir, "echo", "echo", address=app.address,
                          app=(app.address, app.port))
        gone = start_node(log_dir, "gone", "gone")  # nothing listens on its app port
        procs += [echo.proc, gone.proc]
        client = start_node(log_dir, "client", "client", config=RETRY_RULE, instances=[
            instance("echo", echo.address), instance("gone", gone.address),
            instance("gone-retry", gone.address)])
        procs.append(client.proc)
        wait_ready(apps=[app], sidecars=[echo, gone, client])
        yield {"log_dir": log_dir, "echo": echo, "gone": gone, "client": client}
    finally:
        stop_all(procs)


@pytest.mark.parametrize("given", [None, GIVEN_ID], ids=["absent", "given"])
async def test_inbound_adds_request_id_the_app_sees(pair, given):
    echo = pair["echo"]
    path = f"/inbound-id-{'given' if given else 'absent'}"
    headers = [("x-request-id", given)] if given else []
    response = await fetch(f"http://{echo.address}:{echo.port}{path}", headers=headers,
                           timeout=10)
    assert response.status == 200, response
    seen = response.json()["headers"].get("x-request-id")
    lines = wait_access_lines(pair["log_dir"], ["echo"],
                              lambda ls: any(r["path"] == path for r in ls["echo"]),
                              f"echo's access-log line for {path}")
    logged = [r["request_id"] for r in lines["echo"] if r["path"] == path]
    print(f"client sent x-request-id {given}; the app saw {seen!r}; echo's inbound logged "
          f"{logged}")
    if given:
        assert seen == given
    else:
        assert seen, "the inbound proxy passed a request without x-request-id to the app"
    assert logged == [seen], "the inbound's access-log line names another id than the app saw"


@pytest.mark.parametrize("service, status", [("echo", 200), ("gone", 503), ("gone-retry", 503)])
async def test_one_attempts_header_per_response(pair, service, status):
    client = pair["client"]
    response = await fetch(f"http://{service}:9080/attempts-header", timeout=10,
                           proxy=Proxy(client.address, client.proxy_port))
    values = [v for k, v in response.headers if k == ATTEMPTS_HEADER]
    print(f"{service} through the client's sidecar: {response.status}, {ATTEMPTS_HEADER} "
          f"{values}; headers {response.headers}")
    assert response.status == status
    assert len(values) == 1, f"{ATTEMPTS_HEADER} appears {len(values)} times: {values}"


# -- the three-hop chain -----------------------------------------------------------------------

CHAIN = [  # (service, version, the example app's module and arguments)
    ("productpage", "v1", ["trimesh.samples.bookinfo.productpage"]),
    ("reviews", "v2", ["trimesh.samples.bookinfo.reviews", "--version", "v2"]),
    ("ratings", "v1", ["trimesh.samples.bookinfo.ratings"]),
]
CHAIN_PATH = "/api/v1/products/0/reviews"  # productpage -> reviews v2 -> ratings


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    require_sidecar()
    log_dir = tmp_path_factory.mktemp("chain")
    addresses = {service: next_address() for service, _, _ in CHAIN}
    registry = [instance(service, addresses[service], version=version)
                for service, version, _ in CHAIN]
    procs = []
    nodes = {}
    apps = []
    try:
        for service, version, app_args in CHAIN:
            address = addresses[service]
            app_port = free_port(address)
            nodes[service] = start_node(
                log_dir, service, service, address=address, app=(address, app_port),
                instances=registry, version=version,
                app_argv=[sys.executable, "-m", *app_args, "--address", address,
                          "--port", str(app_port)])
            procs.append(nodes[service].proc)
            # the app runs as the sidecar's child; its readiness is its port
            apps.append(Upstream(f"{service} app", service, version, address, app_port,
                                 nodes[service].proc))
        wait_ready(sidecars=list(nodes.values()))
        wait_ready(apps=apps)
        yield {"log_dir": log_dir, "nodes": nodes}
    finally:
        stop_all(procs)


@pytest.mark.parametrize("given", [None, GIVEN_ID + "-chain"], ids=["absent", "given"])
async def test_three_hops_log_one_request_id(chain, given):
    log_dir, front = chain["log_dir"], chain["nodes"]["productpage"]
    names = [service for service, _, _ in CHAIN]
    before = {n: len(access_lines(log_dir, n)) for n in names}
    headers = [("x-request-id", given)] if given else []
    response = await fetch(f"http://{front.address}:{front.port}{CHAIN_PATH}", headers=headers,
                           timeout=15)
    assert response.status == 200, response
    reviews = response.json()["reviews"]
    assert all("stars" in r.get("rating", {}) for r in reviews), reviews  # ratings was reached
    # productpage: inbound + outbound to reviews; reviews: inbound + outbound to ratings;
    # ratings: inbound.
    expected = {"productpage": 2, "reviews": 2, "ratings": 1}
    total = sum(before.values()) + sum(expected.values())
    lines = wait_access_lines(log_dir, names, lambda ls: sum(map(len, ls.values())) >= total,
                              "the chain's access-log lines")
    new = {n: lines[n][before[n]:] for n in names}
    shown = "\n".join(f"  {n}: {r['direction']} {r['authority']}{r['path']} {r['status']} "
                      f"request_id {r['request_id']}" for n in names for r in new[n])
    print(f"client sent x-request-id {given}; the chain logged:\n{shown}")
    assert {n: len(v) for n, v in new.items()} == expected, shown
    ids = {r["request_id"] for v in new.values() for r in v}
    assert len(ids) == 1 and "-" not in ids, f"not one request id over the chain:\n{shown}"
    if given:
        assert ids == {given}, shown
    attempts = [v for k, v in response.headers if k == ATTEMPTS_HEADER]
    assert len(attempts) <= 1, f"{ATTEMPTS_HEADER} {attempts} on the first hop's response"
