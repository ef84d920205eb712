"""RouteRule matching as the docs describe it (concepts.md §8.3–8.6, §8.10; acceptance
C.35–C.51)."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing_helpers import (JASON_REGEX, PRODUCTPAGE, all_v1_rules, bookinfo_instances, egress,
                             jason_rule, obj, req, req_h, rng, route_rule, table, unvalidated,
                             versions_of)
from trimesh.config import make_instance
from trimesh.routing import Forward, Reject, SourceIdentity

REVIEWS = "reviews.default.svc.cluster.local"


@pytest.mark.parametrize("authority", [
    "reviews", "reviews:9080", "reviews.default", "reviews.default:9080", "reviews.default.svc",
    "reviews.default.svc.cluster.local", "reviews.default.svc.cluster.local:9080", "Reviews:9080",
    "reviews.default.svc.cluster.local.",
])
def test_every_name_form_reaches_the_same_service(authority):
    t = table(all_v1_rules(), source=PRODUCTPAGE)
    d = t.decide(req(authority), rng())
    assert isinstance(d, Forward)
    assert d.fqdn == REVIEWS
    assert d.rule == "reviews-default"
    assert d.cluster.name == REVIEWS + "|version=v1"


def test_short_name_resolves_in_the_callers_namespace():
    insts = [make_instance("reviews", "127.0.0.1", 9080, namespace="prod"),
             make_instance("reviews", "127.0.0.2", 9080)]
    t = table((), insts, source=SourceIdentity(service="productpage", namespace="prod"))
    assert t.decide(req("reviews"), rng()).fqdn == "reviews.prod.svc.cluster.local"
    assert t.decide(req("reviews.default"), rng()).fqdn == REVIEWS


@pytest.mark.parametrize("authority", ["unknown:9080", "unknown", "www.example.com", "a.b.c.d.e",
                                       "reviews.other", "reviews:notaport", ""])
def test_unknown_host_is_rejected_with_404_nr(authority):
    d = table(all_v1_rules(), source=PRODUCTPAGE).decide(req(authority), rng())
    assert isinstance(d, Reject)
    assert (d.status, d.flag) == (404, "NR")
    assert "no route to host" in d.body


def test_all_v1_sends_every_request_to_v1():
    """Acceptance C.35 / request-routing task step 1."""
    t = table(all_v1_rules(), bookinfo_instances(per_version=2), source=PRODUCTPAGE)
    r = rng(7)
    for svc in ("productpage", "details", "reviews", "ratings"):
        ds = [t.decide(req(f"{svc}:9080", "/x"), r) for _ in range(1000)]
        assert set(versions_of(ds)) == {"v1"}
        picked = {d.cluster.pick(r).labels["version"] for d in ds}
        assert picked == {"v1"}


@pytest.mark.parametrize("cookie,is_jason", [
    ("user=jason", True),
    ("foo=1;user=jason", True),
    ("user=jason;a=b", True),
    ("a=b;user=jason;c=d", True),
    ("foo=1; user=jason", False),  # a space after ';' — the docs' regex does not allow it
    ("user=jasonx", False),
    ("xuser=jason", False),
    ("user=json", False),
    (None, False),
])
def test_jason_cookie_rule(cookie, is_jason):
    """Request-routing task step 2: jason → reviews v2, everyone else → v1 (acceptance C.42)."""
    t = table(all_v1_rules() + [jason_rule()], source=PRODUCTPAGE)
    headers = {} if cookie is None else {"cookie": cookie}
    d = t.decide(req_h("reviews:9080", headers, "/reviews/0"), rng())
    assert versions_of([d]) == (["v2"] if is_jason else ["v1"])
    assert d.rule == ("reviews-test-v2" if is_jason else "reviews-default")


def test_regex_is_a_full_match():
    """Acceptance C.43: ``regex: jason`` does not match ``user=jason``."""
    rules = [route_rule("r", destination={"name": "reviews"}, precedence=2,
                        match={"request": {"headers": {"cookie": {"regex": "jason"}}}},
                        route=[{"labels": {"version": "v2"}}])] + all_v1_rules()
    t = table(rules, source=PRODUCTPAGE)
    assert versions_of([t.decide(req(cookie="user=jason"), rng())]) == ["v1"]
    assert versions_of([t.decide(req(cookie="jason"), rng())]) == ["v2"]


def foo_bar_rules(header_precedence: int, default_precedence: int):
    """The docs' reviews-foo-bar / reviews-default pair (concepts.md §8.10), header key ``Foo``."""
    return [
        route_rule("reviews-foo-bar", destination={"name": "reviews"}, precedence=header_precedence,
                   match={"request": {"headers": {"Foo": {"exact": "bar"}}}},
                   route=[{"labels": {"version": "v2"}}]),
        route_rule("reviews-default", destination={"name": "reviews"},
                   precedence=default_precedence,
                   route=[{"labels": {"version": "v1"}, "weight": 100}]),
    ]


