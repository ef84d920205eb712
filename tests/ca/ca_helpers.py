"""Shared pieces of the CA tests: a fixed clock, seeded serials, cached keys, and a small builder
for the operator's own CA certificates (root → intermediate), which trimesh never makes itself."""

from __future__ import annotations

import datetime
import functools
import random

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from trimesh.ca import CertificateAuthority, PemFile, SpiffeId

NOW = 1_790_000_000.0  # 2026-09-21T14:13:20Z, a fixed wall clock for every pure test
DAY = 86400.0
PRODUCTPAGE = SpiffeId.parse("spiffe://cluster.local/ns/default/sa/bookinfo-productpage")
REVIEWS = SpiffeId.parse("spiffe://cluster.local/ns/default/sa/bookinfo-reviews")


def seeded_token_bytes(seed: int = 7):
    rng = random.Random(seed)
    return rng.randbytes


@functools.cache
def ec_key(n: int = 0, curve: type[ec.EllipticCurve] = ec.SECP256R1) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(curve())


@functools.cache
def rsa_key(bits: int = 2048, n: int = 0) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def self_signed_ca(**kwargs) -> CertificateAuthority:
    kwargs.setdefault("key", ec_key(100))
    kwargs.setdefault("now", NOW)
    kwargs.setdefault("token_bytes", seeded_token_bytes())
    return CertificateAuthority.self_signed(**kwargs)


def _utc(t: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(t, tz=datetime.timezone.utc)


def operator_cert(cn: str, key, *, issuer: x509.Certificate | None = None, issuer_key=None,
                  ca: bool = True, not_before: float = NOW - DAY, not_after: float = NOW + 365 * DAY,
                  key_cert_sign: bool = True) -> x509.Certificate:
    """A certificate as an operator's PKI would make it (root when ``issuer`` is None)."""
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Ops"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (x509.CertificateBuilder()
               .subject_name(name)
               .issuer_name(issuer.subject if issuer is not None else name)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(_utc(not_before)).not_valid_after(_utc(not_after))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=not ca, content_commitment=False,
                                            key_encipherment=False, data_encipherment=False,
                                            key_agreement=False, key_cert_sign=ca and key_cert_sign,
                                            crl_sign=ca, encipher_only=False, decipher_only=False),
                              critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    return builder.sign(issuer_key if issuer_key is not None else key, hashes.SHA256())


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class OperatorPKI:
    """The docs' plug-in scenario: root-cert.pem signs ca-cert.pem (the trimesh signing CA)."""

    def __init__(self) -> None:
        self.root_key = ec_key(200)
        self.root = operator_cert("Example Root CA", self.root_key)
        self.ca_key = ec_key(201)
        self.ca = operator_cert("trimesh intermediate", self.ca_key, issuer=self.root,
                                issuer_key=self.root_key)

    def files(self, **override: bytes) -> dict[str, PemFile]:
        data = {"signing_cert": pem(self.ca), "signing_key": key_pem(self.ca_key),
                "root_cert": pem(self.root), "cert_chain": pem(self.ca)}
        data.update(override)
        names = {"signing_cert": "ca-cert.pem", "signing_key": "ca-key.pem",
                 "root_cert": "root-cert.pem", "cert_chain": "cert-chain.pem"}
        return {arg: PemFile(f"/etc/cacerts/{names[arg]}", body) for arg, body in data.items()}

    def authority(self, **override: bytes) -> CertificateAuthority:
        return CertificateAuthority.from_plugin(**self.files(**override), now=NOW,
                                                token_bytes=seeded_token_bytes())


@functools.cache
def operator_pki() -> OperatorPKI:
    return OperatorPKI()


def require_tool(request, name: str) -> str:
    """tests/conftest.py's ``require_tool`` (skip, or fail under CI=true), reached through pytest's
    plugin manager because every conftest module is named ``conftest``."""
    import pathlib

    root_conftest = pathlib.Path(__file__).resolve().parent.parent / "conftest.py"
    return request.config.pluginmanager.get_plugin(str(root_conftest)).require_tool(name)
