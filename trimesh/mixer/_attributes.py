"""Mixer's attributes: the value types, the vocabulary, manifests, and the attribute bag. PURE.

An attribute is "a named, typed piece of metadata" about a request and its environment
(concepts.md §11.1): ``request.size: 234``, ``source.ip: 192.168.0.1``. Names are Java-like dotted
identifiers (``[_.a-z0-9]``, L1397; the Kubernetes manifest also uses ``source.serviceAccount``).
Every attribute has one :class:`ValueType` (istio/api ``policy/v1beta1/value_type.proto``,
concepts.md §11.3).

**Vocabulary.** :data:`VOCABULARY` is the set a trimesh deployment produces: Istio's two default
``attributemanifest`` objects of 0.5–0.7 (``istioproxy`` and ``kubernetes`` in ``istio-system``),
plus the rest of the 0.4–0.7 attribute-vocabulary page (concepts.md §11.4: ``source.domain``,
``destination.port``, ``check.error_code`` …) and the two legacy names of the docs' own manifest
example (``target.name``, ``target.service``, L1387/L1798).

**Manifest.** A :class:`Manifest` is the immutable name → type table an expression is checked
against. :meth:`Manifest.default` is the vocabulary; :meth:`Manifest.extended` adds the attributes
of user ``attributemanifest`` objects (concepts.md §12.13). Declaring an attribute again with the
same type is allowed (Istio's manifests overlap); with another type it is a config error.

**Bag.** A :class:`Bag` is the attributes of one request: a read-only mapping over a dict that it
does not copy, so building one per request costs one object. A missing attribute is absent
(``"x" in bag`` is false, ``bag.get("x")`` is :data:`MISSING`); an attribute present with the empty
string is a value, not a missing one. Python types by value type:

==================  =====================================================================
STRING, EMAIL_ADDRESS, URI, DNS_NAME  ``str``
INT64               ``int``
DOUBLE              ``float``
BOOL                ``bool``
TIMESTAMP           ``datetime.datetime`` with a time zone
IP_ADDRESS          ``ipaddress.IPv4Address``/``IPv6Address`` (``str`` and 4/16 ``bytes`` are read too)
DURATION            ``float`` seconds (trimesh's unit; ``trimesh.config.Duration`` is one)
STRING_MAP          any ``Mapping[str, str]`` (``request.headers``, ``source.labels``)
==================  =====================================================================
"""

from __future__ import annotations

import difflib
import enum
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ..errors import ConfigError

__all__ = ["ValueType", "VOCABULARY", "Manifest", "Bag", "MISSING"]


class ValueType(enum.StrEnum):
    """istio/api policy/v1beta1/value_type.proto (``VALUE_TYPE_UNSPECIFIED`` is not a type)."""

    STRING = "STRING"
    INT64 = "INT64"
    DOUBLE = "DOUBLE"
    BOOL = "BOOL"
    TIMESTAMP = "TIMESTAMP"
    IP_ADDRESS = "IP_ADDRESS"
    EMAIL_ADDRESS = "EMAIL_ADDRESS"
    URI = "URI"
    DNS_NAME = "DNS_NAME"
    DURATION = "DURATION"
    STRING_MAP = "STRING_MAP"


_S, _I, _B = ValueType.STRING, ValueType.INT64, ValueType.BOOL
_IP, _T, _D, _M = ValueType.IP_ADDRESS, ValueType.TIMESTAMP, ValueType.DURATION, ValueType.STRING_MAP

