"""to_dict → object_from_dict, dump_yaml/dump_json → load_text: equal objects for every kind."""

import json

import msgspec
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from trimesh.config import (ConfigObject, Duration, all_kinds, dump_json, dump_yaml, format_duration,
                            load_text, object_from_dict, parse_duration)

from config_samples import SAMPLES


def test_every_kind_has_a_sample():
    assert sorted(SAMPLES) == sorted(k.kind for k in all_kinds())


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_to_dict_round_trips(kind):
    (obj,) = load_text(SAMPLES[kind], source=f"{kind}.yaml")
    assert obj.kind == kind
    data = obj.to_dict()
    again = object_from_dict(data)
    assert again == obj
    # the dict is plain data (what the control store persists as JSON)
    assert object_from_dict(json.loads(json.dumps(data))) == obj


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_revision_round_trips_through_resource_version(kind):
    (obj,) = load_text(SAMPLES[kind])
    stored = msgspec.structs.replace(obj, revision=42)
    data = stored.to_dict()
    assert data["metadata"]["resourceVersion"] == "42"
    assert object_from_dict(data).revision == 42


def test_dump_yaml_then_load_gives_the_same_objects():
    objects = [load_text(text)[0] for text in SAMPLES.values()]
    text = dump_yaml(objects)
    assert text.count("\n---\n") == len(objects)  # every document ends with '---' (istioctl get)
    assert load_text(text, source="dump.yaml") == objects
    # a wildcard host stays valid YAML: quoted, so no alias
    assert "service: '*.foo.com'" in text


def test_dump_json_array_and_single_object_load_back():
    objects = [load_text(text)[0] for text in SAMPLES.values()]
    assert load_text(dump_json(objects)) == objects
    single = dump_json(objects[0])
    assert json.loads(single)["kind"] == objects[0].kind
    assert load_text(single) == objects[:1]


def test_dump_of_nothing_is_empty_and_loads_as_nothing():
    assert dump_yaml([]) == ""
    assert load_text(dump_yaml([])) == []


def test_to_dict_uses_the_docs_spelling():
    (obj,) = load_text(SAMPLES["RouteRule"])
    spec = obj.to_dict()["spec"]
    assert spec["httpReqTimeout"] == {"simpleTimeout": {"timeout": "1.5s",
                                                        "overrideHeaderName": "x-timeout"}}
    assert spec["httpFault"]["delay"] == {"percent": 12.5, "fixedDelay": "7s"}
    assert spec["httpReqRetries"]["simpleRetry"]["perTryTimeout"] == "500ms"
    assert spec["match"]["request"]["headers"]["cookie"] == {"regex": "^(.*?;)?(user=jason)(;.*)?$"}
    assert spec["match"]["request"]["headers"]["x-mode"] == {"exact": "fast"}
    assert spec["appendHeaders"] == {"X-Added": "1", "x-other": "two"}  # map keys untouched
    (prom,) = load_text(SAMPLES["prometheus"])
    metric = prom.to_dict()["spec"]["metrics"][1]
    assert metric["instanceName"] == "requestduration.metric.istio-system"
    assert metric["buckets"] == {"explicitBuckets": {"bounds": [0.005, 0.01, 1.0, 10.0]}}


def test_samples_set_fields_beyond_defaults():
    empty_ok = {"checknothing", "reportnothing", "noop"}
    for kind, text in SAMPLES.items():
        (obj,) = load_text(text)
        assert bool(obj.to_dict()["spec"]) == (kind not in empty_ok), kind


def test_yaml_dump_is_safe_yaml():
    objects = [load_text(text)[0] for text in SAMPLES.values()]
    docs = [d for d in yaml.safe_load_all(dump_yaml(objects)) if d is not None]
    assert [d["kind"] for d in docs] == [o.kind for o in objects]


# --- durations ------------------------------------------------------------------------------------

_units = st.sampled_from(["h", "m", "s", "ms", "us", "ns"])
_numbers = st.one_of(st.integers(min_value=0, max_value=10**6).map(str),
                     st.decimals(min_value=0, max_value=10**5, places=3).map(str))


@given(st.lists(st.tuples(_numbers, _units), min_size=1, max_size=4))
def test_duration_text_round_trips(parts):
    text = "".join(n + u for n, u in parts)
    try:
        d = parse_duration(text)
    except ValueError as exc:
        assert "shorter than the minimum" in str(exc) or "longer than the maximum" in str(exc)
        return
    assert isinstance(d, Duration)
    assert parse_duration(format_duration(d)) == d


@given(st.floats(min_value=0.001, max_value=9e9, allow_nan=False, allow_infinity=False))
def test_every_duration_value_renders_and_parses_back_exactly(seconds):
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("text,seconds,rendered", [
    ("10s", 10.0, "10s"), ("1.5s", 1.5, "1.5s"), ("100ms", 0.1, "100ms"), ("3m", 180.0, "3m"),
    ("7.000s", 7.0, "7s"), ("1h", 3600.0, "1h"), ("1m0s", 60.0, "1m"), ("2h45m", 9900.0, "165m"),
    ("1500ms", 1.5, "1.5s"), ("1ms", 0.001, "1ms"),
])
def test_duration_docs_forms(text, seconds, rendered):
    assert parse_duration(text) == seconds
    assert format_duration(parse_duration(text)) == rendered


@pytest.mark.parametrize("text", ["10", "10 s", "s", "", "1d", "-1s", "0s", "0.5ms", "99999999999s"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_config_object_equality_ignores_nothing_but_is_value_based():
    a = load_text(SAMPLES["rule"])[0]
    b = load_text(SAMPLES["rule"])[0]
    assert a == b and a is not b
    assert isinstance(a, ConfigObject)
