"""The certificate authority: a signing key and certificate, the root workloads trust, and the
rules for the workload certificates it issues. PURE: given ``now``, keys and ``token_bytes``.

Two ways to build one (telemetry-security.md §14, docs L2458):

* :meth:`CertificateAuthority.self_signed` — the default: a root made here from a key the caller
  generated (``ec.generate_private_key(ec.SECP256R1())``), valid :data:`SELF_SIGNED_ROOT_TTL`
  (365 d, istio_ca's ``defaultSelfSignedCACertTTL``), which signs workload certificates itself.
  To keep the same root across restarts the shell saves :attr:`root_pem` and
  :meth:`signing_key_pem` and later plugs them back in as ``ca-cert.pem`` = ``root-cert.pem`` with
  an empty chain.
* :meth:`CertificateAuthority.from_plugin` — the operator's CA, from the four files of the docs'
  task: ``ca-cert.pem`` (the signing certificate), ``ca-key.pem`` (its key), ``root-cert.pem`` (the
  root workloads trust) and ``cert-chain.pem`` (the signing certificate followed by every
  intermediate up to the root; may be empty when ``ca-cert.pem`` is the root, docs L2473). Each file
  is checked when the CA starts and a bad one is a :class:`~trimesh.errors.ConfigError` whose
  ``source`` names it: a key that does not match the certificate, a signing certificate that is not
  a CA or is expired or not yet valid, a chain that does not begin with the signing certificate or
  does not lead, signature by signature, to the root (behaviour 52).

Workload certificates (:meth:`CertificateAuthority.sign`, behaviours 84, 88, §16.7 item 42, 50):
exactly one critical URI SAN, the SPIFFE ID, and no DNS SAN; an empty subject (RFC 5280 §4.2.1.6:
the SAN is then critical); basicConstraints CA:false; keyUsage digitalSignature, plus
keyEncipherment for RSA keys only (RFC 5480 §3 / RFC 8813: keyEncipherment is meaningless for an
ECDSA key — Istio sets it for every key); extendedKeyUsage serverAuth + clientAuth (one certificate
serves both ends of the mTLS hop, as Istio's); subject and authority key identifiers. The default
lifetime is :data:`WORKLOAD_TTL` (19 h), a requested lifetime above :data:`MAX_WORKLOAD_TTL` (7 d)
is refused as istio_ca refuses it, and notBefore is backdated by :data:`CLOCK_SKEW_GRACE` (2 min,
Istio's ``ClockSkewGracePeriod``) — but by at most :data:`MAX_BACKDATE_FRACTION` of the lifetime,
so a 60 s test certificate is not spent mostly in the past. A certificate never outlives the
signing certificate: notAfter is clamped to it. The served chain (``cert-chain.pem`` on the
workload) is the leaf followed by the operator's ``cert-chain.pem`` (behaviour 51); for a
self-signed CA it is the leaf alone. ``root-cert.pem`` is the same bytes for every workload.

Time: ``now`` is wall-clock seconds since the epoch (the shell passes ``time.time()``: certificate
times are absolute, unlike ``trio.current_time()``); X.509 stores whole seconds, so times are
truncated. Randomness: serial numbers are :data:`SERIAL_BYTES` from the ``token_bytes`` callable the
caller passes (``secrets.token_bytes`` in the shell, a seeded one in tests); keys are made by the
caller with ``cryptography``'s own key generation and passed in.
"""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Callable
from typing import NamedTuple

import msgspec
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..errors import CAError, ConfigError
from ._csr import PrivateKey, WorkloadCSR, check_key, parse_csr, signature_hash
from ._record import IssuedRecord
from ._spiffe import DEFAULT_TRUST_DOMAIN, SpiffeId
from ._token import TokenClaim

