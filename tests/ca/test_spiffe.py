"""SPIFFE identities: parsing, formatting, reading them from certificates, secure naming."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ca_helpers import NOW, PRODUCTPAGE, REVIEWS, ec_key, operator_cert, self_signed_ca
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from trimesh.ca import SpiffeId, check_secure_naming, identity_from_certificate, make_csr
from trimesh.errors import CAError


@pytest.mark.parametrize("uri, domain, ns, sa", [
    ("spiffe://cluster.local/ns/default/sa/bookinfo-productpage", "cluster.local", "default",
     "bookinfo-productpage"),
    ("spiffe://example.com/ns/team1-ns/sa/photo_frontend", "example.com", "team1-ns", "photo_frontend"),
    ("spiffe://td/ns/a.b/sa/X-1", "td", "a.b", "X-1"),
])
def test_parse_and_format_round_trip(uri, domain, ns, sa):
    ident = SpiffeId.parse(uri)
    assert (ident.trust_domain, ident.namespace, ident.service_account) == (domain, ns, sa)
    assert str(ident) == ident.uri == uri
    assert ident.principal == uri.removeprefix("spiffe://")
    assert SpiffeId.from_principal(ident.principal) == ident
    assert SpiffeId.of(ns, sa, domain) == ident


def test_principal_is_what_mixer_source_user_shows():
    # the docs' rule compares source.user with this exact string (telemetry-security.md §10.2)
    assert PRODUCTPAGE.principal == "cluster.local/ns/default/sa/bookinfo-productpage"
    assert SpiffeId.of("default", "bookinfo-productpage") == PRODUCTPAGE  # default trust domain


@pytest.mark.parametrize("uri, says", [
    ("http://cluster.local/ns/default/sa/x", "does not start with spiffe://"),
    ("spiffe://cluster.local/ns/default", "is not of the form"),
    ("spiffe://cluster.local/ns/default/sa/x/extra", "is not of the form"),
    ("spiffe://cluster.local/namespace/default/sa/x", "is not of the form"),
    ("spiffe://cluster.local/ns//sa/x", "namespace ''"),
    ("spiffe://cluster.local/ns/../sa/x", "namespace '..'"),
    ("spiffe://Cluster.Local/ns/default/sa/x", "trust domain"),
    ("spiffe://cluster.local:8080/ns/default/sa/x", "port"),
    ("spiffe://cluster.local/ns/default/sa/x?q=1", "query"),
    ("spiffe://cluster.local/ns/default/sa/x#f", "fragment"),
    ("spiffe://user@cluster.local/ns/default/sa/x", "user"),
    ("spiffe://cluster.local/ns/def%41ult/sa/x", "namespace"),
    ("spiffe://cluster.local/ns/default/sa/" + "x" * 2100, "longer than 2048"),
])
def test_bad_identities_are_refused_saying_why(uri, says):
    with pytest.raises(CAError) as info:
        SpiffeId.parse(uri)
    assert info.value.reason == "bad-identity"
    assert says in str(info.value)


def test_ids_order_and_hash_by_their_parts():
    assert sorted({REVIEWS, PRODUCTPAGE, PRODUCTPAGE}) == [PRODUCTPAGE, REVIEWS]


def _cert_with_san(names: list[x509.GeneralName] | None) -> x509.Certificate:
    key = ec_key(5)
    t = datetime.datetime.fromtimestamp(NOW, tz=datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(x509.Name([]))
         .public_key(key.public_key()).serial_number(1)
         .not_valid_before(t).not_valid_after(t + datetime.timedelta(days=1)))
    if names is not None:
        b = b.add_extension(x509.SubjectAlternativeName(names), critical=True)
    return b.sign(key, hashes.SHA256())


def test_identity_from_an_issued_certificate_der_and_pem():
    ca = self_signed_ca()
    issued = ca.sign(make_csr(ec_key(1), PRODUCTPAGE), identity=PRODUCTPAGE, now=NOW)
    der = x509.load_pem_x509_certificate(issued.certificate_pem).public_bytes(serialization.Encoding.DER)
    assert identity_from_certificate(der) == PRODUCTPAGE  # getpeercert(binary_form=True) is DER
    assert identity_from_certificate(issued.certificate_pem) == PRODUCTPAGE
    assert identity_from_certificate(issued.chain_pem) == PRODUCTPAGE  # the first block is the leaf


@pytest.mark.parametrize("names", [
    None,
    [x509.DNSName("details.default.svc.cluster.local")],
    [x509.UniformResourceIdentifier("https://example.com/x")],
    [x509.UniformResourceIdentifier("spiffe://cluster.local/ns/a/sa/b"),
     x509.UniformResourceIdentifier("spiffe://cluster.local/ns/c/sa/d")],
    [x509.UniformResourceIdentifier("spiffe://cluster.local/workload/x")],
], ids=["no-san", "dns-only", "not-spiffe", "two-uris", "not-istio-shape"])
def test_certificates_without_one_identity_yield_none(names):
    cert = _cert_with_san(names)
    assert identity_from_certificate(cert.public_bytes(serialization.Encoding.DER)) is None


def test_a_dns_san_beside_the_uri_does_not_hide_the_identity():
    cert = _cert_with_san([x509.DNSName("x"), x509.UniformResourceIdentifier(REVIEWS.uri)])
    assert identity_from_certificate(cert.public_bytes(serialization.Encoding.DER)) == REVIEWS


@pytest.mark.parametrize("data", [None, b"", b"garbage",
                                  b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                                  b"\x30\x03\x02\x01\x01"])
def test_garbage_is_no_identity(data):
    assert identity_from_certificate(data) is None


def test_a_ca_certificate_has_no_workload_identity():
    root = operator_cert("root", ec_key(6))
    assert identity_from_certificate(root.public_bytes(serialization.Encoding.DER)) is None


OTHER_DOMAIN = SpiffeId.of("default", "bookinfo-productpage", "other.domain")


@pytest.mark.parametrize("presented, allowed, verdict", [
    (PRODUCTPAGE, PRODUCTPAGE, None),
    (PRODUCTPAGE, [REVIEWS, PRODUCTPAGE], None),
    (REVIEWS, PRODUCTPAGE, "the server presented spiffe://cluster.local/ns/default/sa/bookinfo-reviews, "
                           "the service runs as spiffe://cluster.local/ns/default/sa/bookinfo-productpage"),
    (OTHER_DOMAIN, PRODUCTPAGE, "the server presented spiffe://other.domain/"),
    (None, PRODUCTPAGE, "the server's certificate carries no SPIFFE identity"),
    (PRODUCTPAGE, [], "no service account is registered"),
])
def test_secure_naming(presented, allowed, verdict):
    result = check_secure_naming(presented, allowed)
    if verdict is None:
        assert result is None
    else:
        assert result is not None and result.startswith(verdict)


_SEGMENTS = st.from_regex(r"[A-Za-z0-9._-]{1,40}", fullmatch=True).filter(lambda s: s not in {".", ".."})
_DOMAINS = st.from_regex(r"[a-z0-9._-]{1,40}", fullmatch=True)


@given(domain=_DOMAINS, ns=_SEGMENTS, sa=_SEGMENTS)
def test_every_well_formed_identity_round_trips(domain, ns, sa):
    ident = SpiffeId.of(ns, sa, domain)
    assert SpiffeId.parse(ident.uri) == ident == SpiffeId.from_principal(ident.principal)
