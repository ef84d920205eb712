"""The docs' YAML, verbatim, through the real loader and into decisions (concepts.md §8,
traffic-tasks.md §2, §5, §7)."""

from __future__ import annotations

import random
from collections import Counter

from docs_yaml import bookinfo, fixture
from routing_helpers import PRODUCTPAGE, req, table, versions_of
from trimesh.config import load_text
from trimesh.routing import Forward, Reject, SourceIdentity

ALL_V1_AND_JASON = bookinfo("route-rule-all-v1.yaml", "route-rule-reviews-test-v2.yaml")

FOO_BAR = fixture("reviews-foo-bar.yaml")

FOO_EGRESS_AND_TIMEOUT = fixture("foo-egress-rule.yaml", "foo-timeout-rule.yaml")

HTTPBIN = fixture("httpbin-egress-rule.yaml", "httpbin-timeout-rule.yaml")

DELAY_ABORT = fixture("ratings-delay-abort.yaml")


def test_request_routing_task():
    t = table(load_text(ALL_V1_AND_JASON), source=PRODUCTPAGE)
    r = random.Random(1)
    assert versions_of(t.decide(req("reviews:9080", cookie="user=jason"), r)
                       for _ in range(100)) == ["v2"] * 100
    assert versions_of(t.decide(req("reviews:9080", cookie="foo=1; user=jason"), r)
                       for _ in range(100)) == ["v1"] * 100


def test_foo_bar_raw_yaml():
    t = table(load_text(FOO_BAR), source=PRODUCTPAGE)
    assert versions_of([t.decide(req("reviews", Foo="bar"), random.Random())]) == ["v2"]
    assert versions_of([t.decide(req("reviews"), random.Random())]) == ["v1"]


def test_foo_egress_raw_yaml_with_timeout_rule():
    t = table(load_text(FOO_EGRESS_AND_TIMEOUT), source=PRODUCTPAGE)
    d = t.decide(req("secure-service.foo.com:443"), random.Random())
    assert isinstance(d, Forward) and d.egress_tls and d.timeout == 10.0
    assert isinstance(t.decide(req("foo.com"), random.Random()), Reject)


def test_httpbin_snake_case_timeout_rule():
    t = table(load_text(HTTPBIN), source=PRODUCTPAGE)
    d = t.decide(req("httpbin.org", "/delay/5"), random.Random())
    assert (d.external_host, d.external_port, d.egress_tls, d.timeout) == (
        "httpbin.org", 80, False, 3.0)


def test_ratings_delay_abort_only_for_reviews_v2():
    """Acceptance E.64."""
    objs = load_text(DELAY_ABORT)
    v2 = table(objs, source=SourceIdentity(service="reviews", labels={"version": "v2"}))
    v1 = table(objs, source=SourceIdentity(service="reviews", labels={"version": "v1"}))
    r = random.Random(4)
    ds = [v2.decide(req("ratings:9080"), r) for _ in range(1000)]
    assert all(d.delay == 5.0 for d in ds)
    assert 70 <= Counter(d.abort_status for d in ds)[400] <= 130
    d1 = v1.decide(req("ratings:9080"), r)
    assert d1.delay is None and d1.abort_status is None
