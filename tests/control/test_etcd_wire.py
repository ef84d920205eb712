"""The etcd store's pure parts (trimesh/control/_etcd_wire.py) and its HTTP client's failover
against a stand-in gateway in memory of the process (no etcd needed)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trimesh.config import load_text
from trimesh.control._etcd import EtcdClient, EtcdUnavailableError
from trimesh.control._etcd_wire import (
    DEFAULT_PREFIX,
    JsonLines,
    KeyValue,
    Mirror,
    b64,
    encode_value,
    etcd_key,
    key_of,
    parse_store_url,
    prefix_range_end,
    resolve_write,
    watch_result,
    write_txn,
)
from trimesh.errors import ConfigError, ConflictError, NotFoundError
from trimesh.service import HttpService, json_response

RULE = """
apiVersion: config.istio.io/v1alpha2
kind: RouteRule
metadata: {name: %s, namespace: default}
spec:
  destination: {name: reviews}
  route: [{labels: {version: v1}}]
"""


def rule(name: str = "reviews-default"):
    return load_text(RULE % name)[0]


@pytest.mark.parametrize(("url", "endpoints", "prefix"), [
    ("etcd://127.0.0.1:2379", [("127.0.0.1", 2379)], DEFAULT_PREFIX),
    ("etcd://a:1,b:2, c:3", [("a", 1), ("b", 2), ("c", 3)], DEFAULT_PREFIX),
    ("etcd://a", [("a", 2379)], DEFAULT_PREFIX),
    ("etcd://a:1,a:1", [("a", 1)], DEFAULT_PREFIX),
    ("etcd://[::1]:4001", [("::1", 4001)], DEFAULT_PREFIX),
    ("etcd://a:1/mesh/one", [("a", 1)], "/mesh/one/"),
])
def test_store_urls(url, endpoints, prefix):
    target = parse_store_url(url)
    assert list(target.endpoints) == endpoints
    assert target.prefix == prefix
    assert parse_store_url(str(target)) == target


@pytest.mark.parametrize(("url", "message"), [
    ("http://a:1", "expected etcd://"),
    ("etcd://", "empty endpoint"),
    ("etcd://a:1,,b:2", "empty endpoint"),
    ("etcd://a:x", "bad port"),
    ("etcd://a:0", "bad endpoint"),
    ("etcd://:5", "bad endpoint"),
])
def test_bad_store_urls_say_what_is_wrong(url, message):
    with pytest.raises(ConfigError, match=message):
        parse_store_url(url)


part = st.text(min_size=1, max_size=20)


@given(st.tuples(part, part, part))
def test_every_key_maps_to_its_own_etcd_key_and_back(key):
    raw = etcd_key(DEFAULT_PREFIX, key)
    assert raw.startswith(DEFAULT_PREFIX.encode())
    assert DEFAULT_PREFIX.encode() <= raw < prefix_range_end(DEFAULT_PREFIX)
    assert key_of(DEFAULT_PREFIX, raw) == key


@pytest.mark.parametrize("raw", [b"/other/RouteRule/a/b", b"/trimesh/config/RouteRule/a",
                                 b"/trimesh/config/RouteRule/a/b/c", b"/trimesh/config/R//b"])
def test_keys_that_are_not_objects_are_ignored(raw):
    assert key_of(DEFAULT_PREFIX, raw) is None


@pytest.mark.parametrize(("prefix", "end"), [
    ("/a/", b"/a0"), ("a\u00ff", b"a\xc3\xc0"), ("", b"\0")])
def test_prefix_range_end(prefix, end):
    assert prefix_range_end(prefix) == end


@pytest.mark.parametrize(("op", "expected", "compare"), [
    ("create", 0, {"target": "CREATE", "result": "EQUAL", "create_revision": "0"}),
    ("replace", 0, {"target": "VERSION", "result": "GREATER", "version": "0"}),
    ("replace", 7, {"target": "MOD", "result": "EQUAL", "mod_revision": "7"}),
    ("delete", 0, {"target": "VERSION", "result": "GREATER", "version": "0"}),
])
def test_each_write_is_one_compare_and_swap(op, expected, compare):
    txn = write_txn(op, b"/k", None if op == "delete" else b"v", expected)
    assert txn["compare"] == [{"key": b64(b"/k"), **compare}]
    success = txn["success"][0]
    assert ("request_delete_range" if op == "delete" else "request_put") in success
    assert txn["failure"] == [{"request_range": {"key": b64(b"/k")}}]


def _kv(value: bytes, mod: int) -> dict:
    return {"key": b64(b"/k"), "value": b64(value), "mod_revision": str(mod),
            "create_revision": "2"}


def _failed(kv: dict | None) -> dict:
    return {"header": {"revision": "9"},
            "responses": [{"response_range": {"kvs": [kv] if kv else []}}]}


KEY = ("RouteRule", "default", "r")


@pytest.mark.parametrize(("op", "doc", "retried", "outcome"), [
    ("create", {"header": {"revision": "5"}, "succeeded": True}, False, 5),
    ("create", _failed(_kv(b"other", 4)), False, ConflictError),
    ("create", _failed(_kv(b"mine", 4)), True, 4),  # our lost first attempt
    ("create", _failed(_kv(b"other", 4)), True, ConflictError),
    ("replace", _failed(None), False, NotFoundError),
    ("replace", _failed(_kv(b"other", 4)), False, ConflictError),  # stale resourceVersion
    ("replace", _failed(_kv(b"mine", 6)), True, 6),
    ("delete", _failed(None), False, NotFoundError),
    ("delete", _failed(None), True, 9),  # our lost first attempt deleted it
])
def test_resolving_a_write(op, doc, retried, outcome):
    how = dict(value=b"mine", expected_revision=3, retried=retried)
    if isinstance(outcome, int):
        assert resolve_write(op, KEY, doc, **how) == outcome
    else:
        with pytest.raises(outcome):
            resolve_write(op, KEY, doc, **how)


@given(st.lists(st.binary(max_size=30), max_size=6))
def test_watch_lines_survive_any_chunking(cuts):
    stream = b'{"result":{"a":1}}\n{"result":{"b":2}}\n\n{"result":{"c":3}}\n'
    lines, got, at = JsonLines(), [], 0
    for n in sorted(len(c) % (len(stream) + 1) for c in cuts) + [len(stream)]:
        got += lines.feed(stream[at:n])
        at = max(at, n)
    assert got == [{"result": {"a": 1}}, {"result": {"b": 2}}, {"result": {"c": 3}}]


def test_a_watch_error_message_is_an_error():
    with pytest.raises(ValueError, match="no leader"):
        watch_result({"error": {"message": "etcdserver: no leader"}})
    assert watch_result({"result": {"created": True}}) == {"created": True}


def _stored(obj, mod: int) -> dict:
    return {"key": b64(etcd_key(DEFAULT_PREFIX, obj.key)), "value": b64(encode_value(obj)),
            "mod_revision": str(mod), "create_revision": str(mod)}


def test_the_mirror_follows_range_then_events():
    a, b = rule("a"), rule("b")
    mirror = Mirror()
    problems = mirror.reset([KeyValue.from_json(_stored(a, 3)),
                             KeyValue.from_json({**_stored(b, 4), "value": b64(b"{not json")})], 10)
    assert [o.name for o in mirror.objects()] == ["a"] and mirror.revision == 10
    assert len(problems) == 1 and "invalid JSON" in problems[0]
    assert mirror.get(a.key).revision == 3  # the object's revision is its mod_revision
    mirror.apply_events([{"kv": _stored(b, 11)},
                         {"type": "DELETE", "kv": {"key": _stored(a, 0)["key"],
                                                   "mod_revision": "12"}}])
    assert [(o.name, o.revision) for o in mirror.objects()] == [("b", 11)]
    assert mirror.revision == 12
    mirror.reset([], 5)
    assert mirror.revision == 12  # never backwards


def test_a_value_filed_under_another_key_is_refused():
    mirror = Mirror()
    moved = {**_stored(rule("a"), 3), "key": b64(etcd_key(DEFAULT_PREFIX, KEY))}
    assert "belongs under another key" in mirror.reset([KeyValue.from_json(moved)], 3)[0]
    assert len(mirror) == 0


# -- the client's failover, against a stand-in gateway ---------------------------------------------


async def _gateway(nursery, answers: list[int]):
    """A gateway on 127.0.200.30 answering each call with the next status of ``answers``."""
    calls = []

    async def handle(request):
        calls.append(request.path)
        status = answers.pop(0) if answers else 200
        return json_response({"header": {"revision": "1"}} if status == 200
                             else {"error": "no leader", "message": "etcdserver: no leader"},
                             status)

    service = HttpService(handle, name="fake etcd")
    await nursery.start(service.serve, "127.0.200.30", 0)
    return service, calls


async def test_a_call_fails_over_past_a_dead_member_and_an_unavailable_one(nursery):
    service, calls = await _gateway(nursery, [503])
    dead = ("127.0.200.31", 9)  # nothing listens there
    client = EtcdClient((dead, ("127.0.200.30", service.port)))
    doc, retried = await client.call("/v3/kv/range", {"key": "a"})
    assert doc["header"]["revision"] == "1"
    assert retried  # the 503 attempt reached etcd: a write would be judged as a retry
    assert calls == ["/v3/kv/range", "/v3/kv/range"]
    assert client.statistics()["failovers"] == 3  # dead → up (503) → dead → up
    assert client.endpoint == f"127.0.200.30:{service.port}"  # stays on the one that works


async def test_a_call_gives_up_after_its_deadline():
    client = EtcdClient((("127.0.200.31", 9), ("127.0.200.32", 9)), deadline=0.5)
    with pytest.raises(EtcdUnavailableError, match="etcd unavailable"):
        await client.call("/v3/kv/range", {})
    assert client.statistics()["failures"] == 1


# -- publishing a shared store into gossip ---------------------------------------------------------


def _entry(name: str, revision: int, origin: str, live: bool = True):
    from trimesh.discovery import ConfigEntry

    return ConfigEntry("RouteRule", "default", name, revision, origin, {"x": 1} if live else None)


@pytest.mark.parametrize(("stored", "held", "floor", "puts", "foreign"), [
    # another control published the same write under its own origin: agreed, not foreign
    ({"a": 3}, [_entry("a", 3, "control@z")], 5, [], []),
    ({"a": 3}, [_entry("a", 3, "control@0")], 5, [], []),  # a lower origin as well: no republish
    # a newer write our watch has not shown yet: left alone, not foreign
    ({"a": 3}, [_entry("a", 4, "control@z")], 5, [], []),
    ({}, [_entry("b", 6, "control@z")], 5, [], []),
    # an older copy is still replaced, a deleted object still tombstoned at the floor
    ({"a": 4}, [_entry("a", 3, "control@z")], 5, [("a", 4, "obj")], []),
    ({}, [_entry("a", 3, "control@z")], 5, [("a", 5, None)], []),
])
def test_plan_publication_for_a_store_shared_by_several_controls(stored, held, floor, puts,
                                                                 foreign):
    import msgspec

    from trimesh.control import plan_publication
    from trimesh.control._publish import desired_entries

    objects = [msgspec.structs.replace(rule(name), revision=rev) for name, rev in stored.items()]
    plan = plan_publication(desired_entries(objects, []), held, origin="control@m",
                            config_floor=floor, instance_floor=0, shared=True)
    assert [(p.key[2], p.revision, None if p.obj is None else "obj") for p in plan.puts] == puts
    assert [k[2] for k in plan.foreign] == foreign
