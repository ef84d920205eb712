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
            str(admin), "--control", "none", "--health-checks", "off", "--seed", "3"]
    if ca_file is not None:
        argv += ["--egress-ca-file", str(ca_file)]
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


TCP_RULE = """apiVersion: config.istio.io/v1alpha2
kind: EgressRule
metadata:
  name: localhost-tcp-egress
spec:
  destination:
    service: localhost
  ports:
  - port: {port}
    protocol: tcp
"""


def test_tcp_egress_through_connect_under_an_egress_rule(tmp_path):
    """TCP egress (issue 15 with the protocols issue): an EgressRule with a ``tcp`` port lets the
    app ``CONNECT localhost:PORT`` through its sidecar to an external byte-echo server, bytes
    and half-close relayed; a port the rule does not list gets 404 NR."""
    import socket
    import sys
    from pathlib import Path

    echo_port = free_port("127.0.0.1")
    echo = spawn("tcp-echo", [sys.executable, str(Path(__file__).with_name("tcp_echo.py")),
                              "127.0.0.1", str(echo_port)], tmp_path)
    rule = tmp_path / "tcp-egress.yaml"
    rule.write_text(TCP_RULE.format(port=echo_port))
    proc = None
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", echo_port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        proc, proxy = _sidecar(tmp_path, None, rule)  # TCP egress needs no egress CA file

        def connect(target: str) -> tuple[socket.socket, bytes]:
            s = socket.create_connection((SIDECAR, proxy), timeout=10)
            s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
            head = b""
            while b"\r\n\r\n" not in head:
                data = s.recv(4096)
                if not data:
                    break
                head += data
            return s, head

        s, head = connect(f"localhost:{echo_port}")
        assert head.startswith(b"HTTP/1.1 200"), head
        payload = bytes(range(256)) * 4000  # 1 MB
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)  # half-close: the echo still answers everything
        back = bytearray()
        while True:
            data = s.recv(65536)
            if not data:
                break
            back += data
        s.close()
        assert bytes(back) == payload
        other = echo_port + 1 if echo_port < 65535 else echo_port - 1
        s, head = connect(f"localhost:{other}")
        s.close()
        assert head.startswith(b"HTTP/1.1 404") and b"x-trimesh-response-flags: NR" in head
    finally:
        if proc is not None:
            proc.stop()
        echo.stop()

