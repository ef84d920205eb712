"""``trimesh run ingress`` as a real process in front of the httpbin sample (traffic-tasks.md §6:
IN1, IN2, IN3, IN7, IN10 and the bad-certificate error), with curl as the client."""

from __future__ import annotations

import ssl
import subprocess
import sys
import time

import httpx
import pytest

from procs import free_port, spawn, trimesh_command, wait_until
from trimesh.samples import SAMPLES_DIR

from e2e_harness import require_tool

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ADDRESS = "127.0.210.1"  # the ingress
HTTPBIN = "127.0.210.2"
START_TIMEOUT = 30.0


@pytest.fixture
def ingress(tmp_path):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("foo.bar.com")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "tls.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "tls.key"))
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "tls.crt"))
    port = free_port(HTTPBIN)
    (tmp_path / "registry.yaml").write_text(
        f"- {{service: httpbin, address: {HTTPBIN}, port: {port}, labels: {{version: v1}}}}\n")
    (tmp_path / "ingress.yaml").write_bytes(
        (SAMPLES_DIR / "httpbin" / "ingress" / "simple-ingress.yaml").read_bytes())
    app = spawn("httpbin", [sys.executable, "-m", "trimesh.samples.httpbin", "--address", HTTPBIN,
                            "--port", str(port), "--quiet"], tmp_path)
    http, https, admin = (free_port(ADDRESS) for _ in range(3))
    proc = spawn("ingress", [*trimesh_command(), "run", "ingress", "--address", ADDRESS,
                             "--port", str(http), "--tls-port", str(https),
                             "--tls-cert", str(tmp_path / "tls.crt"),
                             "--tls-key", str(tmp_path / "tls.key"), "--admin-port", str(admin),
                             "--control", "none", "--registry", str(tmp_path / "registry.yaml"),
                             "--config", str(tmp_path / "ingress.yaml"), "--seed", "7"],
                 tmp_path)
    try:
        wait_until(lambda: httpx.get(f"http://{ADDRESS}:{admin}/ready").status_code == 200,
                   START_TIMEOUT, "the ingress /ready", proc)
        yield {"http": f"http://{ADDRESS}:{http}", "https": f"https://{ADDRESS}:{https}",
               "ca": ca, "proc": proc, "dir": tmp_path, "port": port}
    finally:
        proc.stop()
        app.stop()


