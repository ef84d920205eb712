"""EgressRule host matching and route rules for external services (concepts.md §8.14,
traffic-tasks.md §7; acceptance G.77–G.83)."""

from __future__ import annotations

import random

import pytest

from routing_helpers import PRODUCTPAGE, egress, req, route_rule, table
from trimesh.errors import ConfigError
from trimesh.routing import Forward, Reject, host_pattern_matches

FOO = egress("foo-egress-rule", destination={"service": "*.foo.com"},
             ports=[{"port": 80, "protocol": "http"}, {"port": 443, "protocol": "https"}])
HTTPBIN = egress("httpbin-egress-rule", destination={"service": "httpbin.org"},
                 ports=[{"port": 80, "protocol": "http"}])
GOOGLE = egress("google-egress-rule", destination={"service": "www.google.com"},
                ports=[{"port": 443, "protocol": "https"}])


@pytest.mark.parametrize("pattern,host,matches", [
    ("*.foo.com", "a.foo.com", True),
    ("*.foo.com", "a.b.foo.com", True),
    ("*.foo.com", "foo.com", False),
    ("*.foo.com", ".foo.com", False),
    ("*.foo.com", "a.foo.org", False),
    ("*.foo.com", "afoo.com", False),
    ("*-bar.foo.com", "baz-bar.foo.com", True),
    ("*-bar.foo.com", "-bar.foo.com", False),
    ("*-bar.foo.com", "bar.foo.com", False),
    ("httpbin.org", "httpbin.org", True),
    ("httpbin.org", "www.httpbin.org", False),
    ("HTTPBIN.org", "httpbin.org", True),
])
def test_host_patterns(pattern, host, matches):
    """Acceptance G.79 (``*`` is a non-empty string)."""
    assert host_pattern_matches(pattern, host) is matches


def decide(objects, authority, **headers):
    return table(objects, source=PRODUCTPAGE).decide(req(authority, **headers), random.Random(1))


@pytest.mark.parametrize("authority,host,port,tls", [
    ("api.foo.com", "api.foo.com", 80, False),  # acceptance G.78: no port = 80
    ("api.foo.com:80", "api.foo.com", 80, False),
    ("secure-service.foo.com:443", "secure-service.foo.com", 443, True),  # G.77: TLS origination
    ("Secure-Service.FOO.com:443", "secure-service.foo.com", 443, True),
    ("httpbin.org", "httpbin.org", 80, False),
    ("www.google.com:443", "www.google.com", 443, True),
])
def test_egress_forward(authority, host, port, tls):
    d = decide([FOO, HTTPBIN, GOOGLE], authority)
    assert isinstance(d, Forward)
    assert (d.fqdn, d.external_host, d.external_port, d.egress_tls) == (host, host, port, tls)
    assert d.is_egress and d.cluster.instances == () and d.timeout == 15.0


@pytest.mark.parametrize("authority", [
    "foo.com", "a.foo.org", "api.foo.com:8080", "www.google.com", "httpbin.org:443", "example.com",
])
def test_no_matching_egress_rule_or_port_is_404_nr(authority):
    """Acceptance G.80: the mesh is a whitelist for external hosts."""
    d = decide([FOO, HTTPBIN, GOOGLE], authority)
    assert isinstance(d, Reject) and (d.status, d.flag) == (404, "NR")


def test_exact_egress_beats_wildcard_and_longer_suffix_wins():
    exact = egress("exact", destination={"service": "api.foo.com"},
                   ports=[{"port": 8443, "protocol": "https"}])
    longer = egress("longer", destination={"service": "*.eu.foo.com"},
                    ports=[{"port": 9000, "protocol": "http"}])
    objs = [FOO, exact, longer]
    assert decide(objs, "api.foo.com:8443").egress_tls is True
    assert isinstance(decide(objs, "api.foo.com:443"), Reject)  # the exact rule governs
    assert decide(objs, "x.eu.foo.com:9000").external_port == 9000
    assert isinstance(decide(objs, "x.eu.foo.com:443"), Reject)


def test_route_rule_timeout_applies_to_egress():
    """foo-timeout-rule (acceptance G.81) and httpbin-timeout-rule (traffic-tasks §7.5)."""
    foo_timeout = route_rule("foo-timeout-rule", destination={"service": "*.foo.com"},
                             httpReqTimeout={"simpleTimeout": {"timeout": "10s"}})
    httpbin_timeout = route_rule("httpbin-timeout-rule", destination={"service": "httpbin.org"},
                                 httpReqTimeout={"simpleTimeout": {"timeout": "3s"}})
    objs = [FOO, HTTPBIN, foo_timeout, httpbin_timeout]
    d = decide(objs, "x.foo.com")
    assert (d.timeout, d.rule) == (10.0, "foo-timeout-rule")
    assert decide(objs, "httpbin.org").timeout == 3.0
    assert decide(objs, "httpbin.org", x_envoy_upstream_rq_timeout_ms="500").timeout == 0.5


def test_retries_and_faults_apply_to_egress_but_weights_do_not():
    """Acceptance G.82 / G.83 ("rejected or ignored": rejected when written, EG7)."""
    rule = route_rule("foo-rules", destination={"service": "*.foo.com"},
                      route=[{"weight": 100}],
                      httpReqRetries={"simpleRetry": {"attempts": 2}},
                      httpFault={"abort": {"httpStatus": 418}})
    d = decide([FOO, rule], "a.foo.com:443")
    assert d.retry.attempts == 2 and d.abort_status == 418
    assert d.external_host == "a.foo.com" and d.cluster.labels == {}
    with pytest.raises(ConfigError, match=r"\*\.foo\.com is an external service") as info:
        route_rule("foo-versions", destination={"service": "*.foo.com"},
                   route=[{"labels": {"version": "v1"}, "weight": 50},
                          {"labels": {"version": "v2"}, "weight": 50}])
    assert "route[0].labels" in str(info.value)


def test_a_route_rule_without_an_egress_rule_does_not_open_the_host():
    rule = route_rule("t", destination={"service": "httpbin.org"},
                      httpReqTimeout={"simpleTimeout": {"timeout": "3s"}})
    assert isinstance(decide([rule], "httpbin.org"), Reject)


def test_mesh_services_win_over_egress_wildcards():
    catch_all = egress("local", destination={"service": "*.svc.cluster.local"},
                       ports=[{"port": 80, "protocol": "http"}])
    d = decide([catch_all], "reviews.default.svc.cluster.local:9080")
    assert not d.is_egress and d.fqdn == "reviews.default.svc.cluster.local"
