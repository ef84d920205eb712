"""Property: any mix of camelCase and snake_case struct keys loads to the same object, and the
object's to_dict() loads back to it."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trimesh.config import load_text, object_from_dict
from trimesh.errors import ConfigError

from config_samples import SAMPLES

_MAP_FIELDS = {"labels", "annotations", "dimensions", "variables", "appendHeaders", "append_headers",
               "headers", "severity_levels", "severityLevels", "attributes", "clause",
               "monitoredResourceDimensions", "monitored_resource_dimensions", "attribute_bindings",
               "attributeBindings"}


def _snake(name):
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def _respell(value, choose, inside_map=False):
    """Rename struct keys (not keys of map-valued fields) to snake_case where choose() says so."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            key = k if inside_map else (_snake(k) if choose() else k)
            out[key] = _respell(v, choose, inside_map=(not inside_map and k in _MAP_FIELDS))
        return out
    if isinstance(value, list):
        return [_respell(v, choose) for v in value]
    return value


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(sorted(SAMPLES)), bits=st.lists(st.booleans(), min_size=1, max_size=64))
def test_any_mix_of_spellings_loads_the_same_object(kind, bits):
    (obj,) = load_text(SAMPLES[kind])
    it = iter(bits * 100)
    data = obj.to_dict()
    respelled = dict(data, spec=_respell(data["spec"], lambda: next(it)))
    again = object_from_dict(respelled)
    assert again == obj
    assert object_from_dict(again.to_dict()) == obj


@settings(max_examples=80, deadline=None)
@given(weights=st.lists(st.integers(min_value=0, max_value=100), min_size=1, max_size=5),
       versions=st.lists(st.from_regex(r"v[0-9a-z-]{1,8}", fullmatch=True), min_size=5, max_size=5),
       precedence=st.integers(min_value=-1000, max_value=1000),
       timeout_ms=st.integers(min_value=1, max_value=10**7))
def test_generated_route_rules_round_trip_or_fail_on_weights(weights, versions, precedence, timeout_ms):
    doc = {"apiVersion": "config.istio.io/v1alpha2", "kind": "RouteRule",
           "metadata": {"name": "gen", "namespace": "default"},
           "spec": {"destination": {"name": "reviews"}, "precedence": precedence,
                    "route": [{"labels": {"version": versions[i]}, "weight": w}
                              for i, w in enumerate(weights)],
                    "httpReqTimeout": {"simpleTimeout": {"timeout": f"{timeout_ms}ms"}}}}
    if len(weights) > 1 and sum(weights) != 100:
        with pytest.raises(ConfigError, match=f"add up to {sum(weights)}, not 100"):
            object_from_dict(doc)
        return
    obj = object_from_dict(doc)
    assert obj.spec.http_req_timeout.simple_timeout.timeout == timeout_ms / 1000
    assert object_from_dict(obj.to_dict()) == obj
