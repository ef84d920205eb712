"""Certificate signing requests: what a workload sends, and what the CA accepts.

The workload makes its key on its own host and sends only a CSR (concepts.md §9.2, §9.6; behaviour
86): :func:`make_csr` builds one for an identity. The CA reads it with :func:`parse_csr`, which
refuses, with a :class:`~trimesh.errors.CAError` whose ``reason`` says which rule broke:

========================  =====================================================================
``bad-csr``               not a PEM ``CERTIFICATE REQUEST``, more than one block, too large, or
                          not parseable
``bad-signature``         the CSR's self-signature does not verify (it was altered, or the
                          sender does not hold the key)
``weak-key``              an RSA key below :data:`MIN_RSA_BITS`
``unsupported-key``       a key that is neither RSA nor ECDSA on P-256/P-384/P-521 (DSA,
                          Ed25519, other curves)
``bad-san``               no SAN, a DNS/IP/e-mail/other SAN, more than one URI SAN, or a URI that
                          is not a SPIFFE ID of the Istio shape
========================  =====================================================================

Key types: RSA ≥ 2048 bits (NIST SP 800-57 part 1, table 2: 112-bit security until 2030; also the
CA/Browser Forum baseline minimum) and ECDSA on the NIST curves. That is the set every TLS 1.2 and
1.3 stack, curl and OpenSSL's ``verify`` accept; Ed25519 certificates are refused because TLS 1.2
peers cannot use them. ECDSA P-256 is the recommended workload key (the cheapest handshake).

Nothing else in the CSR is trusted: its subject and any extensions it requests other than the SAN
are ignored; the CA writes the certificate's extensions itself (``_authority.py``).
"""

from __future__ import annotations

from typing import Union

import msgspec
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ..errors import CAError
from ._spiffe import SpiffeId

MIN_RSA_BITS = 2048  # NIST SP 800-57 pt. 1 table 2 (112-bit strength); CA/B Forum BR §6.1.5
MAX_RSA_BITS = 8192  # bounds the CA's cost of checking a signature; nobody needs more
ALLOWED_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)  # the NIST curves TLS stacks all speak
MAX_CSR_BYTES = 64 * 1024  # a 8192-bit RSA CSR is under 4 KiB; anything near this is not a CSR

_CSR_MARKERS = (b"-----BEGIN CERTIFICATE REQUEST-----", b"-----BEGIN NEW CERTIFICATE REQUEST-----")

PublicKey = Union[rsa.RSAPublicKey, ec.EllipticCurvePublicKey]
PrivateKey = Union[rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey]


def check_key(key: object, *, what: str = "the key") -> None:
    """Refuse a public or private key the mesh does not use (see the module docstring)."""
    if isinstance(key, (rsa.RSAPublicKey, rsa.RSAPrivateKey)):
        if key.key_size < MIN_RSA_BITS:
            raise CAError(f"{what} is RSA {key.key_size} bits; at least {MIN_RSA_BITS} are required",
                          reason="weak-key")
        if key.key_size > MAX_RSA_BITS:
            raise CAError(f"{what} is RSA {key.key_size} bits; at most {MAX_RSA_BITS} are accepted",
                          reason="unsupported-key")
        return
    if isinstance(key, (ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey)):
        if not isinstance(key.curve, ALLOWED_CURVES):
            raise CAError(f"{what} is on curve {key.curve.name}; the mesh accepts "
                          "secp256r1, secp384r1 and secp521r1", reason="unsupported-key")
        return
    raise CAError(f"{what} is a {type(key).__name__.lstrip('_')}; the mesh accepts RSA and ECDSA keys",
                  reason="unsupported-key")


def signature_hash(key: object) -> hashes.HashAlgorithm:
    """The digest a key signs with: SHA-256 for every key the mesh accepts."""
    return hashes.SHA256()


class WorkloadCSR(msgspec.Struct, frozen=True):
    """A CSR that passed every check: the identity it asks for and the key to certify."""

    identity: SpiffeId
    public_key: PublicKey
    csr: x509.CertificateSigningRequest


def _bad(message: str, reason: str = "bad-csr") -> CAError:
    return CAError(message, reason=reason)


def _load(csr_pem: bytes | str) -> x509.CertificateSigningRequest:
    data = csr_pem.encode() if isinstance(csr_pem, str) else bytes(csr_pem)
    if len(data) > MAX_CSR_BYTES:
        raise _bad(f"the CSR is {len(data)} bytes; at most {MAX_CSR_BYTES} are accepted")
    if not any(m in data for m in _CSR_MARKERS):
        raise _bad("the request is not a PEM CERTIFICATE REQUEST")
    if data.count(b"-----BEGIN ") != 1:
        raise _bad("the request holds more than one PEM block; send exactly one CSR")
    try:
        return x509.load_pem_x509_csr(data)
    except ValueError as exc:
        raise _bad(f"the CSR cannot be parsed: {exc}") from None


def _requested_identity(csr: x509.CertificateSigningRequest) -> SpiffeId:
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise _bad("the CSR asks for no identity: it needs one URI SAN spiffe://…", "bad-san") from None
    except ValueError as exc:  # a malformed extension
        raise _bad(f"the CSR's extensions cannot be parsed: {exc}") from None
    others = [n for n in san if not isinstance(n, x509.UniformResourceIdentifier)]
    if others:
        shown = ", ".join(f"{type(n).__name__}:{n.value}" for n in others)
        raise _bad(f"the CSR asks for SANs other than its SPIFFE URI ({shown}); "
                   "workload certificates carry exactly one URI SAN and no DNS SAN", "bad-san")
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    if len(uris) != 1:
        raise _bad(f"the CSR asks for {len(uris)} URI SANs ({', '.join(uris)}); exactly one is allowed",
                   "bad-san")
    try:
        return SpiffeId.parse(uris[0])
    except CAError as exc:
        raise _bad(f"the CSR's URI SAN is not a workload identity: {exc.message}", "bad-san") from None


def parse_csr(csr_pem: bytes | str) -> WorkloadCSR:
    """Validate a PEM CSR (see the module docstring for every refusal) and return what it asks."""
    csr = _load(csr_pem)
    try:
        key = csr.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise _bad(f"the CSR's key cannot be read: {exc}", "unsupported-key") from None
    check_key(key, what="the CSR's key")
    try:
        valid = csr.is_signature_valid
    except (ValueError, UnsupportedAlgorithm):
        valid = False
    if not valid:
        raise _bad("the CSR's signature does not verify with its own key", "bad-signature")
    return WorkloadCSR(_requested_identity(csr), key, csr)  # type: ignore[arg-type]


def make_csr(key: PrivateKey, identity: SpiffeId) -> bytes:
    """A PEM CSR asking for ``identity``, signed with ``key`` (the workload's own key, made on its
    host: ``ec.generate_private_key(ec.SECP256R1())``). Empty subject, one critical URI SAN."""
    check_key(key, what="the workload key")
    builder = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([]))
               .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity.uri)]),
                              critical=True))
    return builder.sign(key, signature_hash(key)).public_bytes(serialization.Encoding.PEM)
