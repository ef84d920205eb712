"""CSR validation: every refusal has a reason code and says what is wrong."""

from __future__ import annotations

import base64
import ipaddress

import pytest
from ca_helpers import PRODUCTPAGE, ec_key, rsa_key
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519

from trimesh.ca import make_csr, parse_csr
from trimesh.errors import CAError


def _csr(key, names: list[x509.GeneralName] | None, *, algorithm=hashes.SHA256()) -> bytes:
    b = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    if names is not None:
        b = b.add_extension(x509.SubjectAlternativeName(names), critical=True)
    return b.sign(key, algorithm).public_bytes(serialization.Encoding.PEM)


def _uri(ident=PRODUCTPAGE) -> list[x509.GeneralName]:
    return [x509.UniformResourceIdentifier(ident.uri)]


def _tampered() -> bytes:
    """A valid CSR whose requested identity was edited afterwards (same length)."""
    der = x509.load_pem_x509_csr(make_csr(ec_key(1), PRODUCTPAGE)).public_bytes(serialization.Encoding.DER)
    der = der.replace(b"productpage", b"productpagf")
    body = base64.encodebytes(der).decode()
    return f"-----BEGIN CERTIFICATE REQUEST-----\n{body}-----END CERTIFICATE REQUEST-----\n".encode()


@pytest.mark.parametrize("key", [
    pytest.param(lambda: ec_key(1), id="ec-p256"),
    pytest.param(lambda: ec_key(2, ec.SECP384R1), id="ec-p384"),
    pytest.param(lambda: rsa_key(2048), id="rsa-2048"),
])
def test_a_good_csr_yields_its_identity_and_key(key):
    k = key()
    request = parse_csr(make_csr(k, PRODUCTPAGE))
    assert request.identity == PRODUCTPAGE
    assert request.public_key.public_numbers() == k.public_key().public_numbers()


def test_a_str_csr_is_accepted_too():
    assert parse_csr(make_csr(ec_key(1), PRODUCTPAGE).decode()).identity == PRODUCTPAGE


BAD_CSRS = [
    ("empty", lambda: b"", "bad-csr", "not a PEM CERTIFICATE REQUEST"),
    ("garbage", lambda: b"hello, CA", "bad-csr", "not a PEM CERTIFICATE REQUEST"),
    ("a-certificate", lambda: b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
     "bad-csr", "not a PEM CERTIFICATE REQUEST"),
    ("broken-pem", lambda: b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
     "bad-csr", "cannot be parsed"),
    ("two-blocks", lambda: make_csr(ec_key(1), PRODUCTPAGE) * 2, "bad-csr", "more than one PEM block"),
    ("huge", lambda: b"-----BEGIN CERTIFICATE REQUEST-----\n" + b"A" * 70000, "bad-csr", "at most 65536"),
    ("tampered", _tampered, "bad-signature", "signature does not verify"),
    ("no-san", lambda: _csr(ec_key(1), None), "bad-san", "asks for no identity"),
    ("dns-san", lambda: _csr(ec_key(1), [x509.DNSName("productpage.default.svc.cluster.local")]),
     "bad-san", "DNSName:productpage.default.svc.cluster.local"),
    ("extra-dns-san", lambda: _csr(ec_key(1), _uri() + [x509.DNSName("productpage")]),
     "bad-san", "no DNS SAN"),
    ("ip-san", lambda: _csr(ec_key(1), _uri() + [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
     "bad-san", "IPAddress:127.0.0.1"),
    ("two-uri-sans", lambda: _csr(ec_key(1), _uri() + [x509.UniformResourceIdentifier(
        "spiffe://cluster.local/ns/default/sa/other")]), "bad-san", "2 URI SANs"),
    ("not-spiffe", lambda: _csr(ec_key(1), [x509.UniformResourceIdentifier("https://productpage")]),
     "bad-san", "not a workload identity"),
    ("weak-rsa", lambda: _csr(rsa_key(1024), _uri()), "weak-key", "RSA 1024 bits; at least 2048"),
    ("dsa", lambda: _csr(dsa.generate_private_key(1024), _uri()), "unsupported-key", "RSA and ECDSA"),
    ("ed25519", lambda: _csr(ed25519.Ed25519PrivateKey.generate(), _uri(), algorithm=None),
     "unsupported-key", "RSA and ECDSA"),
    ("secp256k1", lambda: _csr(ec_key(3, ec.SECP256K1), _uri()), "unsupported-key", "curve secp256k1"),
]


@pytest.mark.parametrize("make, reason, says", [c[1:] for c in BAD_CSRS], ids=[c[0] for c in BAD_CSRS])
def test_bad_csrs_are_refused_with_a_reason(make, reason, says):
    with pytest.raises(CAError) as info:
        parse_csr(make())
    assert info.value.reason == reason
    assert says in str(info.value)


def test_make_csr_refuses_a_weak_key():
    with pytest.raises(CAError) as info:
        make_csr(rsa_key(1024), PRODUCTPAGE)
    assert info.value.reason == "weak-key"


def test_make_csr_asks_for_exactly_the_identity():
    csr = x509.load_pem_x509_csr(make_csr(ec_key(1), PRODUCTPAGE))
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical
    assert list(san.value) == [x509.UniformResourceIdentifier(PRODUCTPAGE.uri)]
    assert csr.subject == x509.Name([])
