"""Issue 13 with issue 12: the docs' "secure access control with service accounts"
(telemetry-security.md §12, behaviour 58) with real processes in 127.0.171.0/24.

A control (config API, CA and Mixer in one process), a fake ``details`` app behind its sidecar,
and two callers — productpage (service account ``bookinfo-productpage``) and reviews
(``bookinfo-reviews``) — all with certificates from the control's CA and a MeshConfig with
``authPolicy: MUTUAL_TLS``. The docs' ``denyproductpage`` rule, created with ``trimesh create
-f``, makes productpage → details fail with 403 and the exact 67-byte body, while reviews →
details passes; deleting it restores access. The identity comes from the verified client
certificate only (Mixer's ``source.user``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from e2e_harness import Proc, free_port, spawn, trimesh_command, wait_until

BLOCK = "127.0.171"
CONTROL, DETAILS_APP, DETAILS, PRODUCTPAGE, REVIEWS = (f"{BLOCK}.{i}" for i in (1, 2, 3, 4, 5))
PORT = 9080
READY = 30.0

# samples/bookinfo/kube/mixer-rule-deny-serviceaccount.yaml, with the docs' match (L2251)
DENY_SERVICE_ACCOUNT = """\
apiVersion: config.istio.io/v1alpha2
kind: denier
metadata:
  name: denyproductpagehandler
spec:
  status:
    code: 7
    message: Not allowed
---
apiVersion: config.istio.io/v1alpha2
kind: checknothing
metadata:
  name: denyproductpagerequest
spec:
---
apiVersion: config.istio.io/v1alpha2
kind: rule
metadata:
  name: denyproductpage
spec:
  match: destination.labels["app"] == "details" && source.user == "cluster.local/ns/default/sa/bookinfo-productpage"
  actions:
  - handler: denyproductpagehandler.denier.default
    instances: [ denyproductpagerequest.checknothing.default ]
"""

MESH = """\
apiVersion: config.istio.io/v1alpha2
kind: MeshConfig
metadata:
  name: mesh
  namespace: istio-system
spec:
  authPolicy: MUTUAL_TLS