@pytest.mark.parametrize("headers,expected", [
    ({"foo": "bar"}, "v2"),
    ({"foo": "barx"}, "v1"),
    ({"foo": "Bar"}, "v1"),  # values are case-sensitive
    ({}, "v1"),
])
def test_foo_bar_precedence_header_rule_first(headers, expected):
    """Acceptance C.46 / C.48: header rule at precedence 2 wins over the default at 1."""
    t = table(foo_bar_rules(2, 1), source=PRODUCTPAGE)
    assert versions_of([t.decide(req_h("reviews", headers), rng())]) == [expected]


@pytest.mark.parametrize("headers", [{"foo": "bar"}, {}])
def test_foo_bar_precedence_swapped_sends_everything_to_v1(headers):
    """Acceptance C.49: with the default rule first, it catches everything (first match wins)."""
    t = table(foo_bar_rules(1, 2), source=PRODUCTPAGE)
    d = t.decide(req_h("reviews", headers), rng())
    assert versions_of([d]) == ["v1"] and d.rule == "reviews-default"


def test_first_matching_rule_stops_evaluation():
    """Acceptance C.50: a lower-precedence rule's timeout and faults do not leak into a request the
    higher rule took."""
    rules = [
        route_rule("hi", destination={"name": "ratings"}, precedence=5,
                   match={"request": {"headers": {"x-test": {"exact": "1"}}}},
                   route=[{"labels": {"version": "v1"}}]),
        route_rule("lo", destination={"name": "ratings"}, precedence=1,
                   httpReqTimeout={"simpleTimeout": {"timeout": "2s"}},
                   httpFault={"abort": {"httpStatus": 500}}),
    ]
    t = table(rules, source=PRODUCTPAGE)
    hit = t.decide(req("ratings", x_test="1"), rng())
    miss = t.decide(req("ratings"), rng())
    assert (hit.rule, hit.timeout, hit.abort_status) == ("hi", 15.0, None)
    assert (miss.rule, miss.timeout, miss.abort_status) == ("lo", 2.0, 500)


def two_header_rule():
    return route_rule("two", destination={"name": "reviews"}, precedence=2,
                      match={"request": {"headers": {"x-a": {"exact": "1"},
                                                     "x-b": {"prefix": "pre"}}}},
                      route=[{"labels": {"version": "v3"}}])


@pytest.mark.parametrize("headers,matches", [
    ({"x-a": "1", "x-b": "prefix"}, True),
    ({"x-a": "1"}, False),
    ({"x-b": "pre"}, False),
    ({"x-a": "2", "x-b": "pre"}, False),
    ({"x-a": "1", "x-b": "xpre"}, False),
])
def test_several_headers_must_all_match(headers, matches):
    """Acceptance C.44 (AND across headers)."""
    t = table([two_header_rule()] + all_v1_rules(), source=PRODUCTPAGE)
    assert versions_of([t.decide(req_h("reviews", headers), rng())]) == (
        ["v3"] if matches else ["v1"])


def uri_rule(key: str, match: dict[str, str]):
    return route_rule("pseudo", destination={"name": "ratings"}, precedence=2,
                      match={"request": {"headers": {key: match}}},
                      httpReqTimeout={"simpleTimeout": {"timeout": "3s"}})


@pytest.mark.parametrize("key,match,request_kw,matches", [
    ("uri", {"prefix": "/ratings/v2/"}, {"path": "/ratings/v2/1"}, True),
    ("uri", {"prefix": "/ratings/v2/"}, {"path": "/ratings/v1/1"}, False),
    ("uri", {"exact": "/ratings"}, {"path": "/ratings"}, True),
    ("uri", {"exact": "/ratings"}, {"path": "/ratings?x=1"}, True),  # query ignored (Envoy path)
    ("uri", {"exact": "/ratings"}, {"path": "/ratings/"}, False),
    ("uri", {"regex": "/ratings/[0-9]+"}, {"path": "/ratings/12"}, True),
    ("uri", {"regex": "/ratings/[0-9]+"}, {"path": "/ratings/12/x"}, False),
    ("method", {"exact": "POST"}, {"method": "POST"}, True),
    ("method", {"exact": "POST"}, {"method": "GET"}, False),
    ("scheme", {"exact": "https"}, {"scheme": "https"}, True),
    ("scheme", {"exact": "https"}, {"scheme": "http"}, False),
    ("authority", {"prefix": "ratings"}, {"authority": "ratings:9080"}, True),
    ("authority", {"exact": "ratings.default"}, {"authority": "ratings:9080"}, False),
])
def test_pseudo_headers(key, match, request_kw, matches):
    """Acceptance C.47."""
    t = table([uri_rule(key, match)], source=PRODUCTPAGE)
    kw = {"authority": "ratings:9080", **request_kw}
    d = t.decide(req(**kw), rng())
    assert d.timeout == (3.0 if matches else 15.0)


