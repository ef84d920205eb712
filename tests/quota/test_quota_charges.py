"""QuotaSpec / QuotaSpecBinding: which quotas a request is charged (traffic-tasks.md §9.8)."""

from __future__ import annotations

import pytest
from docs_yaml import fixture

from trimesh.config import (AttributeMatch, ConfigObject, QuotaCharge, QuotaRule, QuotaSpec,
                            StringMatch, load_text)
from trimesh.errors import ConfigError
from trimesh.quota import QuotaCharges, QuotaRequirement

RC = (QuotaRequirement("requestcount", 1),)


def charges(*texts: str) -> QuotaCharges:
    return QuotaCharges.compile(load_text("\n---\n".join(texts)))


@pytest.mark.parametrize("destination, expected", [
    ("ratings.default.svc.cluster.local", RC),
    ("productpage.default.svc.cluster.local", RC),
    ("RATINGS.default.svc.cluster.local", RC),
    ("ratings.other.svc.cluster.local", ()),      # the binding names namespace default
    ("httpbin.default.svc.cluster.local", ()),    # not bound
])
def test_upstream_sample_binding(destination, expected):
    table = charges(fixture("mixer-rule-ratings-ratelimit-quotaspec.yaml"))
    assert table.for_request(destination, {}) == expected
    assert table.bound


def test_without_any_binding_every_quota_instance_is_charged_once():
    table = charges(fixture("ratelimit-rule.yaml"))  # a quota instance and a rule, no binding
    assert not table.bound
    assert table.for_request("anything.default.svc.cluster.local", {}) == RC
    assert repr(table) == "<QuotaCharges implicit: requestcount>"


SPEC_WITH_MATCH = """\
apiVersion: config.istio.io/v1alpha2
kind: QuotaSpec
metadata: {name: spec, namespace: default}
spec:
  rules:
  - match:
    - clause:
        request.headers[cookie]: {prefix: "user="}
        source.labels[app]: reviews
    - clause:
        request.method: {regex: "POST|PUT"}
    quotas:
    - quota: writes
      charge: 5
  - quotas:
    - quota: requestcount
      charge: 0
"""

BIND_ALL = """\
apiVersion: config.istio.io/v1alpha2
kind: QuotaSpecBinding
metadata: {name: all, namespace: default}
spec:
  quotaSpecs: [{name: spec}]
  services: [{service: '*'}]
"""


@pytest.mark.parametrize("attributes, expected", [
    ({}, RC),                                                           # charge 0 counts 1
    ({"request.headers": {"cookie": "user=jason"}, "source.labels": {"app": "reviews"}},
     (QuotaRequirement("writes", 5),) + RC),
    ({"request.headers": {"cookie": "user=jason"}, "source.labels": {"app": "ratings"}}, RC),
    ({"request.headers": {"cookie": "session=1"}, "source.labels": {"app": "reviews"}}, RC),
    ({"request.method": "PUT"}, (QuotaRequirement("writes", 5),) + RC),  # the other match
    ({"request.method": "PUTS"}, RC),                                     # regex is whole-value
    ({"request.method": 7}, RC),                                          # not a string
])
def test_attribute_matches(attributes, expected):
    table = charges(SPEC_WITH_MATCH, BIND_ALL)
    assert table.for_request("details.default.svc.cluster.local", attributes) == expected


def test_a_spec_bound_twice_is_charged_once():
    by_name = BIND_ALL.replace("name: all", "name: named").replace(
        "[{service: '*'}]", "[{name: details}]")
    table = charges(SPEC_WITH_MATCH, BIND_ALL, by_name)
    assert table.for_request("details.default.svc.cluster.local", {}) == RC
    assert table.statistics() == {"bound": True, "services": 1, "rules_everywhere": 2,
                                  "implicit": 0}


def test_missing_spec_charges_nothing_and_bad_regex_is_refused():
    assert charges(BIND_ALL).for_request("x.default.svc.cluster.local", {}) == ()
    with pytest.raises(ConfigError) as err:
        charges(SPEC_WITH_MATCH.replace('"POST|PUT"', '"("'), BIND_ALL)
    assert err.value.path == '$.spec.rules[0].match[1].clause["request.method"].regex'


def test_compile_refuses_a_bad_regex_that_skipped_validation():
    spec = QuotaSpec(rules=[QuotaRule(match=[AttributeMatch(clause={"a": StringMatch(regex="(")})],
                                      quotas=[QuotaCharge(quota="q")])])
    with pytest.raises(ConfigError) as err:
        QuotaCharges.compile([ConfigObject(kind="QuotaSpec", name="s", namespace="default",
                                           spec=spec)])
    assert err.value.path == '$.spec.rules[0].match[0].clause["a"].regex'