HOUR = 3600.0
DAY = 24 * HOUR
SELF_SIGNED_ROOT_TTL = 365 * DAY  # istio_ca defaultSelfSignedCACertTTL (telemetry-security.md §10.3)
WORKLOAD_TTL = 19 * HOUR  # istio_ca defaultWorkloadCertTTL (§10.3)
MAX_WORKLOAD_TTL = 7 * DAY  # istio_ca defaultMaxWorkloadCertTTL (§10.3)
CLOCK_SKEW_GRACE = 120.0  # Istio security/pkg/pki/util/generate_cert.go ClockSkewGracePeriod
MAX_BACKDATE_FRACTION = 0.1  # trimesh: backdate at most a tenth of a (short, test) lifetime
SERIAL_BYTES = 16  # 128 random bits, as Istio's genSerialNum; RFC 5280 §4.1.2.2 allows ≤ 20 octets
ROOT_COMMON_NAME = "trimesh root CA"  # the self-signed root's subject is O=<trust domain>, CN=this

TokenBytes = Callable[[int], bytes]

PLUGIN_FILE_NAMES = {  # the docs' file names (L2478–L2481) by from_plugin argument
    "signing_cert": "ca-cert.pem",
    "signing_key": "ca-key.pem",
    "root_cert": "root-cert.pem",
    "cert_chain": "cert-chain.pem",
}


class PemFile(NamedTuple):
    """One plugged-in file: where it came from (shown in errors) and its bytes."""

    source: str
    data: bytes


class IssuedCertificate(msgspec.Struct, frozen=True):
    """What :meth:`CertificateAuthority.sign` returns: the PEM the workload writes to its cert dir
    (``chain_pem`` → ``cert-chain.pem``, ``root_pem`` → ``root-cert.pem``) and the facts recorded."""

    serial: int
    identity: SpiffeId
    issued_at: float
    not_before: float
    not_after: float
    certificate_pem: bytes  # the leaf alone
    chain_pem: bytes  # the leaf, then the intermediates up to (not including) the root
    root_pem: bytes

    @property
    def record(self) -> IssuedRecord:
        return IssuedRecord(serial=self.serial, identity=self.identity, issued_at=self.issued_at,
                            not_before=self.not_before, not_after=self.not_after)

    def __repr__(self) -> str:
        return (f"<IssuedCertificate serial={self.serial:x} {self.identity} "
                f"not_after={self.not_after:.0f}>")