def source_rule(name: str, source: dict, precedence: int = 2):
    return route_rule(name, destination={"name": "ratings"}, precedence=precedence,
                      match={"source": source}, httpReqTimeout={"simpleTimeout": {"timeout": "7s"}})


@pytest.mark.parametrize("caller,source,matches", [
    (SourceIdentity(service="reviews", labels={"version": "v2"}), {"name": "reviews"}, True),
    (PRODUCTPAGE, {"name": "reviews"}, False),
    (SourceIdentity(service="reviews", labels={"version": "v2"}),
     {"name": "reviews", "labels": {"version": "v2"}}, True),
    (SourceIdentity(service="reviews", labels={"version": "v1"}),
     {"name": "reviews", "labels": {"version": "v2"}}, False),
    (SourceIdentity(service="reviews.default.svc.cluster.local", labels={"version": "v2"}),
     {"service": "reviews.default.svc.cluster.local"}, True),
    (SourceIdentity(service="reviews", namespace="prod"), {"name": "reviews"}, False),
    (None, {"name": "reviews"}, False),  # an unknown caller (ingress) never matches a source
])
def test_match_source(caller, source, matches):
    """Acceptance C.40 / C.41."""
    t = table([source_rule("src", source)], source=caller)
    assert t.decide(req("ratings.default"), rng()).timeout == (7.0 if matches else 15.0)


@pytest.mark.parametrize("caller,cookie,matches", [
    (SourceIdentity(service="reviews", labels={"version": "v2"}), "user=jason", True),
    (SourceIdentity(service="reviews", labels={"version": "v2"}), "user=bob", False),
    (SourceIdentity(service="reviews", labels={"version": "v1"}), "user=jason", False),
])
def test_source_and_headers_are_anded(caller, cookie, matches):
    """ratings-reviews-jason (acceptance C.45)."""
    rule = route_rule("ratings-reviews-jason", destination={"name": "ratings"},
                      match={"source": {"name": "reviews", "labels": {"version": "v2"}},
                             "request": {"headers": {"cookie": {"regex": JASON_REGEX}}}},
                      httpReqTimeout={"simpleTimeout": {"timeout": "7s"}})
    t = table([rule], source=caller)
    assert t.decide(req("ratings", cookie=cookie), rng()).timeout == (7.0 if matches else 15.0)


def test_no_rules_round_robins_over_every_instance():
    """Acceptance B.23: 3 instances, 300 sequential requests → exactly 100 each."""
    t = table((), source=PRODUCTPAGE)
    r = rng(3)
    counts = Counter()
    for _ in range(300):
        d = t.decide(req("reviews:9080"), r)
        assert d.rule is None and d.cluster.name == REVIEWS
        counts[d.cluster.pick(r).labels["version"]] += 1
    assert counts == {"v1": 100, "v2": 100, "v3": 100}


def test_label_subset_selects_instances():
    """Acceptance C.38: labels {version: v1} match an instance with {version: v1, env: prod}."""
    insts = [make_instance("reviews", "127.0.0.1", 9080, labels={"version": "v1", "env": "prod"}),
             make_instance("reviews", "127.0.0.2", 9080, labels={"version": "v2", "env": "prod"})]
    t = table(all_v1_rules(), insts, source=PRODUCTPAGE)
    d = t.decide(req("reviews"), rng())
    assert [i.address for i in d.cluster.instances] == ["127.0.0.1"]


def test_route_to_labels_without_instances_gives_an_empty_cluster():
    """Acceptance B.33: the proxy answers 503 UH because pick() finds nothing."""
    rule = route_rule("r", destination={"name": "reviews"}, route=[{"labels": {"version": "v9"}}])
    t = table([rule], source=PRODUCTPAGE)
    d = t.decide(req("reviews"), rng())
    assert isinstance(d, Forward) and d.cluster.instances == ()
    assert d.cluster.pick(rng()) is None
    assert d.cluster.statistics()["no_healthy_host"] == 1


