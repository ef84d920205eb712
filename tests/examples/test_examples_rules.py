"""Every rule file shipped under trimesh/samples/ loads with trimesh's config loader, with the docs' content."""

from __future__ import annotations

import pathlib

import pytest

from trimesh.config import load_text
from trimesh.samples import SAMPLES_DIR

EXAMPLES = SAMPLES_DIR  # the docs' rule files, package data of trimesh.samples
RULE_FILES = sorted(EXAMPLES.rglob("*.yaml"))
JASON = "^(.*?;)?(user=jason)(;.*)?$"


def load(relative: str):
    path = EXAMPLES / relative
    return load_text(path.read_text(), source=str(path))


def test_the_docs_files_are_all_there():
    names = {p.relative_to(EXAMPLES).as_posix() for p in RULE_FILES}
    for expected in ["bookinfo/kube/route-rule-all-v1.yaml", "bookinfo/kube/route-rule-reviews-test-v2.yaml",
                     "bookinfo/kube/route-rule-reviews-50-v3.yaml", "bookinfo/kube/route-rule-reviews-v3.yaml",
                     "bookinfo/kube/route-rule-ratings-test-delay.yaml",
                     "bookinfo/kube/route-rule-ratings-test-abort.yaml", "bookinfo/kube/route-rule-reviews-v2-v3.yaml",
                     "bookinfo/kube/destination-policy-reviews.yaml",
                     "httpbin/destinationpolicies/httpbin-circuit-breaker.yaml",
                     "httpbin/routerules/httpbin-v1.yaml",
                     "httpbin/routerules/mirror-traffic-to-httbin-v2.yaml"]:
        assert expected in names


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.relative_to(EXAMPLES).as_posix())
def test_every_rule_file_loads(path):
    objects = load_text(path.read_text(), source=str(path))
    assert objects, f"{path} holds no config object"
    for obj in objects:
        assert obj.name and obj.kind


def test_route_rule_all_v1():
    objects = load("bookinfo/kube/route-rule-all-v1.yaml")
    assert sorted(o.name for o in objects) == ["details-default", "productpage-default", "ratings-default",
                                              "reviews-default"]
    for obj in objects:
        assert obj.kind == "RouteRule" and obj.namespace == "default"
        assert obj.spec.precedence == 1
        assert obj.spec.destination.name == obj.name.removesuffix("-default")
        assert [(r.labels, r.weight) for r in obj.spec.route] == [({"version": "v1"}, None)]


def test_jason_rules():
    (test_v2,) = load("bookinfo/kube/route-rule-reviews-test-v2.yaml")
    assert test_v2.spec.match.request.headers["cookie"].regex == JASON
    assert test_v2.spec.precedence == 2 and test_v2.spec.route[0].labels == {"version": "v2"}
    (delay,) = load("bookinfo/kube/route-rule-ratings-test-delay.yaml")
    assert delay.spec.match.request.headers["cookie"].regex == JASON
    assert (delay.spec.http_fault.delay.fixed_delay, delay.spec.http_fault.delay.percent) == (7.0, 100)
    (abort,) = load("bookinfo/kube/route-rule-ratings-test-abort.yaml")
    assert (abort.spec.http_fault.abort.http_status, abort.spec.http_fault.abort.percent) == (500, 100)


@pytest.mark.parametrize(("relative", "split"), [
    ("bookinfo/kube/route-rule-reviews-50-v3.yaml", [("v1", 50), ("v3", 50)]),
    ("bookinfo/kube/route-rule-reviews-v2-v3.yaml", [("v2", 50), ("v3", 50)]),
    ("bookinfo/kube/route-rule-reviews-v3.yaml", [("v3", None)]),
    ("bookinfo/kube/route-rule-reviews-80-20.yaml", [("v1", 80), ("v2", 20)]),
])
def test_reviews_shifting_rules_replace_reviews_default(relative, split):
    (rule,) = load(relative)
    assert rule.name == "reviews-default"  # so that `replace` swaps route-rule-all-v1's rule
    assert [(r.labels["version"], r.weight) for r in rule.spec.route] == split


def test_timeout_task_rules():
    (v2,) = load("bookinfo/kube/route-rule-reviews-timeout-v2.yaml")
    (delay,) = load("bookinfo/kube/route-rule-ratings-delay-2s.yaml")
    (timeout,) = load("bookinfo/kube/route-rule-reviews-timeout-1s.yaml")
    assert (v2.name, delay.name, timeout.name) == ("reviews-default", "ratings-default", "reviews-default")
    assert delay.spec.match is None and delay.spec.http_fault.delay.fixed_delay == 2.0
    assert timeout.spec.http_req_timeout.simple_timeout.timeout == 1.0
    (egress_timeout,) = load("egress/httpbin-timeout-rule.yaml")  # the docs' snake_case spelling
    assert egress_timeout.spec.http_req_timeout.simple_timeout.timeout == 3.0
    assert egress_timeout.spec.destination.service == "httpbin.org"


def test_destination_policies():
    (cb,) = load("httpbin/destinationpolicies/httpbin-circuit-breaker.yaml")
    assert cb.kind == "DestinationPolicy" and cb.spec.destination.labels == {"version": "v1"}
    simple = cb.spec.circuit_breaker.simple_cb
    assert (simple.max_connections, simple.http_max_pending_requests, simple.http_consecutive_errors,
            simple.http_max_requests_per_connection, simple.http_max_ejection_percent) == (1, 1, 1, 1, 100)
    assert (simple.sleep_window, simple.http_detection_interval) == (180.0, 1.0)
    (lb,) = load("bookinfo/kube/destination-policy-reviews.yaml")
    assert lb.spec.load_balancing.name == "RANDOM"


def test_mirror_rule():
    (default,) = load("httpbin/routerules/httpbin-v1.yaml")
    (mirror,) = load("httpbin/routerules/mirror-traffic-to-httbin-v2.yaml")
    assert (default.name, default.spec.precedence) == ("httpbin-default-v1", 5)
    assert mirror.spec.precedence == 11
    assert [(r.labels["version"], r.weight) for r in mirror.spec.route] == [("v1", 100), ("v2", 0)]
    assert (mirror.spec.mirror.name, mirror.spec.mirror.labels) == ("httpbin", {"version": "v2"})
