"""Typed models of the traffic-management kinds: RouteRule, DestinationPolicy, EgressRule, Ingress.

Field names and defaults follow the docs (``../shared/spec/concepts.md`` §8) and, where the docs only
link to it, Istio's ``proxy/v1alpha1`` protos (route_rule.proto, dest_policy.proto, egress_rule.proto).
Python attributes are snake_case; the YAML/JSON spelling is camelCase (``rename="camel"``), and the
loader also accepts snake_case spellings. Every struct is frozen: a config object is a value.

``None`` means "not set" wherever the docs give the absence a meaning of its own (no weight on a single
route = 100; no ``percent`` on a fault = all requests; no ``perTryTimeout`` = only the overall timeout).
"""

from __future__ import annotations

import msgspec

from ._duration import Duration

__all__ = [
    "IstioService",
    "StringMatch",
    "MatchRequest",
    "L4MatchAttributes",
    "MatchCondition",
    "DestinationWeight",
    "HTTPRedirect",
    "HTTPRewrite",
    "SimpleTimeout",
    "HTTPTimeout",
    "SimpleRetry",
    "HTTPRetry",
    "Delay",
    "Abort",
    "HTTPFaultInjection",
    "CorsPolicy",
    "L4FaultInjection",
    "RouteRule",
    "LoadBalancing",
    "SimpleCircuitBreakerPolicy",
    "CircuitBreaker",
    "DestinationPolicy",
    "EgressPort",
    "EgressRule",
    "IngressBackend",
    "HTTPIngressPath",
    "HTTPIngressRuleValue",
    "IngressRule",
    "IngressTLS",
    "Ingress",
    "DEFAULT_TIMEOUT",
]

DEFAULT_TIMEOUT = Duration(15.0)  # concepts.md §8.7: "default HTTP request timeout is 15 seconds"


class _Model(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True, frozen=True,
             omit_defaults=True):
    """Base of every spec model: camelCase on the wire, unknown fields refused, immutable."""


# --- shared pieces ------------------------------------------------------------------------------


class IstioService(_Model):
    """A service named implicitly (``name`` + defaults) or explicitly (``service`` = FQDN).

    FQDN = name + "." + namespace + "." + domain (concepts.md §8.3); ``namespace`` defaults to the
    rule's namespace and ``domain`` to the mesh's service domain (``svc.cluster.local``). When
    ``service`` is set, every other naming field is ignored.
    """

    name: str | None = None
    namespace: str | None = None
    domain: str | None = None
    service: str | None = None
    labels: dict[str, str] = {}


class StringMatch(_Model):
    """One of ``exact``/``prefix``/``regex``. A bare string in YAML means ``exact``. ``regex`` must
    match the whole value (Envoy's ``std::regex_match``)."""

    exact: str | None = None
    prefix: str | None = None
    regex: str | None = None


class MatchRequest(_Model):
    """Header matchers, keyed by lower-cased header name (the loader lower-cases keys: the docs' own
    example writes ``Foo: bar``). Pseudo-headers ``uri``, ``method``, ``authority`` and ``scheme``
    match the request line and Host."""

    headers: dict[str, StringMatch] = {}


class L4MatchAttributes(_Model):
    source_subnet: list[str] = []
    destination_subnet: list[str] = []


class MatchCondition(_Model):
    """AND of every criterion given: the caller (``source``) and the request's headers."""

    source: IstioService | None = None
    tcp: L4MatchAttributes | None = None
    udp: L4MatchAttributes | None = None
    request: MatchRequest | None = None


# --- RouteRule ----------------------------------------------------------------------------------


class DestinationWeight(_Model):
    """A weighted backend: instances of ``destination`` (default: the rule's) carrying ``labels``.
    ``weight`` 0–100; a lone backend without a weight gets 100."""

    destination: IstioService | None = None
    labels: dict[str, str] = {}
    weight: int | None = None


class HTTPRedirect(_Model):
    """Answer 302 instead of forwarding: ``uri`` replaces the path, ``authority`` the Host."""

    uri: str | None = None
    authority: str | None = None


class HTTPRewrite(_Model):
    """Rewrite before forwarding; with a ``uri`` prefix match only the matched prefix is replaced."""

    uri: str | None = None
    authority: str | None = None


class SimpleTimeout(_Model):
    timeout: Duration = DEFAULT_TIMEOUT
    override_header_name: str | None = None


class HTTPTimeout(_Model):
    simple_timeout: SimpleTimeout | None = None


