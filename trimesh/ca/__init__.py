"""The mesh's certificate authority: identities, CSRs, tokens, issuing and renewal, and the Trio
services on top (the CA service, the cert agent).

``CertificateAuthority.self_signed(...)`` or ``.from_plugin(...)`` (the operator's ``ca-cert.pem``,
``ca-key.pem``, ``root-cert.pem``, ``cert-chain.pem``) builds the CA; ``ca.sign(csr, identity=...,
now=...)`` or ``ca.sign_claimed(csr, claim=verify_token(secret, token, now), now=...)`` issues a
workload certificate with one ``spiffe://<domain>/ns/<ns>/sa/<sa>`` URI SAN. ``SpiffeId`` parses and
formats identities (``.principal`` is Mixer's ``source.user``), ``identity_from_certificate`` reads
one from a peer certificate, ``check_secure_naming`` is the client's check. ``IssuanceLog`` records
what was issued; ``renewal_time``/``renewal_delay`` tell the cert agent when to renew. No I/O, no
clock, no randomness of its own: ``now``, keys and ``token_bytes`` are passed in (docs/identity.md).
Those modules are pure; the shells are ``_service.py`` (``serve_ca``, ``CAService``: ``trimesh run
ca`` and the control's ``ca`` child) and ``_agent.py`` (``CertAgent``, ``CertStore``: the sidecar's
cert agent).
"""

from ._agent import CertAgent as CertAgent
from ._agent import CertMaterial as CertMaterial
from ._agent import CertStore as CertStore
from ._agent import ca_request as ca_request
from ._agent import parse_ca_url as parse_ca_url
from ._authority import CLOCK_SKEW_GRACE as CLOCK_SKEW_GRACE
from ._authority import MAX_BACKDATE_FRACTION as MAX_BACKDATE_FRACTION
from ._authority import MAX_WORKLOAD_TTL as MAX_WORKLOAD_TTL
from ._authority import PLUGIN_FILE_NAMES as PLUGIN_FILE_NAMES
from ._authority import SELF_SIGNED_ROOT_TTL as SELF_SIGNED_ROOT_TTL
from ._authority import SERIAL_BYTES as SERIAL_BYTES
from ._authority import WORKLOAD_TTL as WORKLOAD_TTL
from ._authority import CertificateAuthority as CertificateAuthority
from ._authority import IssuedCertificate as IssuedCertificate
from ._authority import PemFile as PemFile
from ._csr import MIN_RSA_BITS as MIN_RSA_BITS
from ._csr import WorkloadCSR as WorkloadCSR
from ._csr import make_csr as make_csr
from ._csr import parse_csr as parse_csr
from ._record import IssuanceLog as IssuanceLog
from ._record import IssuedRecord as IssuedRecord
from ._renewal import MIN_GRACE as MIN_GRACE
from ._renewal import RENEWAL_RATIO as RENEWAL_RATIO
from ._renewal import renewal_delay as renewal_delay
from ._renewal import renewal_time as renewal_time
from ._service import DEFAULT_CA_PORT as DEFAULT_CA_PORT
from ._service import CAService as CAService
from ._service import CAState as CAState
from ._service import load_or_create_state as load_or_create_state
from ._service import mesh_token_path as mesh_token_path
from ._service import serve_ca as serve_ca
from ._service import token_secret_path as token_secret_path
from ._spiffe import DEFAULT_TRUST_DOMAIN as DEFAULT_TRUST_DOMAIN
from ._spiffe import SpiffeId as SpiffeId
from ._spiffe import check_secure_naming as check_secure_naming
from ._spiffe import identity_from_certificate as identity_from_certificate
from ._token import TokenClaim as TokenClaim
from ._token import issue_mesh_token as issue_mesh_token
from ._token import issue_token as issue_token
from ._token import new_token_secret as new_token_secret
from ._token import verify_token as verify_token

__all__ = [
    "CertAgent", "CertMaterial", "CertStore", "ca_request", "parse_ca_url",
    "DEFAULT_CA_PORT", "CAService", "CAState", "load_or_create_state", "mesh_token_path",
    "serve_ca", "token_secret_path",
    "CLOCK_SKEW_GRACE", "MAX_BACKDATE_FRACTION", "MAX_WORKLOAD_TTL", "PLUGIN_FILE_NAMES",
    "SELF_SIGNED_ROOT_TTL", "SERIAL_BYTES", "WORKLOAD_TTL", "CertificateAuthority",
    "IssuedCertificate", "PemFile", "MIN_RSA_BITS", "WorkloadCSR", "make_csr", "parse_csr",
    "IssuanceLog", "IssuedRecord", "MIN_GRACE", "RENEWAL_RATIO", "renewal_delay", "renewal_time",
    "DEFAULT_TRUST_DOMAIN", "SpiffeId", "check_secure_naming", "identity_from_certificate",
    "TokenClaim", "issue_mesh_token", "issue_token", "new_token_secret", "verify_token",
]
