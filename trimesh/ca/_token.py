"""CA tokens: what a caller presents so the CA knows which identities it may obtain.

The CA signs a CSR only for a caller that presents a token (DESIGN.md §5; the docs' "the CA validates
the credentials carried in the CSR", concepts.md §9.6, behaviour 87). Two kinds:

* an **identity token** (``trimesh ca token --service-account SA``) allows exactly one identity,
  ``<namespace>/<service-account>``, and usually expires;
* the **mesh token** (kept 0600 in the control's state dir, the one-host default) allows any identity
  in the CA's trust domain.

Format — ``tmca1.<payload>.<mac>``, both parts base64url without padding:

* ``payload`` is UTF-8 ``<scope> <expires>``: the scope is ``<namespace>/<service-account>`` or ``*``
  (any identity), ``expires`` whole seconds since the epoch, or ``-`` for a token that never expires;
* ``mac`` is HMAC-SHA256 (RFC 2104) keyed with the CA's token secret over ``tmca1.`` + the encoded
  payload, compared in constant time.

A token therefore needs no state at the CA beyond its secret, and it cannot be widened: changing the
scope or the expiry changes the MAC. Rotating the secret (a new :func:`new_token_secret`) revokes every
token at once; there is no per-token revocation (a short expiry is the tool). The shell presents the
token as ``Authorization: Bearer <token>``. Refusals are :class:`~trimesh.errors.CAError` with
reason ``token-invalid`` (malformed, tampered, signed with another secret) or ``token-expired``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable

import msgspec

from ..errors import CAError, ConfigError
from ._spiffe import SpiffeId

TOKEN_PREFIX = "tmca1"
SECRET_BYTES = 32  # an HMAC-SHA256 key as long as the hash output (RFC 2104 §3)
MIN_SECRET_BYTES = 16  # RFC 2104 §3: keys shorter than the output weaken the MAC; refuse below half
MAX_TOKEN_CHARS = 1024  # a token is under 200 characters; longer input is not a token
ANY_IDENTITY = "*"
_NEVER = "-"


class TokenClaim(msgspec.Struct, frozen=True):
    """What a verified token allows: one ``namespace``/``service_account``, or any identity when
    both are ``None`` (the mesh token). ``expires`` is epoch seconds, ``None`` for never."""

    namespace: str | None
    service_account: str | None
    expires: float | None

    @property
    def any_identity(self) -> bool:
        return self.namespace is None

    @property
    def scope(self) -> str:
        return "any identity" if self.any_identity else f"{self.namespace}/{self.service_account}"

    def allows(self, identity: SpiffeId) -> bool:
        """Whether the holder may obtain ``identity`` (the trust domain is the CA's to check)."""
        return self.any_identity or (identity.namespace == self.namespace
                                     and identity.service_account == self.service_account)


def new_token_secret(token_bytes: Callable[[int], bytes]) -> bytes:
    """A fresh CA token secret from the caller's ``token_bytes`` (``secrets.token_bytes``)."""
    return _check_secret(token_bytes(SECRET_BYTES))


def _check_secret(secret: bytes) -> bytes:
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(f"the CA token secret is {len(secret)} bytes; at least {MIN_SECRET_BYTES} "
                          "are required")
    return secret


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


def _mac(secret: bytes, encoded_payload: str) -> bytes:
    return hmac.new(secret, f"{TOKEN_PREFIX}.{encoded_payload}".encode("ascii"), hashlib.sha256).digest()


def _sign(secret: bytes, scope: str, expires: float | None) -> str:
    when = _NEVER if expires is None else str(int(expires))
    payload = _b64(f"{scope} {when}".encode())
    return f"{TOKEN_PREFIX}.{payload}.{_b64(_mac(_check_secret(secret), payload))}"


def issue_token(secret: bytes, namespace: str, service_account: str, expires: float | None) -> str:
    """A token that allows ``namespace``/``service_account`` only, until ``expires``."""
    ident = SpiffeId.of(namespace, service_account)  # the names' syntax
    return _sign(secret, f"{ident.namespace}/{ident.service_account}", expires)


def issue_mesh_token(secret: bytes, expires: float | None = None) -> str:
    """The mesh token: any identity in the CA's trust domain."""
    return _sign(secret, ANY_IDENTITY, expires)


def _invalid(why: str) -> CAError:
    return CAError(f"the token is not valid: {why}", reason="token-invalid")


def verify_token(secret: bytes, token: str, now: float) -> TokenClaim:
    """The claim of a token this CA's ``secret`` signed, if it has not expired at ``now``."""
    token = token.strip()
    if len(token) > MAX_TOKEN_CHARS:
        raise _invalid(f"longer than {MAX_TOKEN_CHARS} characters")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        raise _invalid(f"expected {TOKEN_PREFIX}.<payload>.<mac>")
    _, payload, mac = parts
    try:
        presented = _unb64(mac)
        text = _unb64(payload).decode("utf-8")
    except (binascii.Error, ValueError):
        raise _invalid("not base64url") from None
    if not hmac.compare_digest(presented, _mac(_check_secret(secret), payload)):
        raise _invalid("its signature does not match (altered, or issued by another CA)")
    scope, _, when = text.partition(" ")
    try:
        expires = None if when == _NEVER else float(int(when))
    except ValueError:
        raise _invalid("bad expiry") from None
    if expires is not None and now >= expires:
        raise CAError(f"the token for {scope if scope != ANY_IDENTITY else 'any identity'} "
                      f"expired {now - expires:.0f}s ago", reason="token-expired")
    if scope == ANY_IDENTITY:
        return TokenClaim(None, None, expires)
    namespace, _, account = scope.partition("/")
    try:
        SpiffeId.of(namespace, account)
    except CAError:
        raise _invalid("bad scope") from None
    return TokenClaim(namespace, account, expires)
