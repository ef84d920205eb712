"""Egress with TLS origination through a real sidecar (issue 15's acceptance): an app calls
``http://localhost:PORT/`` through its sidecar; under an EgressRule for ``localhost`` with an
``https`` port the sidecar originates TLS (verified against ``--egress-ca-file``) and the app gets
the server's answer; without the rule it gets 404 NR."""

from __future__ import annotations

import http.server
import ssl
import threading
import time

import httpx
import pytest

from procs import free_port, spawn, trimesh_command

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SIDECAR = "127.0.211.1"
RULE = """apiVersion: config.istio.io/v1alpha2
kind: EgressRule
metadata:
  name: localhost-egress
spec:
  destination:
    service: localhost
  ports:
  - port: {port}
    protocol: https
"""


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        body = f"hello over TLS, you asked {self.path} for {self.headers['host']}".encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def https_server(tmp_path):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(ctx)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], tmp_path / "ca.pem"
    finally:
        server.shutdown()
        server.server_close()


def _sidecar(tmp_path, ca_file, config):
    proxy, admin = free_port(SIDECAR), free_port(SIDECAR)
    argv = [*trimesh_command(), "run", "sidecar", "--service", "sleep", "--address", SIDECAR,
            "--port", "0", "--app-port", "9", "--proxy-port", str(proxy), "--admin-port",
            str(admin), "--control", "none", "--health-checks", "off", "--seed", "3",
            "--egress-ca-file", str(ca_file)]
    if config is not None:
        argv += ["--config", str(config)]
    proc = spawn("sleep-sidecar", argv, tmp_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://{SIDECAR}:{admin}/ready").status_code == 200:
                return proc, proxy
        except httpx.HTTPError:
            pass
        assert proc.alive(), proc.log_tail()
        time.sleep(0.1)
    proc.stop()
    pytest.fail(f"the sidecar was not ready\n{proc.log_tail()}")


def test_the_sidecar_originates_tls_under_an_egress_rule(tmp_path, https_server):
    port, ca_file = https_server
    rule = tmp_path / "egress.yaml"
    rule.write_text(RULE.format(port=port))
    proc, proxy = _sidecar(tmp_path, ca_file, rule)
    try:
        with httpx.Client(proxy=f"http://{SIDECAR}:{proxy}", timeout=10) as app:
            r = app.get(f"http://localhost:{port}/status")  # plain HTTP from the app
            assert r.status_code == 200, r.text
            assert r.text == f"hello over TLS, you asked /status for localhost:{port}"
            r = app.get(f"http://localhost:{port + 1 if port < 65535 else port - 1}/")
            assert r.status_code == 404 and r.headers["x-trimesh-response-flags"] == "NR"
    finally:
        proc.stop()


def test_without_the_rule_the_app_gets_404_nr(tmp_path, https_server):
    port, ca_file = https_server
    proc, proxy = _sidecar(tmp_path, ca_file, None)
    try:
        with httpx.Client(proxy=f"http://{SIDECAR}:{proxy}", timeout=10) as app:
            r = app.get(f"http://localhost:{port}/")
            assert r.status_code == 404 and r.headers["x-trimesh-response-flags"] == "NR"
    finally:
        proc.stop()
