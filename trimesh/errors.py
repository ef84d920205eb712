"""The trimesh exception tree.

Every error the mesh raises on purpose derives from :class:`TrimeshError`, so callers can catch the
project's errors without catching programming mistakes. Foreign exceptions (``OSError``,
``msgspec.ValidationError``, ``yaml.YAMLError``, ``ssl.SSLError``) are translated once, at the edge
that meets them, into one of these.
"""

from __future__ import annotations


class TrimeshError(Exception):
    """Base class of every error trimesh raises deliberately."""


class ConfigError(TrimeshError):
    """A configuration document is invalid.

    ``path`` is a JSONPath-like field path (``$.spec.route[1].weight``), ``line`` the 1-based line of
    the offending node in the source text when known, ``source`` the file name (or ``<stdin>``), and
    ``document`` the 0-based index of the YAML document in a multi-document stream.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        source: str | None = None,
        document: int | None = None,
    ) -> None:
        self.message = message
        self.path = path
        self.line = line
        self.source = source
        self.document = document
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.source:
            where.append(self.source if self.line is None else f"{self.source}:{self.line}")
        elif self.line is not None:
            where.append(f"line {self.line}")
        if self.document:
            where.append(f"document {self.document + 1}")
        if self.path:
            where.append(self.path)
        prefix = ", ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message


class ConflictError(TrimeshError):
    """A write was refused because of the store's state (create of an existing object, replace or
    delete of a missing one, a stale revision)."""


class NotFoundError(TrimeshError):
    """A named object, service or member does not exist."""


class ProtocolError(TrimeshError):
    """A peer broke the protocol (malformed HTTP, a bad gossip packet, ...)."""


class UpstreamError(TrimeshError):
    """An upstream could not be reached or failed mid-request."""


class MeshError(TrimeshError):
    """The mesh itself could not do what was asked (no route, no healthy instance, ...)."""


class UpstreamConnectError(UpstreamError):
    """No connection to the upstream could be made (refused, unreachable, connect timeout)."""


class UpstreamIdentityError(UpstreamConnectError):
    """Mutual TLS: the upstream's certificate does not carry the identity the registry names for
    it (secure naming), or this side holds no certificate to connect with."""


class UpstreamResetError(UpstreamError):
    """The upstream connection broke, or the upstream sent a malformed response, before the
    response head arrived."""


class UpstreamTimeoutError(UpstreamError):
    """A deadline (the route's timeout or a per-try timeout) passed before the response head."""


class CAError(TrimeshError):
    """The certificate authority refused a request: a CSR it will not sign, a token that does not
    allow the identity asked for, a lifetime above the maximum, a malformed identity.

    ``reason`` is a short stable code (``bad-csr``, ``weak-key``, ``bad-san``, ``not-authorized``,
    ``token-expired``, …; the table is in docs/identity.md) that the CA service counts and maps to
    a status. A plugged-in CA whose files are wrong is a :class:`ConfigError` naming the file.
    """

    def __init__(self, message: str, *, reason: str) -> None:
        self.message = message
        self.reason = reason
        super().__init__(message)