def _utc(seconds: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(int(seconds), tz=datetime.timezone.utc)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _spki(key: object) -> bytes:
    return key.public_key().public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _cert_spki(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)


def _subject(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "<empty subject>"


def _is_ca(cert: x509.Certificate) -> str | None:
    """``None`` when ``cert`` may sign certificates, else why not."""
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return "has no basicConstraints extension, so it is not a CA certificate"
    if not bc.ca:
        return "has basicConstraints CA:FALSE, so it is not a CA certificate"
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None
    if not ku.key_cert_sign:
        return "has a keyUsage without keyCertSign, so it may not sign certificates"
    return None


def _validity(cert: x509.Certificate, now: float) -> str | None:
    if now < cert.not_valid_before_utc.timestamp():
        return f"is not valid before {cert.not_valid_before_utc.isoformat()}"
    if now >= cert.not_valid_after_utc.timestamp():
        return f"expired on {cert.not_valid_after_utc.isoformat()}"
    return None


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _load_certs(f: PemFile) -> list[x509.Certificate]:
    if not f.data.strip():
        return []
    try:
        return x509.load_pem_x509_certificates(f.data)
    except ValueError as exc:
        raise ConfigError(f"is not a PEM certificate file: {exc}", source=f.source) from None


def _load_one_cert(f: PemFile) -> x509.Certificate:
    certs = _load_certs(f)
    if len(certs) != 1:
        raise ConfigError(f"holds {len(certs)} certificates; it must hold exactly one", source=f.source)
    return certs[0]


def _load_key(f: PemFile) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(f.data, password=None)
    except TypeError:
        raise ConfigError("is an encrypted key; trimesh reads an unencrypted PEM key "
                          "(protect the file with mode 0600 instead)", source=f.source) from None
    except ValueError as exc:
        raise ConfigError(f"is not a PEM private key: {exc}", source=f.source) from None
    try:
        check_key(key, what="the signing key")
    except CAError as exc:
        raise ConfigError(exc.message, source=f.source) from None
    return key  # type: ignore[return-value]


def _key_identifier(cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(cert.public_key())  # type: ignore[arg-type]
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


class CertificateAuthority:
    """Signs workload CSRs. Build it with :meth:`self_signed` or :meth:`from_plugin`."""

    def __init__(self, *, signing_key: PrivateKey, signing_cert: x509.Certificate,
                 root_cert: x509.Certificate, chain: tuple[x509.Certificate, ...],
                 token_bytes: TokenBytes, trust_domain: str = DEFAULT_TRUST_DOMAIN,
                 workload_ttl: float = WORKLOAD_TTL, max_workload_ttl: float = MAX_WORKLOAD_TTL,
                 plugged: bool = False) -> None:
        if not 0 < workload_ttl <= max_workload_ttl:
            raise ConfigError(f"the workload certificate lifetime {workload_ttl:g}s must be positive "
                              f"and at most the maximum {max_workload_ttl:g}s")
        SpiffeId.of("ns", "sa", trust_domain)  # checks the trust domain's syntax
        self.trust_domain = trust_domain
        self.workload_ttl = float(workload_ttl)
        self.max_workload_ttl = float(max_workload_ttl)
        self.plugged = plugged
        self._key = signing_key
        self._signing_cert = signing_cert
        self._root = root_cert
        self._chain = chain
        self._token_bytes = token_bytes
        self._authority_key_id = _key_identifier(signing_cert)
        self.root_pem = _pem(root_cert)
        self.chain_pem = b"".join(_pem(c) for c in chain)  # the operator's cert-chain.pem
        self.signing_cert_pem = _pem(signing_cert)
        self._issued = 0
        self._refused: Counter[str] = Counter()

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def self_signed(cls, *, key: PrivateKey, now: float, token_bytes: TokenBytes,
                    trust_domain: str = DEFAULT_TRUST_DOMAIN, root_ttl: float = SELF_SIGNED_ROOT_TTL,
                    workload_ttl: float = WORKLOAD_TTL,
                    max_workload_ttl: float = MAX_WORKLOAD_TTL) -> CertificateAuthority:
        """A new root CA for ``key``, valid ``root_ttl`` seconds from ``now`` (backdated by
        :data:`CLOCK_SKEW_GRACE`). Its subject and issuer are ``O=<trust domain>, CN=trimesh root
        CA``; basicConstraints CA:true with pathLen 0 (it signs workloads only), keyUsage
        keyCertSign + cRLSign, subject and authority key identifiers (the same key)."""
        check_key(key, what="the CA key")
        if root_ttl <= 0:
            raise ConfigError(f"the root lifetime {root_ttl:g}s must be positive")
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, trust_domain),
                          x509.NameAttribute(NameOID.COMMON_NAME, ROOT_COMMON_NAME)])
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())  # type: ignore[arg-type]
        builder = (x509.CertificateBuilder()
                   .subject_name(name).issuer_name(name)
                   .public_key(key.public_key())
                   .serial_number(_serial(token_bytes))
                   .not_valid_before(_utc(now - CLOCK_SKEW_GRACE))
                   .not_valid_after(_utc(now + root_ttl))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                   .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                                key_encipherment=False, data_encipherment=False,
                                                key_agreement=False, key_cert_sign=True, crl_sign=True,
                                                encipher_only=False, decipher_only=False), critical=True)
                   .add_extension(ski, critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                                  critical=False))
        root = builder.sign(key, signature_hash(key))
        return cls(signing_key=key, signing_cert=root, root_cert=root, chain=(),
                   token_bytes=token_bytes, trust_domain=trust_domain, workload_ttl=workload_ttl,
                   max_workload_ttl=max_workload_ttl)

    @classmethod
    def from_plugin(cls, *, signing_cert: PemFile, signing_key: PemFile, root_cert: PemFile,
                    cert_chain: PemFile | None, now: float, token_bytes: TokenBytes,
                    trust_domain: str = DEFAULT_TRUST_DOMAIN, workload_ttl: float = WORKLOAD_TTL,
                    max_workload_ttl: float = MAX_WORKLOAD_TTL) -> CertificateAuthority:
        """The operator's CA (the docs' ``ca-cert.pem``, ``ca-key.pem``, ``root-cert.pem``,
        ``cert-chain.pem``; ``cert_chain=None`` is an empty file). Every check of the module
        docstring runs here; the first that fails raises a ConfigError naming its file."""
        cert = _load_one_cert(signing_cert)
        key = _load_key(signing_key)
        if _spki(key) != _cert_spki(cert):
            raise ConfigError(f"does not match the certificate in {signing_cert.source} "
                              "(a different key pair)", source=signing_key.source)
        for problem in (_is_ca(cert), _validity(cert, now)):
            if problem:
                raise ConfigError(f"the signing certificate ({_subject(cert)}) {problem}",
                                  source=signing_cert.source)
        root = _load_one_cert(root_cert)
        not_root = (None if root.subject == root.issuer and _issued_by(root, root)
                    else "is not self-signed, so it cannot be the root workloads trust")
        for problem in (not_root, _is_ca(root), _validity(root, now)):
            if problem:
                raise ConfigError(f"the root certificate ({_subject(root)}) {problem}",
                                  source=root_cert.source)
        chain_file = cert_chain or PemFile(PLUGIN_FILE_NAMES["cert_chain"], b"")
        chain = _load_certs(chain_file)
        _check_chain(cert, root, chain, now, signing_cert.source, root_cert.source, chain_file.source)
        return cls(signing_key=key, signing_cert=cert, root_cert=root, chain=tuple(chain),
                   token_bytes=token_bytes, trust_domain=trust_domain, workload_ttl=workload_ttl,
                   max_workload_ttl=max_workload_ttl, plugged=True)

    # -- issuing -----------------------------------------------------------------------------

    def sign(self, csr_pem: bytes | str, *, identity: SpiffeId, now: float,
             ttl: float | None = None) -> IssuedCertificate:
        """Sign a workload CSR for ``identity``, the one identity the caller is authorised for;
        the CSR must ask for exactly that identity. Refusals are :class:`CAError` (reasons in
        docs/identity.md), counted in :meth:`statistics`."""
        return self._counted(lambda: self._issue(parse_csr(csr_pem), identity, now, ttl))

    def sign_claimed(self, csr_pem: bytes | str, *, claim: TokenClaim, now: float,
                     ttl: float | None = None) -> IssuedCertificate:
        """Sign a workload CSR for the identity it asks for, if the caller's verified token
        ``claim`` allows that identity (a mesh token allows any in this trust domain)."""
        def issue() -> IssuedCertificate:
            request = parse_csr(csr_pem)
            if not claim.allows(request.identity):
                raise CAError(f"the token allows {claim.scope}, not {request.identity}",
                              reason="not-authorized")
            return self._issue(request, request.identity, now, ttl)
        return self._counted(issue)

    def _counted(self, issue: Callable[[], IssuedCertificate]) -> IssuedCertificate:
        try:
            issued = issue()
        except CAError as exc:
            self._refused[exc.reason] += 1
            raise
        self._issued += 1
        return issued

    def _lifetime(self, ttl: float | None) -> float:
        lifetime = self.workload_ttl if ttl is None else float(ttl)
        if lifetime < 1:
            raise CAError(f"the requested lifetime {lifetime:g}s is below one second", reason="bad-ttl")
        if lifetime > self.max_workload_ttl:
            raise CAError(f"the requested lifetime {lifetime:g}s is above the maximum "
                          f"{self.max_workload_ttl:g}s", reason="ttl-too-long")
        return lifetime

    def _issue(self, request: WorkloadCSR, identity: SpiffeId, now: float,
               ttl: float | None) -> IssuedCertificate:
        lifetime = self._lifetime(ttl)
        problem = _validity(self._signing_cert, now)
        if problem:
            raise CAError(f"the CA's signing certificate {problem}", reason="ca-expired")
        if identity.trust_domain != self.trust_domain:
            raise CAError(f"this CA issues identities in trust domain {self.trust_domain}, "
                          f"not {identity.trust_domain}", reason="not-authorized")
        if request.identity != identity:
            raise CAError(f"the CSR asks for {request.identity}; the caller may obtain {identity} only",
                          reason="not-authorized")
        issued_at = int(now)  # X.509 holds whole seconds: truncate now, the backdate and the lifetime
        not_before = issued_at - int(min(CLOCK_SKEW_GRACE, MAX_BACKDATE_FRACTION * lifetime))
        not_after = int(min(issued_at + int(lifetime), self._signing_cert.not_valid_after_utc.timestamp()))
        key = request.public_key
        rsa_key = isinstance(key, rsa.RSAPublicKey)
        serial = _serial(self._token_bytes)
        leaf = (x509.CertificateBuilder()
                .subject_name(x509.Name([]))
                .issuer_name(self._signing_cert.subject)
                .public_key(key)
                .serial_number(serial)
                .not_valid_before(_utc(not_before))
                .not_valid_after(_utc(not_after))
                .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity.uri)]),
                               critical=True)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                             key_encipherment=rsa_key, data_encipherment=False,
                                             key_agreement=False, key_cert_sign=False, crl_sign=False,
                                             encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                      ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key), critical=False)
                .add_extension(self._authority_key_id, critical=False)
                .sign(self._key, signature_hash(self._key)))
        leaf_pem = _pem(leaf)
        return IssuedCertificate(serial=serial, identity=identity, issued_at=float(issued_at),
                                 not_before=float(not_before), not_after=float(not_after),
                                 certificate_pem=leaf_pem, chain_pem=leaf_pem + self.chain_pem,
                                 root_pem=self.root_pem)

    # -- the shell's view --------------------------------------------------------------------

    def signing_key_pem(self) -> bytes:
        """The signing key as unencrypted PKCS#8 PEM, for the shell to persist (mode 0600)."""
        return self._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption())

    @property
    def root_not_after(self) -> float:
        return self._root.not_valid_after_utc.timestamp()

    @property
    def signing_not_after(self) -> float:
        return self._signing_cert.not_valid_after_utc.timestamp()

    def statistics(self) -> dict[str, object]:
        return {
            "trust_domain": self.trust_domain,
            "mode": "plugged" if self.plugged else "self-signed",
            "root_subject": _subject(self._root),
            "root_not_after": self.root_not_after,
            "signing_not_after": self.signing_not_after,
            "workload_ttl": self.workload_ttl,
            "max_workload_ttl": self.max_workload_ttl,
            "issued": self._issued,
            "refused": dict(sorted(self._refused.items())),
        }

    def __repr__(self) -> str:
        mode = "plugged" if self.plugged else "self-signed"
        return (f"<CertificateAuthority {mode} {self.trust_domain} root={_subject(self._root)!r} "
                f"issued={self._issued} refused={sum(self._refused.values())}>")


