"""The store's decisions, without I/O: write rules, revisions, refusals that change nothing."""

import msgspec
import pytest

from trimesh.config import ConfigObject, DestinationPolicy, RouteRule, load_text
from trimesh.control import WRITE_RULES, Change, StoreState, key_ref
from trimesh.errors import ConflictError, NotFoundError


def rule(name: str, namespace: str = "default", version: str = "v1") -> ConfigObject:
    (obj,) = load_text(
        f"kind: RouteRule\nmetadata: {{name: {name}, namespace: {namespace}}}\n"
        f"spec:\n  destination: {{name: reviews}}\n  route:\n  - labels: {{version: {version}}}\n")
    return obj


def snapshot(state: StoreState) -> tuple:
    return state.revision, [(o.key, o.revision, o.spec) for o in state.objects()]


# (existing objects, operation, target) -> expected outcome
CASES = [
    ([], "create", "a", "store"),
    (["a"], "create", "a", ConflictError),
    (["a"], "replace", "a", "store"),
    ([], "replace", "a", NotFoundError),
    (["a"], "delete", "a", "remove"),
    ([], "delete", "a", NotFoundError),
    (["b"], "replace", "a", NotFoundError),
    (["b"], "create", "a", "store"),
]


@pytest.mark.parametrize(("existing", "op", "target", "expected"), CASES)
def test_write_rules(existing, op, target, expected):
    state = StoreState()
    for name in existing:
        state.apply(state.plan_create(rule(name)))
    before = snapshot(state)
    obj = rule(target, version="v2")
    if isinstance(expected, str):
        change = state.plan(op, obj.key, None if op == "delete" else obj)
        assert change.revision == before[0] + 1
        assert (change.object is None) == (expected == "remove")
        state.apply(change)
        assert state.revision == before[0] + 1
        stored = state.get(obj.key)
        if expected == "remove":
            assert stored is None
        else:
            assert stored.spec == obj.spec and stored.revision == change.revision
    else:
        with pytest.raises(expected, match=r"route-rule/default/a"):
            state.plan(op, obj.key, None if op == "delete" else obj)
        assert snapshot(state) == before  # a refused write changes nothing
        assert state.statistics()["refused"] == 1


def test_table_covers_every_case():
    assert set(WRITE_RULES) == {(op, e) for op in ("create", "replace", "delete") for e in (True, False)}


def test_one_counter_advances_on_every_write_including_deletes():
    state = StoreState()
    seen = []
    for step, (op, name) in enumerate([("create", "a"), ("create", "b"), ("replace", "a"),
                                       ("delete", "b"), ("create", "b"), ("delete", "a")], 1):
        obj = rule(name)
        change = state.plan(op, obj.key, None if op == "delete" else obj)
        state.apply(change)
        seen.append(change.revision)
        assert state.revision == step
    assert seen == sorted(set(seen)) == list(range(1, 7))
    assert [o.revision for o in state.objects()] == [5]  # b, re-created at revision 5
    assert state.statistics() == {"objects": 1, "revision": 6, "created": 3, "replaced": 1,
                                  "deleted": 2, "refused": 0}


def test_plan_does_not_change_state_until_applied():
    state = StoreState()
    change = state.plan_create(rule("a"))
    assert state.revision == 0 and state.get(change.key) is None
    state.apply(change)
    assert state.get(change.key).revision == 1


def test_apply_out_of_order_is_refused():
    state = StoreState()
    first = state.plan_create(rule("a"))
    second = Change("create", rule("b").key, 5, msgspec.structs.replace(rule("b"), revision=5))
    with pytest.raises(ValueError, match="does not follow"):
        state.apply(second)
    state.apply(first)
    assert len(state) == 1


def test_loaded_state_continues_from_highest_revision():
    objs = [msgspec.structs.replace(rule("a"), revision=4), msgspec.structs.replace(rule("b"), revision=9)]
    assert StoreState(objs, revision=7).revision == 9  # the counter never lags an object
    assert StoreState(objs, revision=12).revision == 12  # a delete at 12 was the last write
    assert StoreState([], revision=3).plan_create(rule("c")).revision == 4


def test_duplicate_keys_are_refused_on_load():
    with pytest.raises(ValueError, match="duplicate"):
        StoreState([rule("a"), rule("a")])


def test_skip_burns_a_revision():
    state = StoreState()
    change = state.plan_create(rule("a"))
    state.skip(change.revision)  # e.g. the commit failed after writing
    assert state.revision == 1 and len(state) == 0
    assert state.plan_create(rule("a")).revision == 2


def test_objects_filter_and_order():
    state = StoreState()
    for name, ns in [("b", "default"), ("a", "bookinfo"), ("a", "default")]:
        state.apply(state.plan_create(rule(name, ns)))
    (dp,) = load_text("kind: DestinationPolicy\nmetadata: {name: z}\nspec:\n  destination: {name: reviews}\n")
    state.apply(state.plan_create(dp))
    assert [o.key for o in state.objects()] == [
        ("DestinationPolicy", "default", "z"), ("RouteRule", "bookinfo", "a"),
        ("RouteRule", "default", "a"), ("RouteRule", "default", "b")]
    assert [o.name for o in state.objects(kind="RouteRule", namespace="default")] == ["a", "b"]
    assert [o.name for o in state.objects(namespace="bookinfo")] == ["a"]
    assert isinstance(state.objects(kind="DestinationPolicy")[0].spec, DestinationPolicy)
    assert isinstance(state.objects(kind="RouteRule")[0].spec, RouteRule)
    assert "revision=4" in repr(state)


def test_key_ref_names_objects_like_messages():
    assert key_ref(("RouteRule", "default", "reviews-default")) == "route-rule/default/reviews-default"
    assert key_ref(("Unknown", "ns", "n")) == "Unknown/ns/n"
