"""Issue 12, items 2–3 with real processes on 127.0.160.x: ``trimesh run ca`` and sidecars with
the cert agent. The files on disk, ``openssl verify`` of the chain, a token for another identity,
``trimesh ca token`` / ``list`` / ``root``, and a short real-time rotation (4 s certificates)."""

from __future__ import annotations

import stat
import subprocess

import httpx
import pytest
from cryptography import x509
from e2e_harness import require_tool, wait_until
from procs import free_port, spawn, trimesh_command

CA_ADDRESS = "127.0.160.1"


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e-ca")
    port = free_port(CA_ADDRESS)
    proc = spawn("ca", trimesh_command() + [
        "run", "ca", "--address", CA_ADDRESS, "--port", str(port), "--state-dir",
        str(root / "state"), "--workload-cert-ttl", "1h", "--max-workload-cert-ttl", "2h"], root)
    try:
        wait_until(lambda: "ca ready on" in proc.log_tail(), 20, "the CA's ready line", proc)
        yield {"url": f"http://{CA_ADDRESS}:{port}", "state": root / "state", "root": root,
               "proc": proc}
    finally:
        proc.stop()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(trimesh_command() + list(args), capture_output=True, text=True,
                          timeout=30)


def _token(ca, account: str) -> str:
    out = _cli("ca", "token", "--service-account", account, "--state-dir", str(ca["state"]),
               "--ttl", "10m")
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def _sidecar(ca, name: str, n: int, account: str, token: str, *extra: str):
    address = f"127.0.160.{n}"
    token_file = ca["root"] / f"{name}.token"
    token_file.write_text(token + "\n")
    admin = free_port(address)
    proc = spawn(name, trimesh_command() + [
        "run", "sidecar", "--service", name, "--service-account", account, "--address", address,
        "--port", str(free_port(address)), "--app-port", str(free_port("127.0.0.1")),
        "--proxy-port", str(free_port(address)), "--admin-port", str(admin), "--control", "none",
        "--health-checks", "off", "--ca", ca["url"], "--ca-token-file", str(token_file),
        "--cert-dir", str(ca["root"] / name), *extra], ca["root"])
    return proc, f"http://{address}:{admin}", ca["root"] / name


def test_a_sidecar_gets_its_certificate_files(ca):
    proc, admin, cert_dir = _sidecar(ca, "reviews", 2, "bookinfo-reviews",
                                     _token(ca, "bookinfo-reviews"))
    try:
        wait_until(lambda: httpx.get(f"{admin}/ready", timeout=2).status_code == 200, 30,
                   "the sidecar with a certificate to be ready", proc)
        certs = httpx.get(f"{admin}/certs", timeout=2).json()
    finally:
        proc.stop()
    assert certs["identity"] == "spiffe://cluster.local/ns/default/sa/bookinfo-reviews"
    assert stat.S_IMODE((cert_dir / "key.pem").stat().st_mode) == 0o600
    leaf = x509.load_pem_x509_certificates((cert_dir / "cert-chain.pem").read_bytes())[0]
    assert f"{leaf.serial_number:x}" == certs["serial"]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [type(n) for n in san] == [x509.UniformResourceIdentifier]
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [certs["identity"]]
    openssl = require_tool("openssl")
    out = subprocess.run([openssl, "verify", "-CAfile", str(cert_dir / "root-cert.pem"),
                          str(cert_dir / "cert-chain.pem")], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0 and out.stdout.strip().endswith(": OK"), out.stdout + out.stderr
    listing = _cli("ca", "list", "--ca", ca["url"])
    assert listing.returncode == 0 and certs["serial"] in listing.stdout, listing.stderr
    root = _cli("ca", "root", "--ca", ca["url"])
    assert root.stdout.encode() == (cert_dir / "root-cert.pem").read_bytes()


def test_a_token_for_another_account_leaves_the_sidecar_not_ready(ca):
    proc, admin, cert_dir = _sidecar(ca, "ratings", 3, "bookinfo-ratings",
                                     _token(ca, "bookinfo-reviews"))
    try:
        body = wait_until(lambda: (lambda r: r.status_code == 503 and "token allows" in r.text
                                   and r.text)(httpx.get(f"{admin}/ready", timeout=2)),
                          30, "a not-ready answer naming why", proc)
        log = proc.log_tail()
    finally:
        proc.stop()
    assert "default/bookinfo-reviews, not spiffe://cluster.local/ns/default/sa/bookinfo-ratings" \
        in body
    assert "cannot get a certificate" in log and "retrying in" in log
    assert not (cert_dir / "key.pem").exists()


def test_short_certificates_rotate_in_real_time(ca):
    proc, admin, cert_dir = _sidecar(ca, "details", 4, "bookinfo-details",
                                     _token(ca, "bookinfo-details"), "--cert-ttl", "4s")
    try:
        first = wait_until(lambda: httpx.get(f"{admin}/certs", timeout=2).json()["serial"], 30,
                           "a first certificate", proc)
        later = wait_until(lambda: (lambda c: c["renewals"] >= 1 and c)(
            httpx.get(f"{admin}/certs", timeout=2).json()), 15, "a renewal", proc)
    finally:
        proc.stop()
    assert later["serial"] != first
    assert later["not_after"] - later["not_before"] <= 5
    leaf = x509.load_pem_x509_certificates((cert_dir / "cert-chain.pem").read_bytes())[0]
    assert f"{leaf.serial_number:x}" != first