# name -> (type, description). Sources: Istio 0.5-0.7 attributemanifest `istioproxy` and
# `kubernetes` (istio-system), the attribute-vocabulary page (concepts.md §11.4).
VOCABULARY: dict[str, tuple[ValueType, str]] = {
    # the workload that sent the request (kubernetes manifest; trimesh's registry fills them)
    "source.ip": (_IP, "IP address of the client"),
    "source.service": (_S, "fully-qualified name of the client's service"),
    "source.name": (_S, "name of the client workload"),
    "source.namespace": (_S, "namespace of the client"),
    "source.domain": (_S, "domain suffix of the client's service"),
    "source.uid": (_S, "platform id of the client instance"),
    "source.labels": (_M, "labels of the client instance"),
    "source.user": (_S, "identity of the immediate sender, from its mTLS certificate"),
    "source.serviceAccount": (_S, "service account of the client"),
    # the workload the request is for
    "destination.ip": (_IP, "IP address of the server"),
    "destination.port": (_I, "port of the server"),
    "destination.service": (_S, "fully-qualified name of the server's service"),
    "destination.name": (_S, "name of the server workload"),
    "destination.namespace": (_S, "namespace of the server"),
    "destination.domain": (_S, "domain suffix of the server's service"),
    "destination.uid": (_S, "platform id of the server instance"),
    "destination.labels": (_M, "labels of the server instance"),
    "destination.user": (_S, "identity of the server"),
    "destination.serviceAccount": (_S, "service account of the server"),
    # the original client behind an ingress
    "origin.ip": (_IP, "IP address of the original client"),
    "origin.uid": (_S, "platform id of the original client"),
    "origin.user": (_S, "identity of the original client"),
    # the request
    "request.headers": (_M, "HTTP request headers (lower-case names) or gRPC metadata"),
    "request.id": (_S, "x-request-id of the request"),
    "request.path": (_S, "HTTP path, with the query"),
    "request.host": (_S, "HTTP/1 Host or HTTP/2 :authority"),
    "request.method": (_S, "HTTP method"),
    "request.reason": (_S, "audit reason"),
    "request.referer": (_S, "HTTP Referer header"),
    "request.scheme": (_S, "URI scheme (http, https)"),
    "request.size": (_I, "request body size in bytes (Content-Length)"),
    "request.total_size": (_I, "request size in bytes, head and body"),
    "request.time": (_T, "when the request arrived"),
    "request.useragent": (_S, "HTTP User-Agent header"),
    "request.auth.principal": (_S, "authenticated principal (JWT iss/sub)"),
    "request.auth.audiences": (_S, "intended audience of the JWT"),
    "request.auth.presenter": (_S, "authorized presenter of the JWT"),
    "request.api_key": (_S, "API key of the request"),
    # the response
    "response.headers": (_M, "HTTP response headers"),
    "response.size": (_I, "response body size in bytes"),
    "response.total_size": (_I, "response size in bytes, head and body"),
    "response.time": (_T, "when the response was sent"),
    "response.duration": (_D, "time taken to answer"),
    "response.code": (_I, "HTTP status code"),
    # TCP connections
    "connection.id": (_S, "id of the TCP connection"),
    "connection.received.bytes": (_I, "bytes received from the client since the last report"),
    "connection.received.bytes_total": (_I, "bytes received from the client in total"),
    "connection.sent.bytes": (_I, "bytes sent to the client since the last report"),
    "connection.sent.bytes_total": (_I, "bytes sent to the client in total"),
    "connection.duration": (_D, "how long the connection has been open"),
    "connection.mtls": (_B, "whether the connection is mutual TLS"),
    # context
    "context.protocol": (_S, "protocol of the request: http, http2, grpc, tcp"),
    "context.time": (_T, "when Mixer handled the operation"),
    "context.timestamp": (_T, "when Mixer handled the operation (istioproxy manifest)"),
    # API management
    "api.service": (_S, "public name of the API service"),
    "api.version": (_S, "API version"),
    "api.operation": (_S, "API operation"),
    "api.protocol": (_S, "API protocol"),
    # Mixer check results
    "check.error_code": (_I, "google.rpc.Code of a failed check"),
    "check.error_message": (_S, "message of a failed check"),
    # legacy names of the docs' manifest example (L1387, L1798)
    "target.name": (_S, "legacy name of destination.name"),
    "target.service": (_S, "legacy name of destination.service"),
}


class Manifest(Mapping[str, ValueType]):
    """An immutable attribute name → :class:`ValueType` table (hashable, so it can key caches)."""

    __slots__ = ("_types", "_hash")

    def __init__(self, types: Mapping[str, ValueType | str] | None = None) -> None:
        self._types = {name: ValueType(t) for name, t in (types or {}).items()}
        self._hash: int | None = None

    @classmethod
    def default(cls) -> Manifest:
        """The vocabulary (:data:`VOCABULARY`)."""
        return _DEFAULT

    def extended(self, attributes: Mapping[str, Any], *, source: str = "attributemanifest") -> Manifest:
        """This manifest plus ``attributes`` (name → type name, :class:`ValueType`, or an object with
        ``value_type`` such as ``trimesh.config.AttributeInfo``). A name declared with another type
        than it already has is a :class:`~trimesh.errors.ConfigError`."""
        types = dict(self._types)
        for name, info in attributes.items():
            raw = getattr(info, "value_type", info)
            try:
                t = ValueType(raw)
            except ValueError:
                raise ConfigError(f"attribute {name!r}: unknown valueType {raw!r}",
                                  source=source) from None
            old = types.get(name)
            if old is not None and old is not t:
                raise ConfigError(f"attribute {name!r} is {old} already; {source} declares it {t}",
                                  source=source)
            types[name] = t
        return Manifest(types)

    def with_manifests(self, specs: Iterable[Any]) -> Manifest:
        """Extended by the ``attributes`` of each ``AttributeManifest`` spec, in order."""
        out = self
        for spec in specs:
            out = out.extended(spec.attributes)
        return out

    def suggest(self, name: str) -> str | None:
        """The known name closest to a misspelled one, or ``None``."""
        close = difflib.get_close_matches(name, list(self._types), n=1, cutoff=0.75)
        return close[0] if close else None

    def __getitem__(self, name: str) -> ValueType:
        return self._types[name]

    def get(self, name: str, default: Any = None) -> Any:  # the fast path of the checker
        return self._types.get(name, default)

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def __iter__(self) -> Iterator[str]:
        return iter(self._types)

    def __len__(self) -> int:
        return len(self._types)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Manifest) and self._types == other._types

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._types.items()))
        return self._hash

    def __repr__(self) -> str:
        return f"<Manifest {len(self._types)} attributes>"


_DEFAULT = Manifest({name: t for name, (t, _) in VOCABULARY.items()})


class _Missing:
    """The outcome "an attribute the expression needs is not in the bag"."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()


class Bag(Mapping[str, Any]):
    """The attributes of one request: a read-only view of ``values`` (not copied)."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        self._values = values if values is not None else {}

    @property
    def values_mapping(self) -> Mapping[str, Any]:
        """The underlying mapping (what compiled expressions read)."""
        return self._values

    def with_attributes(self, extra: Mapping[str, Any]) -> Bag:
        """A new bag: these attributes, then ``extra`` over them (Mixer's supplementary attributes,
        concepts.md §12.5)."""
        merged = dict(self._values)
        merged.update(extra)
        return Bag(merged)

    def get(self, name: str, default: Any = MISSING) -> Any:
        return self._values.get(name, default)

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Bag({dict(self._values)!r})"
