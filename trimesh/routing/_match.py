"""Request matching: ``match.request.headers``, ``match.source`` and EgressRule host patterns.

Header matchers (concepts.md §8.5, acceptance C.42–C.47): a ``StringMatch`` is ``exact``, ``prefix``
or ``regex`` — a regex must match the *whole* value (Envoy's ``std::regex_match``, so
``re.fullmatch``): ``regex: "jason"`` does not match ``user=jason``. Header names are matched
case-insensitively (HTTP field names are; the docs' own example writes ``Foo: bar``), values
case-sensitively. The pseudo-header keys ``uri``, ``method``, ``authority`` and ``scheme`` match the
request's path, method, Host and scheme; for ``uri`` the ``exact`` and ``regex`` forms see the path
without its query string and ``prefix`` the path as sent (Envoy's route ``path`` / ``regex`` /
``prefix``). Every criterion must hold (AND, §8.5 L746–L748). A missing header never matches.

Each matcher is compiled once per snapshot into a small closure ``(request) -> bool``.

Source (§8.4): ``match.source`` names the caller by FQDN (the same defaulting as ``destination``)
and optionally a label subset the caller's own labels must include. The calling sidecar's identity
is fixed for a route table, so source conditions are settled when the table is compiled.

Egress hosts (§8.14, acceptance G.79): an EgressRule's ``destination.service`` is an FQDN or a
wildcard domain ``*<suffix>`` where ``*`` stands for a *non-empty* string: ``*.foo.com`` admits
``a.foo.com`` and ``a.b.foo.com`` but not ``foo.com``; ``*-bar.foo.com`` admits ``baz-bar.foo.com``
but not ``-bar.foo.com``. An exact name beats a wildcard; among wildcards the longest suffix wins
(Envoy's virtual-host domain order).
"""

from __future__ import annotations

import ipaddress
import re
from functools import partial
from typing import Any, Callable

from ..config import host_to_fqdn, resolve_service

Matcher = Callable[[Any], bool]

PSEUDO_HEADERS = ("uri", "method", "authority", "scheme")


def _path_only(path: str) -> str:
    q = path.find("?")
    return path if q < 0 else path[:q]


def _value_getter(name: str) -> Callable[[Any], str | None]:
    if name == "uri":
        return lambda req: req.path
    if name == "method":
        return lambda req: req.method
    if name == "authority":
        return lambda req: req.authority
    if name == "scheme":
        return lambda req: req.scheme
    return lambda req: req.headers.get(name)


def compile_string_match(name: str, sm: Any) -> tuple[Matcher, str | None]:
    """One header criterion → ``(matcher, uri_prefix)``; ``uri_prefix`` is the prefix when this is
    a ``uri`` prefix match (rewrite needs it). Raises ``re.error`` for a bad regex."""
    name = name.strip().lower()
    if isinstance(sm, str):  # a bare value means exact (concepts.md §8.5 L932)
        exact, prefix, regex = sm, None, None
    else:
        exact, prefix, regex = sm.exact, sm.prefix, sm.regex
    is_uri = name == "uri"
    if name in PSEUDO_HEADERS:
        get = _value_getter(name)
        if exact is not None:
            if is_uri:
                return (lambda req: _path_only(req.path) == exact), None
            return (lambda req: get(req) == exact), None
        if prefix is not None:
            return (lambda req: get(req).startswith(prefix)), (prefix if is_uri else None)
        if regex is not None:
            pattern = re.compile(regex)
            if is_uri:
                return (lambda req: pattern.fullmatch(_path_only(req.path)) is not None), None
            return (lambda req: pattern.fullmatch(get(req)) is not None), None
        return (lambda req: True), None

    if exact is not None:
        def match_exact(req: Any) -> bool:
            return req.headers.get(name) == exact
        return match_exact, None
    if prefix is not None:
        def match_prefix(req: Any) -> bool:
            v = req.headers.get(name)
            return v is not None and v.startswith(prefix)
        return match_prefix, None
    if regex is not None:
        fullmatch = re.compile(regex).fullmatch

        def match_regex(req: Any) -> bool:
            v = req.headers.get(name)
            return v is not None and fullmatch(v) is not None
        return match_regex, None

    def match_present(req: Any) -> bool:  # an empty StringMatch: the header is present
        return name in req.headers
    return match_present, None


def compile_l4_match(tcp: Any) -> list[Matcher]:
    """``match.tcp`` (L4MatchAttributes) as matchers: the connection is TCP (``scheme`` ``tcp``:
    an L4 rule never applies to an HTTP request), its source IP is in one of ``sourceSubnet``
    and its destination IP in one of ``destinationSubnet`` (each list, when given; CIDRs or
    bare addresses, IPv4 or IPv6). A connection without a known destination IP does not match
    a ``destinationSubnet``."""
    out: list[Matcher] = [_is_tcp]
    for field, attr in (("source_subnet", "source_ip"), ("destination_subnet", "destination_ip")):
        cidrs = getattr(tcp, field) or ()
        if cidrs:
            nets = tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)
            out.append(partial(_ip_in, attr, nets))
    return out


def _is_tcp(req: Any) -> bool:
    return req.scheme == "tcp"


def _ip_in(attr: str, nets: tuple, req: Any) -> bool:
    text = getattr(req, attr)
    if not text:
        return False
    try:
        ip = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return any(ip in net for net in nets)


def source_matches(cond: Any, rule_namespace: str, source: Any, domain: str) -> bool:
    """Whether a ``match.source`` IstioService names the calling sidecar ``source``
    (a :class:`SourceIdentity` or ``None`` for an unknown caller)."""
    if cond is None:
        return True
    if source is None:
        return False
    want = resolve_service(cond, rule_namespace, domain)
    if want is not None and want != source.fqdn(domain):
        return False
    labels = source.labels
    return all(labels.get(k) == v for k, v in (cond.labels or {}).items())


def _port(text: str) -> int:
    """A decimal port 0–65535 in ASCII digits, else -1."""
    if not text or len(text) > 5 or not text.isascii() or not text.isdigit():
        return -1
    n = int(text)
    return n if n <= 65535 else -1


def split_host_port(authority: str) -> tuple[str, int | None]:
    """``Host`` → (lower-case host without trailing dot, port or None). IPv6 literals keep their
    brackets. A malformed port gives ``-1``."""
    a = authority.strip().lower()
    port: int | None = None
    if a.startswith("["):
        end = a.find("]")
        host, rest = (a[: end + 1], a[end + 1:]) if end > 0 else (a, "")
        if rest.startswith(":"):
            port = _port(rest[1:])
        elif rest:
            port = -1
    else:
        host, sep, p = a.rpartition(":")
        if sep:
            port = _port(p)
        else:
            host = a
    return host.rstrip("."), port


def host_pattern_matches(pattern: str, host: str) -> bool:
    """``*.foo.com`` / ``*-bar.foo.com`` (``*`` non-empty) or an exact name."""
    pattern = pattern.lower()
    if pattern.startswith("*"):
        suffix = pattern[1:]
        return len(host) > len(suffix) and host.endswith(suffix)
    return host == pattern


def mesh_fqdn(host: str, namespace: str, domain: str) -> str:
    return host_to_fqdn(host, namespace, domain)