class SimpleRetry(_Model):
    """``attempts`` is the number of *retries* after the first try (Envoy's ``num_retries``, what
    upstream Istio generated); see docs/routing.md for why."""

    attempts: int
    per_try_timeout: Duration | None = None
    override_header_name: str | None = None


class HTTPRetry(_Model):
    simple_retry: SimpleRetry | None = None


class Delay(_Model):
    percent: float | None = None  # None: every request (route_rule.proto)
    fixed_delay: Duration | None = None
    exponential_delay: Duration | None = None  # reserved upstream; refused by validation
    override_header_name: str | None = None


class Abort(_Model):
    percent: float | None = None  # None: every request
    http_status: int | None = None
    grpc_status: str | None = None  # reserved upstream
    http2_error: str | None = None  # reserved upstream
    override_header_name: str | None = None


class HTTPFaultInjection(_Model):
    """Delay and abort are independent; with both, the delay happens first (concepts.md §8.9)."""

    delay: Delay | None = None
    abort: Abort | None = None


class CorsPolicy(_Model):
    allow_origin: list[str] = []
    allow_methods: list[str] = []
    allow_headers: list[str] = []
    expose_headers: list[str] = []
    max_age: Duration | None = None
    allow_credentials: bool | None = None


class L4FaultInjection(_Model):
    """Accepted for compatibility; upstream says "not supported at the moment" and so does trimesh."""

    throttle: dict[str, object] | None = None
    terminate: dict[str, object] | None = None


class RouteRule(_Model):
    destination: IstioService | None = None
    precedence: int = 0
    match: MatchCondition | None = None
    route: list[DestinationWeight] = []
    redirect: HTTPRedirect | None = None
    rewrite: HTTPRewrite | None = None
    http_req_timeout: HTTPTimeout | None = None
    http_req_retries: HTTPRetry | None = None
    http_fault: HTTPFaultInjection | None = None
    l4_fault: L4FaultInjection | None = None
    mirror: IstioService | None = None
    cors_policy: CorsPolicy | None = None
    append_headers: dict[str, str] = {}
    websocket_upgrade: bool = False


# --- DestinationPolicy --------------------------------------------------------------------------


class LoadBalancing(_Model):
    """``name`` is ``ROUND_ROBIN`` (default), ``RANDOM`` or ``LEAST_CONN``; trimesh adds
    ``PEAK_EWMA``."""

    name: str = "ROUND_ROBIN"


class SimpleCircuitBreakerPolicy(_Model):
    """Defaults from dest_policy.proto / Envoy (anchors.md §0)."""

    max_connections: int = 1024
    http_max_pending_requests: int = 1024
    http_max_requests: int = 1024
    sleep_window: Duration = Duration(30.0)
    http_consecutive_errors: int = 5
    http_detection_interval: Duration = Duration(10.0)
    http_max_requests_per_connection: int = 0  # 0: unlimited; 1 disables keep-alive
    http_max_ejection_percent: int = 10
    http_max_retries: int = 3


class CircuitBreaker(_Model):
    simple_cb: SimpleCircuitBreakerPolicy | None = None


class DestinationPolicy(_Model):
    destination: IstioService | None = None
    source: IstioService | None = None
    load_balancing: LoadBalancing | None = None
    circuit_breaker: CircuitBreaker | None = None


# --- EgressRule ---------------------------------------------------------------------------------


class EgressPort(_Model):
    port: int
    protocol: str = "http"


class EgressRule(_Model):
    """Only ``destination.service`` counts: an FQDN or a wildcard domain (``*.foo.com``, where ``*``
    stands for a non-empty string)."""

    destination: IstioService | None = None
    ports: list[EgressPort] = []
    use_egress_proxy: bool = False


# --- Ingress (extensions/v1beta1) ---------------------------------------------------------------


class IngressBackend(_Model):
    service_name: str
    service_port: int | str


class HTTPIngressPath(_Model):
    backend: IngressBackend
    path: str | None = None


class HTTPIngressRuleValue(_Model):
    paths: list[HTTPIngressPath] = []


class IngressRule(_Model):
    host: str | None = None
    http: HTTPIngressRuleValue | None = None


class IngressTLS(_Model):
    hosts: list[str] = []
    secret_name: str | None = None


class Ingress(_Model):
    backend: IngressBackend | None = None
    tls: list[IngressTLS] = []
    rules: list[IngressRule] = []
