"""Workload chains verify with real verifiers: ``openssl verify`` (the docs' check, L2565–L2573) and
a stdlib ``ssl`` mutual-TLS handshake (what the sidecars will run), self-signed and operator CA."""

from __future__ import annotations

import ssl
import subprocess
import time

import pytest
from ca_helpers import (NOW, PRODUCTPAGE, REVIEWS, ec_key, key_pem, operator_cert, operator_pki, pem,
                        require_tool, rsa_key, seeded_token_bytes, self_signed_ca)
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from trimesh.ca import CertificateAuthority, PemFile, identity_from_certificate, make_csr


def _blocks(data: bytes) -> list[bytes]:
    """PEM blocks of a file (the docs count lines, 18 and 22; the tests split blocks, §16.8 item 51)."""
    return [c.public_bytes(serialization.Encoding.PEM) for c in x509.load_pem_x509_certificates(data)]


def _openssl_verify(openssl: str, tmp_path, ca_file: bytes, leaf: bytes, *extra: str,
                    untrusted: bytes | None = None) -> subprocess.CompletedProcess:
    (tmp_path / "ca.pem").write_bytes(ca_file)
    (tmp_path / "leaf.pem").write_bytes(leaf)
    argv = [openssl, "verify", "-attime", str(int(NOW)), "-CAfile", str(tmp_path / "ca.pem"), *extra]
    if untrusted is not None:
        (tmp_path / "untrusted.pem").write_bytes(untrusted)
        argv += ["-untrusted", str(tmp_path / "untrusted.pem")]
    argv.append(str(tmp_path / "leaf.pem"))
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


def _issue(ca: CertificateAuthority, ident=PRODUCTPAGE, key=None, now=NOW):
    return ca.sign(make_csr(key or ec_key(1), ident), identity=ident, now=now)


@pytest.mark.parametrize("purpose", ["sslclient", "sslserver"])
@pytest.mark.parametrize("key", [lambda: ec_key(1), lambda: rsa_key(2048)], ids=["ecdsa", "rsa"])
def test_self_signed_chain_verifies_with_openssl(request, tmp_path, purpose, key):
    openssl = require_tool(request, "openssl")
    issued = _issue(self_signed_ca(), key=key())
    result = _openssl_verify(openssl, tmp_path, issued.root_pem, issued.chain_pem, "-purpose", purpose)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{tmp_path / 'leaf.pem'}: OK"


def test_operator_chain_verifies_as_the_docs_check_it(request, tmp_path):
    openssl = require_tool(request, "openssl")
    pki = operator_pki()
    issued = _issue(pki.authority())
    leaf, ca_cert = _blocks(issued.chain_pem)  # head: the workload cert; tail: ca-cert.pem
    assert ca_cert == _blocks(pki.files()["signing_cert"].data)[0]
    # openssl verify -CAfile <(cat ca-cert.pem root-cert.pem) pod-cert-chain-workload.pem
    ca_file = pki.files()["signing_cert"].data + pki.files()["root_cert"].data
    result = _openssl_verify(openssl, tmp_path, ca_file, leaf)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("leaf.pem: OK")
    # and as a TLS peer does: only the root trusted, the intermediate from the presented chain
    result = _openssl_verify(openssl, tmp_path, issued.root_pem, leaf, "-purpose", "sslclient",
                             untrusted=ca_cert)
    assert result.returncode == 0, result.stderr


def test_openssl_refuses_a_chain_from_another_ca(request, tmp_path):
    openssl = require_tool(request, "openssl")
    issued = _issue(self_signed_ca(key=ec_key(101)))
    result = _openssl_verify(openssl, tmp_path, operator_pki().files()["root_cert"].data, issued.chain_pem)
    assert result.returncode != 0
    assert "unable to get local issuer certificate" in result.stdout + result.stderr


def test_openssl_refuses_an_operator_leaf_without_its_intermediate(request, tmp_path):
    openssl = require_tool(request, "openssl")
    issued = _issue(operator_pki().authority())
    result = _openssl_verify(openssl, tmp_path, issued.root_pem, _blocks(issued.chain_pem)[0])
    assert result.returncode != 0