def _serial(token_bytes: TokenBytes) -> int:
    raw = token_bytes(SERIAL_BYTES)
    if len(raw) != SERIAL_BYTES:
        raise ValueError(f"token_bytes({SERIAL_BYTES}) returned {len(raw)} bytes")
    return int.from_bytes(raw, "big") or 1  # positive, at most 17 DER octets


def _check_chain(signing: x509.Certificate, root: x509.Certificate, chain: list[x509.Certificate],
                 now: float, signing_source: str, root_source: str, chain_source: str) -> None:
    """cert-chain.pem: empty only when the signing certificate is the root; otherwise it begins
    with the signing certificate and each certificate is signed by the next, the last by the root
    (or is the root)."""
    if not chain:
        if signing != root:
            raise ConfigError(f"is empty, but {signing_source} is not {root_source}: list "
                              f"{signing_source} and every intermediate up to the root", source=chain_source)
        return
    if chain[0] != signing:
        raise ConfigError(f"must begin with the signing certificate of {signing_source} "
                          f"({_subject(signing)}); it begins with {_subject(chain[0])}", source=chain_source)
    for position, (cert, issuer) in enumerate(zip(chain, chain[1:]), start=1):
        if not _issued_by(cert, issuer):
            raise ConfigError(f"certificate {position} ({_subject(cert)}) is not signed by certificate "
                              f"{position + 1} ({_subject(issuer)})", source=chain_source)
        for problem in (_is_ca(issuer), _validity(issuer, now)):
            if problem:
                raise ConfigError(f"certificate {position + 1} ({_subject(issuer)}) {problem}",
                                  source=chain_source)
    last = chain[-1]
    if last != root and not _issued_by(last, root):
        raise ConfigError(f"does not lead to the root of {root_source}: its last certificate "
                          f"({_subject(last)}) is not signed by {_subject(root)}", source=chain_source)
