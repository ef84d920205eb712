"""Which DestinationPolicy applies (concepts.md §8.11–8.13; acceptance F.70–F.74)."""

from __future__ import annotations

import random

import pytest

from routing_helpers import PRODUCTPAGE, policy, req, route_rule, table
from trimesh.routing import SourceIdentity

REVIEWS_V1_CB = dict(destination={"name": "reviews", "labels": {"version": "v1"}},
                     circuitBreaker={"simpleCb": {"maxConnections": 100}})
REVIEWS_DEFAULT = route_rule("reviews-default", destination={"name": "reviews"},
                             route=[{"labels": {"version": "v1"}}])


def forward(objects, authority="reviews", source=PRODUCTPAGE):
    return table(objects, source=source).decide(req(authority), random.Random())


def test_labelled_policy_is_not_applied_without_a_route_rule():
    """The docs' subtlety (§8.13 L1002–L1017, acceptance F.70): default routing never activates
    a policy with destination labels, even if v1 instances are hit."""
    d = forward([policy("reviews-v1-cb", **REVIEWS_V1_CB)])
    assert d.cluster.policy is None and d.cluster.circuit_breaker is None


def test_label_free_policy_applies_to_default_routing():
    """Acceptance F.71."""
    spec = dict(REVIEWS_V1_CB, destination={"name": "reviews"})
    d = forward([policy("reviews-cb", **spec)])
    assert d.cluster.policy.name == "reviews-cb"
    assert d.cluster.circuit_breaker.max_connections == 100


def test_route_rule_to_v1_activates_the_labelled_policy():
    """Acceptance F.72."""
    d = forward([policy("reviews-v1-cb", **REVIEWS_V1_CB), REVIEWS_DEFAULT])
    assert d.cluster.policy.name == "reviews-v1-cb"
    assert d.cluster.circuit_breaker.max_connections == 100
    assert d.cluster.circuit_breaker.http_max_requests == 1024  # proto default


def test_policy_for_v2_is_not_applied_to_requests_routed_to_v1():
    """Acceptance F.74."""
    spec = dict(REVIEWS_V1_CB, destination={"name": "reviews", "labels": {"version": "v2"}})
    d = forward([policy("reviews-v2-cb", **spec), REVIEWS_DEFAULT])
    assert d.cluster.policy is None


RATINGS_LB = dict(source={"name": "reviews", "labels": {"version": "v2"}},
                  destination={"name": "ratings", "labels": {"version": "v1"}},
                  loadBalancing={"name": "RANDOM"})
RATINGS_DEFAULT = route_rule("ratings-default", destination={"name": "ratings"},
                             route=[{"labels": {"version": "v1"}}])


@pytest.mark.parametrize("caller,applies", [
    (SourceIdentity(service="reviews", labels={"version": "v2", "app": "reviews"}), True),
    (SourceIdentity(service="reviews", labels={"version": "v1", "app": "reviews"}), False),
    (PRODUCTPAGE, False),
    (None, False),
])
def test_policy_source_must_name_the_caller(caller, applies):
    """ratings-lb-policy (acceptance F.73), with RANDOM so the effect shows in the balancer."""
    d = forward([policy("ratings-lb-policy", **RATINGS_LB), RATINGS_DEFAULT], "ratings", caller)
    assert (d.cluster.policy is not None) is applies
    assert d.cluster.balancer.name == ("RANDOM" if applies else "ROUND_ROBIN")


def test_most_specific_policy_wins():
    general = policy("a-general", destination={"name": "reviews"},
                     loadBalancing={"name": "RANDOM"})
    specific = policy("z-specific", destination={"name": "reviews", "labels": {"version": "v1"}},
                      loadBalancing={"name": "LEAST_CONN"})
    d = forward([general, specific, REVIEWS_DEFAULT])
    assert d.cluster.policy.name == "z-specific" and d.cluster.balancer.name == "LEAST_CONN"
    # The default (unlabelled) cluster of the same service still gets the general one.
    t = table([general, specific], source=PRODUCTPAGE)
    assert t.decide(req("reviews"), random.Random()).cluster.policy.name == "a-general"
