"""Whatever the input, the loader answers with objects or a ConfigError, never another exception."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trimesh.config import load_text, object_from_dict
from trimesh.errors import ConfigError

from config_samples import SAMPLES

_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                     st.floats(allow_nan=False), st.text(max_size=12))
_json = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=20)


def _loads_or_config_error(text):
    try:
        result = load_text(text, source="fuzz.yaml")
    except ConfigError as exc:
        assert exc.source == "fuzz.yaml" and exc.message
        return None
    assert isinstance(result, list)
    return result


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_arbitrary_input(data):
    _loads_or_config_error(data)


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from(sorted(SAMPLES)), spec=_json)
def test_arbitrary_spec_for_every_kind(kind, spec):
    doc = {"kind": kind, "metadata": {"name": "fuzz"}, "spec": spec}
    try:
        obj = object_from_dict(doc)
    except ConfigError as exc:
        assert exc.path and exc.path.startswith("$")
        return
    assert object_from_dict(obj.to_dict()) == obj


@settings(max_examples=150, deadline=None)
@given(kind=st.sampled_from(sorted(SAMPLES)), cut=st.integers(0, 10**6), junk=st.text(max_size=5))
def test_damaged_samples(kind, cut, junk):
    text = SAMPLES[kind]
    at = cut % (len(text) + 1)
    _loads_or_config_error(text[:at] + junk + text[at:])


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


def _replace(value, path, new):
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {k: (_replace(v, rest, new) if k == head else v) for k, v in value.items()}
    return [(_replace(v, rest, new) if i == head else v) for i, v in enumerate(value)]


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(sorted(SAMPLES)), pick=st.integers(0, 10**6), new=_json)
def test_one_damaged_field(kind, pick, new):
    (obj,) = load_text(SAMPLES[kind])
    data = obj.to_dict()
    paths = [p for p in _paths(data["spec"])]
    path = paths[pick % len(paths)]
    doc = dict(data, spec=_replace(data["spec"], path, new))
    try:
        again = object_from_dict(doc)
    except ConfigError as exc:
        assert exc.path.startswith("$.spec")
        return
    assert object_from_dict(again.to_dict()) == again
