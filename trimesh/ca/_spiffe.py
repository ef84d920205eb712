"""Workload identities: SPIFFE IDs, reading them from certificates, and the secure-naming check.

A workload runs as a service account, and its identity is the SPIFFE ID
``spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`` (concepts.md §9.3, docs L1130;
DESIGN.md §4). The trust domain is ``cluster.local`` unless the mesh is configured otherwise
(behaviour 85). Mixer's ``source.user`` / ``source.principal`` is the same string without the
``spiffe://`` scheme — ``cluster.local/ns/default/sa/bookinfo-productpage`` — so the docs' rules work
verbatim (telemetry-security.md §10.2, §18 item 1); :attr:`SpiffeId.principal` is that string.

Syntax follows the SPIFFE ID standard (spiffe/spiffe ``standards/SPIFFE-ID.md``): the trust domain is
lowercase letters, digits, ``.``, ``-`` and ``_``; a path segment is letters, digits, ``.``, ``-``
and ``_``, never empty, ``.`` or ``..``; no port, user info, query or fragment; at most 2048 bytes.
Istio's path shape is required on top: exactly ``/ns/<namespace>/sa/<service-account>``.

An identity travels in an X.509 certificate as its one URI SAN (the X.509-SVID standard: exactly one
URI SAN). :func:`identity_from_certificate` reads it from the DER bytes the inbound gets from
``ssl.SSLSocket.getpeercert(binary_form=True)`` — or from PEM — and answers ``None`` for a certificate
that carries no SPIFFE identity, or more than one URI SAN, rather than guessing.

Secure naming (concepts.md §9.4, docs L1179, behaviour 93): the client checks that the identity the
server's certificate presents is one of the service accounts allowed to run the service it called;
:func:`check_secure_naming` is that decision, pure, with the reason a refusal is logged under.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import msgspec
from cryptography import x509

from ..errors import CAError

SCHEME = "spiffe://"
DEFAULT_TRUST_DOMAIN = "cluster.local"  # docs L1133 ("domain is currently cluster.local")
MAX_ID_LENGTH = 2048  # SPIFFE-ID.md §2.3: SPIFFE IDs are at most 2048 bytes

_TRUST_DOMAIN = re.compile(r"[a-z0-9._-]+\Z")  # SPIFFE-ID.md §2.1
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+\Z")  # SPIFFE-ID.md §2.2


def _check_trust_domain(value: str) -> str:
    if not _TRUST_DOMAIN.match(value):
        raise CAError(f"trust domain {value!r} must be lowercase letters, digits, '.', '-' or '_'",
                      reason="bad-identity")
    return value


def _check_segment(what: str, value: str) -> str:
    if not _SEGMENT.match(value) or value in {".", ".."}:
        raise CAError(f"{what} {value!r} must be letters, digits, '.', '-' or '_' (and not '.' or '..')",
                      reason="bad-identity")
    return value


class SpiffeId(msgspec.Struct, frozen=True, order=True):
    """One workload identity. ``str(id)`` is the URI; ``id.principal`` is ``source.user``."""

    trust_domain: str
    namespace: str
    service_account: str

    @classmethod
    def of(cls, namespace: str, service_account: str,
           trust_domain: str = DEFAULT_TRUST_DOMAIN) -> SpiffeId:
        """The identity of ``service_account`` in ``namespace``, checked for SPIFFE syntax."""
        ident = cls(_check_trust_domain(trust_domain), _check_segment("namespace", namespace),
                    _check_segment("service account", service_account))
        if len(ident.uri.encode()) > MAX_ID_LENGTH:
            raise CAError(f"identity is longer than {MAX_ID_LENGTH} bytes", reason="bad-identity")
        return ident

    @classmethod
    def parse(cls, uri: str) -> SpiffeId:
        """``spiffe://cluster.local/ns/default/sa/bookinfo-productpage`` → SpiffeId; a
        :class:`CAError` (reason ``bad-identity``) saying what is wrong otherwise."""
        if not uri.startswith(SCHEME):
            raise CAError(f"identity {uri!r} does not start with {SCHEME}", reason="bad-identity")
        return cls.from_principal(uri[len(SCHEME):], _shown=uri)

    @classmethod
    def from_principal(cls, principal: str, *, _shown: str | None = None) -> SpiffeId:
        """``cluster.local/ns/default/sa/x`` (the ``source.user`` form) → SpiffeId."""
        shown = _shown if _shown is not None else principal
        if any(c in principal for c in "?#@:"):
            raise CAError(f"identity {shown!r} must not carry a port, user, query or fragment",
                          reason="bad-identity")
        parts = principal.split("/")
        if len(parts) != 5 or parts[1] != "ns" or parts[3] != "sa":
            raise CAError(f"identity {shown!r} is not of the form "
                          f"{SCHEME}<trust-domain>/ns/<namespace>/sa/<service-account>",
                          reason="bad-identity")
        return cls.of(parts[2], parts[4], parts[0])

    @property
    def uri(self) -> str:
        return f"{SCHEME}{self.principal}"

    @property
    def principal(self) -> str:
        """The identity without ``spiffe://``: what Mixer's ``source.user`` shows."""
        return f"{self.trust_domain}/ns/{self.namespace}/sa/{self.service_account}"

    def __str__(self) -> str:
        return self.uri


def identity_from_certificate(data: bytes | None) -> SpiffeId | None:
    """The SPIFFE identity a certificate (DER, or PEM: its first block) carries in its URI SAN.

    ``None`` when there is no certificate (``getpeercert`` of a peer that sent none gives ``None``),
    the bytes are not a certificate, it has no SAN, it has no URI SAN or more than
    one (X.509-SVID: exactly one), or the URI is not an Istio-shaped SPIFFE ID. The caller has
    already verified the chain (the TLS handshake did); this only reads the name.
    """
    if not data:
        return None
    try:
        cert = (x509.load_pem_x509_certificate(data) if data.lstrip().startswith(b"-----BEGIN")
                else x509.load_der_x509_certificate(data))
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    if len(uris) != 1:
        return None
    try:
        return SpiffeId.parse(uris[0])
    except CAError:
        return None


def check_secure_naming(presented: SpiffeId | None, allowed: SpiffeId | Iterable[SpiffeId]) -> str | None:
    """Secure naming: ``None`` when the server's ``presented`` identity may run the service, else
    the reason it may not (logged and counted by the caller, which answers 503).

    ``allowed`` is the identity (or identities: several service accounts may run one service,
    concepts.md §9.6) the registry names for the instance that was called.
    """
    accepted = {allowed} if isinstance(allowed, SpiffeId) else set(allowed)
    if presented is None:
        return "the server's certificate carries no SPIFFE identity"
    if presented in accepted:
        return None
    if not accepted:
        return f"no service account is registered for the service; the server presented {presented}"
    names = ", ".join(sorted(str(a) for a in accepted))
    return f"the server presented {presented}, the service runs as {names}"