def test_backend_destination_can_name_another_service():
    rule = route_rule("r", destination={"name": "reviews"},
                      route=[{"destination": {"name": "ratings"}, "labels": {"version": "v1"}}])
    d = table([rule], source=PRODUCTPAGE).decide(req("reviews"), rng())
    assert d.fqdn == "ratings.default.svc.cluster.local"
    assert {i.service for i in d.cluster.instances} == {"ratings"}


def test_rule_for_a_service_without_instances_is_known_but_empty():
    rule = route_rule("r", destination={"name": "ghost"}, route=[{"labels": {"version": "v1"}}])
    d = table([rule], source=PRODUCTPAGE).decide(req("ghost:9080"), rng())
    assert isinstance(d, Forward) and d.cluster.pick(rng()) is None


def test_bad_regex_rule_is_ignored_and_reported():
    bad = unvalidated("RouteRule", "bad", dict(
        destination={"name": "reviews"}, precedence=9,
        match={"request": {"headers": {"cookie": {"regex": "(unclosed"}}}},
        route=[{"labels": {"version": "v3"}}]))
    t = table([bad] + all_v1_rules(), source=PRODUCTPAGE)
    assert versions_of([t.decide(req(cookie="(unclosed"), rng())]) == ["v1"]
    assert any("bad" in p and "regex" in p for p in t.problems)


def test_statistics_and_repr_count_decisions():
    t = table(all_v1_rules(), source=PRODUCTPAGE)
    r = rng()
    for a in ("reviews", "reviews", "nowhere"):
        t.decide(req(a), r)
    s = t.statistics()
    assert (s["decisions"], s["forward"], s["reject"], s["redirect"]) == (3, 2, 1, 0)
    assert s["services"] == 4 and s["rules"] == 4
    assert "RouteTable v1" in repr(t) and "productpage.default.svc.cluster.local" in repr(t)

_FUZZ_TABLE = None


def _fuzz_table():
    global _FUZZ_TABLE
    if _FUZZ_TABLE is None:
        foo = egress("foo", destination={"service": "*.foo.com"},
                     ports=[{"port": 80, "protocol": "http"}])
        _FUZZ_TABLE = table(all_v1_rules() + [jason_rule(), foo], source=PRODUCTPAGE)
    return _FUZZ_TABLE


@given(authority=st.one_of(st.text(max_size=40), st.sampled_from(
           ["reviews:", "reviews:99999", "[::1]:80", "[::1", ":80", "a:b:c", "x.foo.com:²",
            "x.foo.com:８０", "REVIEWS.DEFAULT.SVC.CLUSTER.LOCAL:9080", "x.foo.com:080"])),
       path=st.text(max_size=30), cookie=st.text(max_size=30))
@settings(max_examples=300, deadline=None)
def test_decide_never_raises_on_odd_input(authority, path, cookie):
    d = _fuzz_table().decide(req_h(authority, {"cookie": cookie}, path), rng())
    assert isinstance(d, (Forward, Reject))
    if isinstance(d, Forward):
        assert d.fqdn == REVIEWS or d.fqdn.endswith(".foo.com") or d.fqdn.endswith(".local")


def test_equal_precedence_rules_can_each_match():
    """Acceptance C.51: both rules are loaded; each matches its own requests."""
    def header_rule(name, header, version):
        return route_rule(name, destination={"name": "reviews"}, precedence=3,
                          match={"request": {"headers": {header: {"exact": "1"}}}},
                          route=[{"labels": {"version": version}}])
    t = table([header_rule("a", "x-a", "v2"), header_rule("b", "x-b", "v3")] + all_v1_rules(),
              source=PRODUCTPAGE)
    assert versions_of([t.decide(req_h("reviews", {"x-a": "1"}), rng())]) == ["v2"]
    assert versions_of([t.decide(req_h("reviews", {"x-b": "1"}), rng())]) == ["v3"]


def test_a_rules_namespace_qualifies_its_destination():
    """concepts.md §8.3: ``name: reviews`` in a rule of namespace prod means reviews.prod."""
    prod = obj("RouteRule", "reviews-prod", {"destination": {"name": "reviews"},
                                             "route": [{"labels": {"version": "v3"}}]}, "prod")
    t = table([prod], source=PRODUCTPAGE)
    d = t.decide(req("reviews"), rng())
    assert d.rule is None and d.fqdn == REVIEWS
