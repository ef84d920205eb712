"""RouteRule ``match.tcp`` (L4MatchAttributes: ``sourceSubnet`` / ``destinationSubnet``) for TCP
connections — pure: the table, a RequestInfo with ``scheme="tcp"``, no I/O."""

from __future__ import annotations

from routing_helpers import rng, route_rule, table, unvalidated, versions_of

from trimesh.routing import RequestInfo


def tcp(authority="reviews:9080", source_ip="10.1.2.3", destination_ip=""):
    return RequestInfo(method="CONNECT", authority=authority, path="", scheme="tcp",
                       headers={}, source_ip=source_ip, destination_ip=destination_ip)


def http(source_ip="10.1.2.3"):
    return RequestInfo(method="GET", authority="reviews:9080", path="/", source_ip=source_ip)


RULES = [
    route_rule("reviews-default", destination={"name": "reviews"}, precedence=1,
               route=[{"labels": {"version": "v1"}}]),
    route_rule("reviews-from-office", destination={"name": "reviews"}, precedence=2,
               match={"tcp": {"sourceSubnet": ["10.1.0.0/16", "192.168.7.7"]}},
               route=[{"labels": {"version": "v2"}}]),
    route_rule("reviews-to-vip", destination={"name": "reviews"}, precedence=3,
               match={"tcp": {"destinationSubnet": ["172.30.0.0/24"]}},
               route=[{"labels": {"version": "v3"}}]),
]


def test_a_source_subnet_rule_routes_tcp_from_those_addresses_only():
    t = table(RULES)
    assert versions_of([t.decide(tcp(source_ip="10.1.2.3"), rng())]) == ["v2"]
    assert versions_of([t.decide(tcp(source_ip="192.168.7.7"), rng())]) == ["v2"]
    assert versions_of([t.decide(tcp(source_ip="10.2.0.1"), rng())]) == ["v1"]
    assert versions_of([t.decide(tcp(source_ip=""), rng())]) == ["v1"]  # unknown: no match


def test_a_destination_subnet_rule_needs_a_destination_address_in_it():
    t = table(RULES)
    assert versions_of([t.decide(tcp(source_ip="8.8.8.8", destination_ip="172.30.0.9"),
                                 rng())]) == ["v3"]
    assert versions_of([t.decide(tcp(source_ip="8.8.8.8", destination_ip="172.31.0.9"),
                                 rng())]) == ["v1"]
    # a named destination has no address: the rule does not apply
    assert versions_of([t.decide(tcp(source_ip="8.8.8.8"), rng())]) == ["v1"]


def test_l4_rules_never_apply_to_http_requests():
    t = table(RULES)
    decisions = [t.decide(http(source_ip="10.1.2.3"), rng()) for _ in range(5)]
    assert versions_of(decisions) == ["v1"] * 5


def test_both_lists_must_hold_and_ipv6_works():
    t = table([RULES[0], route_rule(
        "both", destination={"name": "reviews"}, precedence=5,
        match={"tcp": {"sourceSubnet": ["fd00::/8"], "destinationSubnet": ["10.9.0.0/16"]}},
        route=[{"labels": {"version": "v2"}}])])
    assert versions_of([t.decide(tcp(source_ip="fd00::5", destination_ip="10.9.1.1"),
                                 rng())]) == ["v2"]
    assert versions_of([t.decide(tcp(source_ip="fd00::5", destination_ip="10.8.1.1"),
                                 rng())]) == ["v1"]
    assert versions_of([t.decide(tcp(source_ip="fe80::1", destination_ip="10.9.1.1"),
                                 rng())]) == ["v1"]


def test_a_broken_subnet_in_an_unvalidated_rule_is_listed_and_the_rule_ignored():
    t = table([RULES[0], unvalidated("RouteRule", "bad", {
        "destination": {"name": "reviews"}, "precedence": 9,
        "match": {"tcp": {"sourceSubnet": ["10.0.0.0/33"]}},
        "route": [{"labels": {"version": "v2"}}]})])
    assert versions_of([t.decide(tcp(source_ip="10.0.0.1"), rng())]) == ["v1"]
    assert any("bad" in p and "match.tcp" in p for p in t.problems), t.problems