"""


class World:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.procs: list[Proc] = []
        self.url = f"http://{CONTROL}:{free_port(CONTROL)}"
        self.ca_port, self.mixer_port = free_port(CONTROL), free_port(CONTROL)
        self.proxies: dict[str, int] = {}

    def spawn(self, name: str, argv: list[str]) -> Proc:
        proc = spawn(name, argv, self.root)
        self.procs.append(proc)
        return proc

    def cli(self, *args: str, text: str | None = None) -> subprocess.CompletedProcess:
        argv = list(args)
        if text is not None:
            path = self.root / f"doc-{time.monotonic_ns()}.yaml"
            path.write_text(text)
            argv += ["-f", str(path)]
        return subprocess.run(trimesh_command() + argv, capture_output=True, text=True,
                              timeout=30, env={**os.environ, "TRIMESH_CONTROL": self.url})

    def sidecar(self, service: str, address: str, account: str, app: tuple[str, int]) -> str:
        registry = self.root / "registry.yaml"
        admin, proxy = free_port(address), free_port(address)
        self.proxies[service] = proxy
        self.spawn(service, trimesh_command() + [
            "run", "sidecar", "--service", service, "--version", "v1", "--service-account",
            account, "--port", str(PORT), "--address", address, "--app-address", app[0],
            "--app-port", str(app[1]), "--proxy-port", str(proxy), "--admin-port", str(admin),
            "--registry", str(registry), "--control", self.url,
            "--mixer", f"{CONTROL}:{self.mixer_port}", "--ca", f"http://{CONTROL}:{self.ca_port}",
            "--ca-token-file", str(self.root / "state" / "mesh-token"), "--cert-dir",
            str(self.root / f"{service}-certs"), "--drain-timeout", "1",
            "--access-log", str(self.root / f"{service}-access.log")])
        return f"http://{address}:{admin}"

    def call_details(self, caller: str) -> httpx.Response:
        address = PRODUCTPAGE if caller == "productpage" else REVIEWS
        return httpx.get(f"http://{address}:{self.proxies[caller]}/details/0",
                         headers={"host": f"details:{PORT}"}, timeout=10)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = World(tmp_path_factory.mktemp("e2e-access"))
    try:
        control = w.spawn("control", trimesh_command() + [
            "run", "control", "--state-dir", str(w.root / "state"), "--address", CONTROL,
            "--config-port", w.url.rsplit(":", 1)[1], "--no-gossip",
            "--ca-port", str(w.ca_port), "--mixer-port", str(w.mixer_port)])
        wait_until(lambda: httpx.get(f"{w.url}/v1/version", timeout=1).status_code == 200,
                   READY, "the control", control)
        wait_until(lambda: (w.root / "state" / "mesh-token").exists(), READY, "the mesh token",
                   control)
        out = w.cli("create", text=MESH)
        assert out.returncode == 0, out.stderr
        (w.root / "registry.yaml").write_text(yaml.safe_dump([
            {"service": "details", "address": DETAILS, "port": PORT,
             "serviceAccount": "bookinfo-details", "labels": {"version": "v1"}}]))
        app_port = free_port(DETAILS_APP)
        w.spawn("details-app", [sys.executable, "-m", "trimesh.testing.upstream", "--address",
                                DETAILS_APP, "--port", str(app_port), "--name", "details-v1",
                                "--service", "details", "--version", "v1"])
        admins = [w.sidecar("details", DETAILS, "bookinfo-details", (DETAILS_APP, app_port)),
                  w.sidecar("productpage", PRODUCTPAGE, "bookinfo-productpage",
                            (PRODUCTPAGE, free_port(PRODUCTPAGE))),
                  w.sidecar("reviews", REVIEWS, "bookinfo-reviews", (REVIEWS, free_port(REVIEWS)))]
        for admin, proc in zip(admins, [p for p in w.procs if p.name != "details-app"][1:]):
            wait_until(lambda a=admin: httpx.get(f"{a}/ready", timeout=2).status_code == 200,
                       READY, f"{proc.name} ready", proc)
        wait_until(lambda: httpx.get(f"{admins[0]}/stats", timeout=2).json()["mtls"]["inbound"],
                   READY, "details requiring mutual TLS")
        w.details_admin = admins[0]
        yield w
    finally:
        for proc in reversed(w.procs):
            proc.stop()


def test_the_service_account_denier_refuses_productpage_only_and_deleting_it_restores(world):
    assert world.call_details("productpage").status_code == 200  # no rule yet
    out = world.cli("create", text=DENY_SERVICE_ACCOUNT)
    assert out.returncode == 0, out.stderr
    assert "Created config rule/default/denyproductpage at revision" in out.stdout

    def denied():
        r = world.call_details("productpage")
        return r if r.status_code == 403 else None

    r = wait_until(denied, 10, "productpage denied")
    # the docs' transcript: content-length 67, the body exactly as Mixer words it
    assert r.text == "PERMISSION_DENIED:denyproductpagehandler.denier.default:Not allowed"
    assert len(r.content) == 67 and r.headers["content-length"] == "67"
    assert r.headers["content-type"].startswith("text/plain")
    other = world.call_details("reviews")
    assert other.status_code == 200 and other.json()["name"] == "details-v1"
    # the identity is the verified certificate's: the app never saw the denied call
    assert "details-v1" not in r.text
    out = world.cli("delete", text=DENY_SERVICE_ACCOUNT)
    assert out.returncode == 0, out.stderr
    began = time.monotonic()
    wait_until(lambda: world.call_details("productpage").status_code == 200, 5,
               "productpage allowed again")
    assert time.monotonic() - began < 2.5