def test_the_docs_ingress_task(ingress):
    curl = require_tool("curl")
    base = ingress["http"]
    head = subprocess.run([curl, "-s", "-I", f"{base}/status/200"], capture_output=True,
                          text=True, timeout=30).stdout.lower()
    assert head.startswith("http/1.1 200") and "x-envoy-upstream-service-time:" in head  # IN1
    r = httpx.get(f"{base}/headers")
    assert (r.status_code, r.headers["content-length"]) == (404, "0")  # IN2
    assert r.headers["x-trimesh-response-flags"] == "NR"
    assert httpx.get(f"{base}/status/418").status_code == 418  # IN3
    t0 = time.monotonic()
    assert httpx.get(f"{base}/delay/1", timeout=10).status_code == 200
    assert time.monotonic() - t0 >= 1.0
    assert httpx.get(f"{base}/status").status_code == 404
    # IN7: HTTPS with the given certificate, the same paths exposed
    ctx = ssl.create_default_context()
    ingress["ca"].configure_trust(ctx)
    ctx.check_hostname = False
    with httpx.Client(verify=ctx) as client:
        r = client.get(f"{ingress['https']}/status/200")
        assert r.status_code == 200
        assert client.get(f"{ingress['https']}/headers").status_code == 404
    pem = ssl.get_server_certificate((ADDRESS, int(ingress["https"].rsplit(":", 1)[1])))
    from cryptography import x509
    sans = x509.load_pem_x509_certificate(pem.encode()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert sans == ["foo.bar.com"]
    out = subprocess.run([curl, "-sk", f"{ingress['https']}/status/200", "-o", "/dev/null",
                          "-w", "%{http_code}"], capture_output=True, text=True, timeout=30)
    assert out.stdout == "200"
    # HTTP/2 at the edge: ALPN h2 over the same certificate, and prior knowledge on plain HTTP
    for flag, url in (("--http2", f"{ingress['https']}/status/200"),
                      ("--http2-prior-knowledge", f"{base}/status/200")):
        out = subprocess.run([curl, "-sk", flag, url, "-o", "/dev/null",
                              "-w", "%{http_code} %{http_version}"], capture_output=True,
                             text=True, timeout=30)
        assert out.stdout == "200 2", (flag, out.stdout, out.stderr)


def test_a_certificate_that_does_not_match_its_key_is_a_clear_error(tmp_path):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    ca.issue_cert("a.example").cert_chain_pems[0].write_to_path(str(tmp_path / "a.crt"))
    ca.issue_cert("b.example").private_key_pem.write_to_path(str(tmp_path / "b.key"))
    result = subprocess.run([*trimesh_command(), "run", "ingress", "--address", ADDRESS,
                             "--port", "0", "--tls-port", "0", "--admin-port", "0",
                             "--tls-cert", str(tmp_path / "a.crt"),
                             "--tls-key", str(tmp_path / "b.key"), "--control", "none"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "a.crt" in result.stderr and "b.key" in result.stderr, result.stderr


def test_route_rules_at_the_ingress(tmp_path):
    """IN8: with the docs' ``status-route`` (a 4 s timeout on ``/delay/`` for requests whose
    source is the ingress, ``istio-ingress`` ``{istio: ingress}``), ``/delay/10`` through the
    ingress is cut at 4 s with a 504, ``/status/200`` through it is unaffected, and the same
    kind of request from a workload inside the mesh (here the ``sleep`` sidecar, ``/delay/5`` to
    keep the test short) does not match the rule and gets its 200 after the whole delay."""
    host, ingress_address, sleep_address = "127.0.210.11", "127.0.210.12", "127.0.210.13"
    port = free_port(host)
    registry = tmp_path / "registry.yaml"
    registry.write_text(
        f"- {{service: httpbin, address: {host}, port: {port}, labels: {{version: v1}}}}\n")
    rules = tmp_path / "rules.yaml"
    rules.write_bytes((SAMPLES_DIR / "httpbin" / "ingress" / "simple-ingress.yaml").read_bytes()
                      + b"\n---\n"
                      + (SAMPLES_DIR / "httpbin" / "routerules" / "status-route.yaml").read_bytes())
    app = spawn("httpbin", [sys.executable, "-m", "trimesh.samples.httpbin", "--address", host,
                            "--port", str(port), "--quiet"], tmp_path)
    http, admin = free_port(ingress_address), free_port(ingress_address)
    ingress = spawn("ingress", [*trimesh_command(), "run", "ingress", "--address",
                                ingress_address, "--port", str(http), "--admin-port", str(admin),
                                "--control", "none", "--registry", str(registry),
                                "--config", str(rules)], tmp_path)
    proxy, sleep_admin = free_port(sleep_address), free_port(sleep_address)
    sleep = spawn("sleep", [*trimesh_command(), "run", "sidecar", "--service", "sleep",
                            "--address", sleep_address, "--port", str(free_port(sleep_address)),
                            "--app-address", sleep_address, "--app-port", "9",
                            "--proxy-port", str(proxy), "--admin-port", str(sleep_admin),
                            "--control", "none", "--registry", str(registry),
                            "--config", str(rules)], tmp_path)
    try:
        for addr, port, proc in ((ingress_address, admin, ingress),
                                 (sleep_address, sleep_admin, sleep)):
            wait_until(lambda: httpx.get(f"http://{addr}:{port}/ready").status_code == 200,
                       START_TIMEOUT, f"{proc.name} /ready", proc)
        base = f"http://{ingress_address}:{http}"
        t0 = time.monotonic()
        cut = httpx.get(f"{base}/delay/10", timeout=20)
        elapsed = time.monotonic() - t0
        assert cut.status_code == 504 and cut.headers["x-trimesh-response-flags"] == "UT"
        assert 3.7 <= elapsed <= 4.3, elapsed  # the docs: 4.0 s ± 0.3 s
        assert httpx.get(f"{base}/status/200", timeout=10).status_code == 200
        t0 = time.monotonic()
        inside = httpx.get(f"http://{sleep_address}:{proxy}/delay/5",
                           headers={"host": "httpbin:8000"}, timeout=20)
        assert inside.status_code == 200 and time.monotonic() - t0 >= 5.0
    finally:
        sleep.stop()
        ingress.stop()
        app.stop()
