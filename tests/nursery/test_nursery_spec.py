"""Child specs and dependency order (pure)."""

import pytest

from trimesh.errors import ConfigError
from trimesh.nursery import ChildSpec, RestartPolicy, dependents_of, start_order


async def serve(*, task_status):
    task_status.started()


def spec(name, *deps, **kw):
    return ChildSpec(name, serve, depends_on=deps, **kw)


@pytest.mark.parametrize(
    ("specs", "expected"),
    [
        ([spec("a"), spec("b"), spec("c")], ("a", "b", "c")),  # no deps: declaration order
        ([spec("b", "a"), spec("a")], ("a", "b")),
        # diamond declared backwards
        ([spec("d", "b", "c"), spec("c", "a"), spec("b", "a"), spec("a")], ("a", "c", "b", "d")),
        # ties between ready children go to the one declared first
        ([spec("x"), spec("y", "z"), spec("z"), spec("w")], ("x", "z", "y", "w")),
        ([spec("p", "q", "q"), spec("q")], ("q", "p")),  # a repeated dependency counts once
        ([], ()),
    ],
)
def test_start_order(specs, expected):
    order = start_order(specs)
    assert order == expected
    position = {name: i for i, name in enumerate(order)}
    for s in specs:
        assert all(position[d] < position[s.name] for d in s.depends_on)


@pytest.mark.parametrize(
    ("specs", "message", "path"),
    [
        ([spec("a", "b"), spec("b", "a")], "dependency cycle: a -> b -> a", "children[0].depends_on"),
        (
            [spec("ok"), spec("x", "ok", "z"), spec("y", "x"), spec("z", "y")],
            "dependency cycle: x -> z -> y -> x",
            "children[1].depends_on",
        ),
        ([spec("a", "a")], "child 'a' depends on itself", "children[0].depends_on[0]"),
        ([spec("a"), spec("b", "a", "nope")], "unknown child 'nope'", "children[1].depends_on[1]"),
        ([spec("a"), spec("a")], "duplicate child name 'a'", "children[1].name"),
    ],
)
def test_configuration_errors_name_the_child_and_field(specs, message, path):
    with pytest.raises(ConfigError) as info:
        start_order(specs)
    assert message in str(info.value)
    assert info.value.path == path


def test_dependents_are_transitive():
    specs = [spec("a"), spec("b", "a"), spec("c", "b"), spec("d"), spec("e", "d", "a")]
    assert dependents_of(specs, "a") == {"b", "c", "e"}
    assert dependents_of(specs, "b") == {"c"}
    assert dependents_of(specs, "c") == frozenset()
    assert dependents_of(specs, "d") == {"e"}


def test_spec_normalises_fields():
    s = ChildSpec("proxy", serve, policy="transient", depends_on="discovery", shutdown_timeout=2)
    assert s.policy is RestartPolicy.TRANSIENT
    assert s.depends_on == ("discovery",)
    assert s.shutdown_timeout == 2.0 and isinstance(s.shutdown_timeout, float)
    assert ChildSpec("x", serve).policy is RestartPolicy.PERMANENT


@pytest.mark.parametrize(
    ("kwargs", "message", "path"),
    [
        ({"name": ""}, "non-empty", "name"),
        ({"serve": None}, "serve must be an async function", "serve"),
        ({"policy": "sometimes"}, "unknown restart policy 'sometimes'", "policy"),
        ({"shutdown_timeout": -1}, "shutdown_timeout must be seconds >= 0", "shutdown_timeout"),
        ({"shutdown_timeout": float("nan")}, "shutdown_timeout", "shutdown_timeout"),
    ],
)
def test_bad_spec(kwargs, message, path):
    args = {"name": "web", "serve": serve, **kwargs}
    with pytest.raises(ConfigError, match=message) as info:
        ChildSpec(**args)
    assert info.value.path == path
