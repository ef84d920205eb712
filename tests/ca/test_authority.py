"""The CA: the self-signed root, workload certificates, lifetimes, authorisation, the operator CA."""

from __future__ import annotations

import pytest
from ca_helpers import (DAY, NOW, PRODUCTPAGE, REVIEWS, OperatorPKI, ec_key, key_pem, operator_cert,
                        operator_pki, pem, rsa_key, seeded_token_bytes, self_signed_ca)
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from trimesh.ca import (CLOCK_SKEW_GRACE, MAX_WORKLOAD_TTL, SELF_SIGNED_ROOT_TTL, WORKLOAD_TTL,
                        CertificateAuthority, PemFile, SpiffeId, TokenClaim, make_csr)
from trimesh.errors import CAError, ConfigError

HOUR = 3600.0


def _load(data: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(data)


def _ext(cert: x509.Certificate, kind):
    return cert.extensions.get_extension_for_class(kind)


def test_defaults_are_istios():
    assert (SELF_SIGNED_ROOT_TTL, WORKLOAD_TTL, MAX_WORKLOAD_TTL) == (365 * DAY, 19 * HOUR, 7 * DAY)


def test_self_signed_root():
    ca = self_signed_ca()
    [root] = _load(ca.root_pem)
    assert root.subject == root.issuer
    assert root.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "cluster.local"
    root.verify_directly_issued_by(root)
    bc = _ext(root, x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = _ext(root, x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign and not ku.value.digital_signature
    ski = _ext(root, x509.SubjectKeyIdentifier).value
    assert _ext(root, x509.AuthorityKeyIdentifier).value.key_identifier == ski.digest
    assert root.not_valid_before_utc.timestamp() == NOW - CLOCK_SKEW_GRACE
    assert root.not_valid_after_utc.timestamp() == NOW + 365 * DAY
    assert ca.chain_pem == b"" and ca.signing_cert_pem == ca.root_pem


def test_root_lifetime_is_configurable():
    ca = self_signed_ca(root_ttl=30 * DAY)
    assert ca.root_not_after == NOW + 30 * DAY


@pytest.mark.parametrize("key, rsa", [(lambda: ec_key(1), False), (lambda: rsa_key(2048), True)],
                         ids=["ecdsa", "rsa"])
def test_a_workload_certificate(key, rsa):
    ca = self_signed_ca()
    issued = ca.sign(make_csr(key(), PRODUCTPAGE), identity=PRODUCTPAGE, now=NOW)
    [leaf] = _load(issued.certificate_pem)
    san = _ext(leaf, x509.SubjectAlternativeName)
    assert san.critical and list(san.value) == [x509.UniformResourceIdentifier(PRODUCTPAGE.uri)]
    assert san.value.get_values_for_type(x509.DNSName) == []
    assert leaf.subject == x509.Name([])
    assert leaf.issuer == _load(ca.root_pem)[0].subject
    bc = _ext(leaf, x509.BasicConstraints)
    assert bc.critical and not bc.value.ca
    ku = _ext(leaf, x509.KeyUsage).value
    assert ku.digital_signature and ku.key_encipherment == rsa and not ku.key_cert_sign
    assert list(_ext(leaf, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH,
                                                              ExtendedKeyUsageOID.CLIENT_AUTH]
    root_ski = _ext(_load(ca.root_pem)[0], x509.SubjectKeyIdentifier).value.digest
    assert _ext(leaf, x509.AuthorityKeyIdentifier).value.key_identifier == root_ski
    assert _ext(leaf, x509.SubjectKeyIdentifier).value == x509.SubjectKeyIdentifier.from_public_key(
        key().public_key())
    leaf.verify_directly_issued_by(_load(ca.root_pem)[0])
    assert leaf.serial_number == issued.serial
    assert (issued.not_before, issued.not_after) == (NOW - CLOCK_SKEW_GRACE, NOW + 19 * HOUR)
    assert issued.chain_pem == issued.certificate_pem  # self-signed: the leaf alone
    assert issued.root_pem == ca.root_pem
    assert issued.record.serial == issued.serial and issued.record.identity == PRODUCTPAGE


@pytest.mark.parametrize("ttl, not_before, not_after", [
    (None, NOW - 120, NOW + 19 * HOUR),
    (HOUR, NOW - 120, NOW + HOUR),
    (7 * DAY, NOW - 120, NOW + 7 * DAY),
    (60, NOW - 6, NOW + 60),  # a test lifetime: backdated by a tenth, not 2 minutes
    (1, NOW, NOW + 1),  # 0.1 s of backdating truncates to none
    (600.5, NOW - 60, NOW + 600),  # whole seconds
])
def test_lifetimes(ttl, not_before, not_after):
    issued = self_signed_ca().sign(make_csr(ec_key(1), PRODUCTPAGE), identity=PRODUCTPAGE, now=NOW, ttl=ttl)
    [leaf] = _load(issued.certificate_pem)
    assert (issued.not_before, issued.not_after) == (not_before, not_after)
    assert (leaf.not_valid_before_utc.timestamp(), leaf.not_valid_after_utc.timestamp()) == (
        not_before, not_after)


@pytest.mark.parametrize("ttl, reason, says", [
    (7 * DAY + 1, "ttl-too-long", "above the maximum 604800s"),
    (0, "bad-ttl", "below one second"),
    (-5, "bad-ttl", "below one second"),
])
def test_bad_lifetimes_are_refused(ttl, reason, says):
    ca = self_signed_ca()
    with pytest.raises(CAError) as info:
        ca.sign(make_csr(ec_key(1), PRODUCTPAGE), identity=PRODUCTPAGE, now=NOW, ttl=ttl)
    assert (info.value.reason, says in str(info.value)) == (reason, True)
    assert ca.statistics()["refused"] == {reason: 1} and ca.statistics()["issued"] == 0


def test_configured_lifetimes_for_tests():
    ca = self_signed_ca(workload_ttl=60, max_workload_ttl=120)
    issued = ca.sign(make_csr(ec_key(1), PRODUCTPAGE), identity=PRODUCTPAGE, now=NOW)
    assert issued.not_after == NOW + 60
    with pytest.raises(CAError, match="above the maximum 120s"):
        ca.sign(make_csr(ec_key(1), PRODUCTPAGE), identity=PRODUCTPAGE, now=NOW, ttl=121)


def test_a_default_lifetime_above_the_maximum_is_a_config_error():
    with pytest.raises(ConfigError, match="at most the maximum"):
        self_signed_ca(workload_ttl=8 * DAY)


def test_a_csr_for_another_identity_is_refused_and_nothing_issued():
    ca = self_signed_ca()
    with pytest.raises(CAError) as info:
        ca.sign(make_csr(ec_key(1), REVIEWS), identity=PRODUCTPAGE, now=NOW)
    assert info.value.reason == "not-authorized"
    assert "asks for spiffe://cluster.local/ns/default/sa/bookinfo-reviews" in str(info.value)
    assert ca.statistics()["issued"] == 0 and ca.statistics()["refused"] == {"not-authorized": 1}


def test_another_trust_domain_is_refused():
    other = SpiffeId.of("default", "bookinfo-productpage", "evil.example")
    with pytest.raises(CAError, match="trust domain cluster.local, not evil.example") as info:
        self_signed_ca().sign(make_csr(ec_key(1), other), identity=other, now=NOW)
    assert info.value.reason == "not-authorized"


def test_a_bad_csr_is_counted_by_reason():
    ca = self_signed_ca()
    for _ in range(2):
        with pytest.raises(CAError):
            ca.sign(b"garbage", identity=PRODUCTPAGE, now=NOW)
    ca.sign(make_csr(ec_key(1), PRODUCTPAGE), identity=PRODUCTPAGE, now=NOW)
    stats = ca.statistics()
    assert (stats["issued"], stats["refused"], stats["mode"]) == (1, {"bad-csr": 2}, "self-signed")
    assert "issued=1 refused=2" in repr(ca)


@pytest.mark.parametrize("claim, ident, allowed", [
    (TokenClaim("default", "bookinfo-productpage", None), PRODUCTPAGE, True),
    (TokenClaim("default", "bookinfo-productpage", None), REVIEWS, False),
    (TokenClaim(None, None, None), REVIEWS, True),  # the mesh token
    (TokenClaim("other", "bookinfo-reviews", None), REVIEWS, False),
])
def test_sign_claimed(claim, ident, allowed):
    ca = self_signed_ca()
    csr = make_csr(ec_key(1), ident)
    if allowed:
        assert ca.sign_claimed(csr, claim=claim, now=NOW).identity == ident
    else:
        with pytest.raises(CAError, match=f"the token allows {claim.scope}, not {ident}") as info:
            ca.sign_claimed(csr, claim=claim, now=NOW)
        assert info.value.reason == "not-authorized"


def test_serials_come_from_token_bytes_and_differ():
    a = self_signed_ca(token_bytes=seeded_token_bytes(1))
    b = self_signed_ca(token_bytes=seeded_token_bytes(1))
    csr = make_csr(ec_key(1), PRODUCTPAGE)
    sa = [a.sign(csr, identity=PRODUCTPAGE, now=NOW).serial for _ in range(3)]
    sb = [b.sign(csr, identity=PRODUCTPAGE, now=NOW).serial for _ in range(3)]
    assert sa == sb and len(set(sa)) == 3  # seeded: reproducible; fresh per certificate
    assert all(0 < s < 2 ** 128 for s in sa)


def test_a_short_token_bytes_is_a_bug_not_a_serial():
    with pytest.raises(ValueError, match="returned 4 bytes"):
        self_signed_ca(token_bytes=lambda n: b"\x01" * 4)


def test_the_signing_key_round_trips_as_a_plugged_in_ca():
    ca = self_signed_ca()
    again = CertificateAuthority.from_plugin(
        signing_cert=PemFile("ca-cert.pem", ca.signing_cert_pem),
        signing_key=PemFile("ca-key.pem", ca.signing_key_pem()),
        root_cert=PemFile("root-cert.pem", ca.root_pem), cert_chain=None, now=NOW + DAY,
        token_bytes=seeded_token_bytes())
    issued = again.sign(make_csr(ec_key(1), PRODUCTPAGE), identity=PRODUCTPAGE, now=NOW + DAY)
    _load(issued.certificate_pem)[0].verify_directly_issued_by(_load(ca.root_pem)[0])
    assert issued.chain_pem == issued.certificate_pem and again.plugged


# -- the operator's CA (telemetry-security.md §14, behaviours 51-52) ------------------------


def test_operator_ca_chain_is_leaf_then_cert_chain():
    pki = operator_pki()
    ca = pki.authority()
    issued = ca.sign(make_csr(ec_key(1), PRODUCTPAGE), identity=PRODUCTPAGE, now=NOW)
    chain = _load(issued.chain_pem)
    assert len(chain) == 2 and chain[1] == pki.ca  # the last certificate equals ca-cert.pem
    assert issued.root_pem == pem(pki.root)  # root-cert.pem is the operator's
    chain[0].verify_directly_issued_by(pki.ca)
    assert chain[0].issuer == pki.ca.subject
    assert ca.statistics()["mode"] == "plugged"


def test_operator_leaf_never_outlives_the_signing_certificate():
    pki = operator_pki()
    short = operator_cert("short-lived intermediate", pki.ca_key, issuer=pki.root, issuer_key=pki.root_key,
                          not_after=NOW + HOUR)
    ca = pki.authority(signing_cert=pem(short), cert_chain=pem(short))
    issued = ca.sign(make_csr(ec_key(1), PRODUCTPAGE), identity=PRODUCTPAGE, now=NOW)
    assert issued.not_after == NOW + HOUR
    with pytest.raises(CAError) as info:  # once it has expired the CA refuses to sign
        ca.sign(make_csr(ec_key(1), PRODUCTPAGE), identity=PRODUCTPAGE, now=NOW + 2 * HOUR)
    assert info.value.reason == "ca-expired"


def test_signing_cert_equal_to_root_may_have_an_empty_chain():
    pki = operator_pki()
    ca = pki.authority(signing_cert=pem(pki.root), signing_key=key_pem(pki.root_key), cert_chain=b"")
    issued = ca.sign(make_csr(ec_key(1), PRODUCTPAGE), identity=PRODUCTPAGE, now=NOW)
    assert len(_load(issued.chain_pem)) == 1


def test_an_intermediate_chain_of_two():
    pki = operator_pki()
    mid_key = ec_key(300)
    mid = operator_cert("mid", mid_key, issuer=pki.root, issuer_key=pki.root_key)
    low = operator_cert("low", pki.ca_key, issuer=mid, issuer_key=mid_key)
    ca = pki.authority(signing_cert=pem(low), cert_chain=pem(low, mid))
    issued = ca.sign(make_csr(ec_key(1), PRODUCTPAGE), identity=PRODUCTPAGE, now=NOW)
    assert _load(issued.chain_pem)[1:] == [low, mid]


def _bad_plugins():
    pki = OperatorPKI.__new__(OperatorPKI)
    pki.__dict__.update(operator_pki().__dict__)
    other_key = ec_key(400)
    stranger_root_key = ec_key(401)
    stranger_root = operator_cert("Stranger Root", stranger_root_key)
    foreign_ca = operator_cert("foreign intermediate", pki.ca_key, issuer=stranger_root,
                               issuer_key=stranger_root_key)
    leafy = operator_cert("not a ca", pki.ca_key, issuer=pki.root, issuer_key=pki.root_key, ca=False)
    no_sign = operator_cert("no keyCertSign", pki.ca_key, issuer=pki.root, issuer_key=pki.root_key,
                            key_cert_sign=False)
    expired = operator_cert("expired", pki.ca_key, issuer=pki.root, issuer_key=pki.root_key,
                            not_before=NOW - 10 * DAY, not_after=NOW - DAY)
    future = operator_cert("future", pki.ca_key, issuer=pki.root, issuer_key=pki.root_key,
                           not_before=NOW + DAY)
    encrypted = pki.ca_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.BestAvailableEncryption(b"pw"))
    return [
        ("key-mismatch", dict(signing_key=key_pem(other_key)), "ca-key.pem",
         "does not match the certificate in /etc/cacerts/ca-cert.pem"),
        ("weak-key", dict(signing_key=key_pem(rsa_key(1024))), "ca-key.pem", "RSA 1024 bits"),
        ("encrypted-key", dict(signing_key=encrypted), "ca-key.pem", "encrypted key"),
        ("garbage-key", dict(signing_key=b"nope"), "ca-key.pem", "not a PEM private key"),
        ("garbage-cert", dict(signing_cert=b"nope"), "ca-cert.pem", "not a PEM certificate file"),
        ("empty-cert", dict(signing_cert=b""), "ca-cert.pem", "holds 0 certificates"),
        ("two-certs", dict(signing_cert=pem(pki.ca, pki.root)), "ca-cert.pem", "holds 2 certificates"),
        ("not-a-ca", dict(signing_cert=pem(leafy), cert_chain=pem(leafy)), "ca-cert.pem",
         "basicConstraints CA:FALSE"),
        ("no-cert-sign", dict(signing_cert=pem(no_sign), cert_chain=pem(no_sign)), "ca-cert.pem",
         "without keyCertSign"),
        ("expired", dict(signing_cert=pem(expired), cert_chain=pem(expired)), "ca-cert.pem", "expired on"),
        ("not-yet-valid", dict(signing_cert=pem(future), cert_chain=pem(future)), "ca-cert.pem",
         "is not valid before"),
        ("root-not-self-signed", dict(root_cert=pem(pki.ca)), "root-cert.pem", "is not self-signed"),
        ("foreign-chain", dict(signing_cert=pem(foreign_ca), cert_chain=pem(foreign_ca)), "cert-chain.pem",
         "does not lead to the root"),
        ("chain-misses-ca-cert", dict(cert_chain=pem(pki.root)), "cert-chain.pem",
         "must begin with the signing certificate"),
        ("empty-chain", dict(cert_chain=b""), "cert-chain.pem", "is empty, but"),
        ("chain-out-of-order", dict(cert_chain=pem(pki.ca, foreign_ca)), "cert-chain.pem",
         "certificate 1 (CN=trimesh intermediate,O=Example Ops) is not signed by certificate 2"),
    ]


BAD_PLUGINS = _bad_plugins()


@pytest.mark.parametrize("override, file, says", [c[1:] for c in BAD_PLUGINS],
                         ids=[c[0] for c in BAD_PLUGINS])
def test_bad_operator_files_are_refused_naming_the_file(override, file, says):
    with pytest.raises(ConfigError) as info:
        operator_pki().authority(**override)
    assert info.value.source == f"/etc/cacerts/{file}"
    assert says in str(info.value)
    assert str(info.value).startswith(f"/etc/cacerts/{file}: ")