# -- a mutual-TLS handshake with the stdlib, as the sidecars will do it -----------------------


def _context(side: int, issued, key, tmp_path, name: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(side)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    (tmp_path / f"{name}-chain.pem").write_bytes(issued.chain_pem)
    (tmp_path / f"{name}-key.pem").write_bytes(key_pem(key))
    ctx.load_cert_chain(tmp_path / f"{name}-chain.pem", tmp_path / f"{name}-key.pem")
    ctx.load_verify_locations(cadata=issued.root_pem.decode())
    ctx.check_hostname = False  # secure naming replaces the host name check (docs L1921–L1927)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def _handshake(client_ctx: ssl.SSLContext, server_ctx: ssl.SSLContext):
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_side=False)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {client: False, server: False}
    for _ in range(20):  # a handshake takes a few flights
        for end in (client, server):
            if not done[end]:
                try:
                    end.do_handshake()
                    done[end] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return client, server
    raise AssertionError("the handshake did not finish")


@pytest.mark.parametrize("operator", [False, True], ids=["self-signed", "operator"])
def test_mutual_tls_handshake_and_peer_identities(tmp_path, operator):
    now = time.time()  # ssl checks validity against the real clock
    ca = _todays_operator_ca(now) if operator else self_signed_ca(now=now)
    ck, sk = ec_key(11), ec_key(12)
    client_cert = ca.sign(make_csr(ck, PRODUCTPAGE), identity=PRODUCTPAGE, now=now)
    server_cert = ca.sign(make_csr(sk, REVIEWS), identity=REVIEWS, now=now)
    client, server = _handshake(_context(ssl.PROTOCOL_TLS_CLIENT, client_cert, ck, tmp_path, "c"),
                                _context(ssl.PROTOCOL_TLS_SERVER, server_cert, sk, tmp_path, "s"))
    assert identity_from_certificate(server.getpeercert(binary_form=True)) == PRODUCTPAGE
    assert identity_from_certificate(client.getpeercert(binary_form=True)) == REVIEWS
    assert client.getpeercert()["subjectAltName"] == (("URI", REVIEWS.uri),)


def test_a_client_from_a_foreign_ca_is_refused(tmp_path):
    now = time.time()
    mesh, foreign = self_signed_ca(now=now), self_signed_ca(key=ec_key(102), now=now)
    ck, sk = ec_key(11), ec_key(12)
    client_cert = foreign.sign(make_csr(ck, PRODUCTPAGE), identity=PRODUCTPAGE, now=now)
    server_cert = mesh.sign(make_csr(sk, REVIEWS), identity=REVIEWS, now=now)
    client_ctx = _context(ssl.PROTOCOL_TLS_CLIENT, client_cert, ck, tmp_path, "c")
    client_ctx.load_verify_locations(cadata=mesh.root_pem.decode())  # the client trusts the server
    with pytest.raises(ssl.SSLError):
        _handshake(client_ctx, _context(ssl.PROTOCOL_TLS_SERVER, server_cert, sk, tmp_path, "s"))


def _todays_operator_ca(now: float) -> CertificateAuthority:
    """The operator PKI of ca_helpers is pinned around NOW; ssl needs one valid today."""
    pki = operator_pki()
    root = operator_cert("Example Root CA", pki.root_key, not_before=now - 3600, not_after=now + 86400)
    inter = operator_cert("trimesh intermediate", pki.ca_key, issuer=root, issuer_key=pki.root_key,
                          not_before=now - 3600, not_after=now + 86400)
    return CertificateAuthority.from_plugin(
        signing_cert=PemFile("ca-cert.pem", pem(inter)),
        signing_key=PemFile("ca-key.pem", key_pem(pki.ca_key)),
        root_cert=PemFile("root-cert.pem", pem(root)), cert_chain=PemFile("cert-chain.pem", pem(inter)),
        now=now, token_bytes=seeded_token_bytes())
