"""The control's membership side: the publication plan (pure), static instances (store, API,
persistence), the mesh key file, and the publisher feeding a real gossip agent (virtual time)."""

from __future__ import annotations

import functools
import json
import os
import stat

import pytest
import trio

from trimesh.config import load_text, make_instance
from trimesh.control import (
    ConfigStore,
    InstanceStore,
    MeshKeyError,
    Publisher,
    Put,
    load_or_create_mesh_key,
    mesh_key_path,
    parse_registration,
    plan_publication,
    read_mesh_key,
)
from trimesh.control._api import HTTPError, Mesh, dispatch
from trimesh.control._publish import desired_entries, registration_key
from trimesh.discovery import INSTANCE_KIND, ConfigEntry, GossipConfig, serve_discovery
from trimesh.errors import ConfigError, NotFoundError

RR_YAML = """
apiVersion: config.istio.io/v1alpha2
kind: RouteRule
metadata: {name: %s}
spec: {destination: {name: reviews}, route: [{labels: {version: v1}}]}
"""
KEY = b"c" * 32


def _rr(name: str, revision: int):
    import msgspec
    return msgspec.structs.replace(load_text(RR_YAML % name)[0], revision=revision)


def _entry(name: str, revision: int, live: bool | None = True, origin: str = "control@a",
           kind: str = "RouteRule") -> ConfigEntry:
    """A live entry, or a tombstone with ``live`` None/False."""
    return ConfigEntry(kind, "default", name, revision, origin, {"x": 1} if live else None)


# -- the plan (pure) ---------------------------------------------------------------------------

@pytest.mark.parametrize(("stored", "held", "floor", "puts", "foreign"), [
    # nothing published yet: everything is put at its revision
    ({"a": 3, "b": 5}, [], 5, [("a", 3, "obj"), ("b", 5, "obj")], []),
    # gossip already agrees: nothing to do
    ({"a": 3}, [_entry("a", 3)], 5, [], []),
    # gossip holds an older version: put the stored one
    ({"a": 4}, [_entry("a", 3)], 5, [("a", 4, "obj")], []),
    # deleted from the store: tombstone at the store's revision
    ({}, [_entry("a", 3)], 5, [("a", 5, None)], []),
    # already a tombstone: nothing
    ({}, [_entry("a", 5, None)], 5, [], []),
    # gossip holds a version this store never wrote (state dir replaced): left alone, reported
    ({"a": 2}, [_entry("a", 9)], 5, [], ["a"]),
    ({}, [_entry("a", 7)], 5, [], ["a"]),
    # recreated after a tombstone: the new object wins (higher revision)
    ({"a": 6}, [_entry("a", 5, None)], 6, [("a", 6, "obj")], []),
])
def test_plan_publication(stored, held, floor, puts, foreign):
    objects = [_rr(name, rev) for name, rev in stored.items()]
    plan = plan_publication(desired_entries(objects, []), held, origin="control@a",
                            config_floor=floor, instance_floor=0)
    got = [(p.key[2], p.revision, None if p.obj is None else "obj") for p in plan.puts]
    assert got == puts
    assert [k[2] for k in plan.foreign] == foreign
    for p in plan.puts:
        if p.obj is not None:
            assert p.obj["metadata"]["name"] == p.key[2]


async def test_plan_for_registrations_uses_their_own_counter():
    store = InstanceStore()
    reg, _ = await store.register("default", "vm", "10.0.0.1",
                                  [make_instance("vm", "10.0.0.1", 80)])
    key = registration_key(reg)
    assert key == (INSTANCE_KIND, "default", "vm@10.0.0.1")
    plan = plan_publication(desired_entries([], store.list()), [], origin="c",
                            config_floor=100, instance_floor=store.revision)
    assert plan.puts == [Put(key, 1, {"instances": [
        {"service": "vm", "address": "10.0.0.1", "port": 80, "namespace": "default",
         "protocol": "http", "labels": {"app": "vm"}, "service_account": "default",
         "healthy": True, "domain": "cluster.local", "annotations": {}}]})]
    await store.deregister(reg.key)
    plan = plan_publication({}, [ConfigEntry(*key, 1, "c", {"instances": []})], origin="c",
                            config_floor=100, instance_floor=store.revision)
    assert plan.puts == [Put(key, 2, None)]  # the instance floor, not the config store's


# -- static instances --------------------------------------------------------------------------

async def test_instance_store_persists_replaces_and_reloads(tmp_path):
    store = InstanceStore(tmp_path, offload=False)
    inst = [make_instance("vm", "10.0.0.1", 80),
            make_instance("vm", "10.0.0.1", 81, protocol="grpc")]
    reg, created = await store.register("default", "vm", "10.0.0.1", inst)
    assert (created, reg.revision) == (True, 1)
    reg, created = await store.register("default", "vm", "10.0.0.1", inst[:1])
    assert (created, reg.revision) == (False, 2)
    await store.register("prod", "db", "10.0.0.2", [make_instance("db", "10.0.0.2", 5432,
                                                                  namespace="prod")])
    assert await store.deregister(("prod", "db", "10.0.0.2")) == 4
    with pytest.raises(NotFoundError, match="no instance of db at 10.0.0.2 .* namespace prod"):
        await store.deregister(("prod", "db", "10.0.0.2"))
    assert store.statistics() == {"revision": 4, "registrations": 1, "instances": 1, "writes": 4}

    again = InstanceStore(tmp_path)
    assert again.revision == 4  # the counter survives deletes and restarts
    assert [(r.service, r.revision, [i.port for i in r.instances]) for r in again.list()] == [
        ("vm", 2, [80])]
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp")]


def test_instance_store_refuses_a_corrupt_file(tmp_path):
    (tmp_path / "instances.json").write_text("{not json")
    with pytest.raises(ConfigError, match="instances.json.*cannot load static instances"):
        InstanceStore(tmp_path)


@pytest.mark.parametrize(("body", "where"), [
    ([], "$"),
    ({"service": "vm", "address": "1.2.3.4", "ports": [{"port": 80}], "color": "red"}, "$.color"),
    ({"address": "1.2.3.4", "ports": [{"port": 80}]}, "$.service"),
    ({"service": "vm", "ports": [{"port": 80}]}, "$.address"),
    ({"service": "vm", "address": "1.2.3.4", "ports": []}, "$.ports"),
    ({"service": "vm", "address": "1.2.3.4", "ports": [{"port": 0}]}, "$.ports[0].port"),
    ({"service": "vm", "address": "1.2.3.4", "ports": [{"port": 80, "name": "ftp"}]},
     "$.ports[0].name"),
    ({"service": "vm", "address": "1.2.3.4", "ports": [{"port": 80}, {"port": 80}]},
     "$.ports[1].port"),
    ({"service": "vm", "address": "1.2.3.4", "ports": [{"port": 80}], "labels": {"a": 1}},
     "$.labels"),
])
def test_parse_registration_names_the_field(body, where):
    with pytest.raises(ConfigError) as info:
        parse_registration(body)
    assert where in str(info.value)


async def test_instance_and_member_endpoints():
    store, mesh = ConfigStore.in_memory(), Mesh()
    body = json.dumps({"service": "vm", "address": "10.0.0.7", "labels": {"version": "v2"},
                       "ports": [{"name": "http", "port": 80}, {"name": "grpc", "port": 90}]})
    status, reg = await dispatch(store, "POST", "/v1/instances", body.encode(), mesh=mesh)
    assert (status, reg["revision"], reg["ports"]) == (
        201, 1, [{"name": "http", "port": 80}, {"name": "grpc", "port": 90}])
    status, reg = await dispatch(store, "POST", "/v1/instances", body.encode(), mesh=mesh)
    assert (status, reg["revision"]) == (200, 2)
    status, listing = await dispatch(store, "GET", "/v1/instances", b"", mesh=mesh)
    assert (status, listing["revision"], len(listing["instances"])) == (200, 2, 1)
    status, members = await dispatch(store, "GET", "/v1/members", b"", mesh=mesh)
    assert status == 200 and members["gossip"] is False
    assert [(m["name"], m["state"], m["service"], m["labels"]) for m in members["members"]] == [
        ("vm@10.0.0.7", "static", "vm", {"app": "vm", "version": "v2"})]
    with pytest.raises(HTTPError) as info:
        await dispatch(store, "POST", "/v1/instances", b"{", mesh=mesh)
    assert info.value.status == 400 and "invalid JSON" in info.value.message
    status, answer = await dispatch(store, "DELETE", "/v1/instances/default/vm/10.0.0.7", b"",
                                    mesh=mesh)
    assert (status, answer) == (200, {"revision": 3})
    with pytest.raises(HTTPError) as info:
        await dispatch(store, "DELETE", "/v1/instances/default/vm/10.0.0.7", b"", mesh=mesh)
    assert info.value.status == 404
    with pytest.raises(HTTPError) as info:
        await dispatch(store, "PUT", "/v1/members", b"", mesh=mesh)
    assert info.value.status == 405


# -- the mesh key ------------------------------------------------------------------------------

def test_mesh_key_is_created_once_with_mode_0600(tmp_path):
    key = load_or_create_mesh_key(tmp_path / "state")
    path = mesh_key_path(tmp_path / "state")
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_mesh_key(tmp_path / "state") == key == read_mesh_key(path)


@pytest.mark.parametrize(("content", "message"), [
    (None, "no mesh key file"), ("not base64!!", "not base64"), ("YWJj", "16, 24 or 32 bytes")])
def test_bad_mesh_key_files(tmp_path, content, message):
    path = tmp_path / "gossip.key"
    if content is not None:
        path.write_text(content)
    with pytest.raises(MeshKeyError, match=message) as info:
        read_mesh_key(path)
    assert str(path) in str(info.value)


# -- the publisher with real agents (loopback UDP/TCP, virtual time) --------------------------

async def _wait(predicate, timeout):
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.05)


async def test_publisher_republishes_deletes_and_re_tombstones(autojump_clock, nursery):
    config = GossipConfig()
    store = ConfigStore.in_memory()
    instances = InstanceStore()
    await store.create(load_text(RR_YAML % "kept")[0])
    gone = await store.create(load_text(RR_YAML % "gone")[0])
    await store.delete(gone.key)

    # a member that still holds a live copy of "gone" from before (e.g. away for over a day)
    member = await nursery.start(functools.partial(
        serve_discovery, "sidecar", port=0, key=KEY, config=config))
    await member.put_config("RouteRule", "default", "gone", gone.revision, gone.to_dict())

    control = await nursery.start(functools.partial(
        serve_discovery, "control@x", port=0, key=KEY, config=config, seeds=[member.addr]))
    publisher = await nursery.start(Publisher(store, instances, control).serve)
    assert publisher.puts == 1  # everything the store has, at start

    def live(name):
        entry = member.node.config_entry("RouteRule", "default", name)
        return entry is not None and entry.obj is not None

    await _wait(lambda: live("kept") and not live("gone"), 10)
    entry = member.node.config_entry("RouteRule", "default", "gone")
    assert (entry.obj, entry.origin, entry.revision) == (None, "control@x", store.revision)

    await instances.register("default", "vm", "10.0.0.3", [make_instance("vm", "10.0.0.3", 80)])
    await _wait(lambda: [i.address for i in member.node.static_instances()] == ["10.0.0.3"], 5)
    new = await store.create(load_text(RR_YAML % "new")[0])
    await _wait(lambda: live("new"), 5)
    assert member.node.config_entry("RouteRule", "default", "new").revision == new.revision
    assert control.statistics()["direct_pushes"] >= 1  # sent straight to the member too
    await store.delete(new.key)
    await _wait(lambda: not live("new"), 5)
    assert publisher.statistics()["tombstones"] == 2


def test_known_members_file_tolerates_garbage(tmp_path):
    from trimesh.control._gossip import load_known_members, save_known_members
    path = tmp_path / "members.json"
    assert load_known_members(path) == []
    path.write_text("{broken")
    assert load_known_members(path) == []
    path.write_text('["127.0.0.2:7946", "nonsense", 7, "127.0.0.3:7946"]')
    assert load_known_members(path) == ["127.0.0.2:7946", "127.0.0.3:7946"]
    save_known_members(path, ["127.0.0.9:1"])
    assert load_known_members(path) == ["127.0.0.9:1"]


async def test_a_restarted_control_rejoins_the_members_it_knew(autojump_clock, nursery, tmp_path):
    from trimesh.control._gossip import MEMBER_SNAPSHOT_INTERVAL, MEMBERS_FILE, load_known_members
    config = GossipConfig()
    member = await nursery.start(functools.partial(
        serve_discovery, "sidecar", port=0, key=KEY, config=config))
    with ConfigStore.open(tmp_path, offload=False) as store:
        instances = InstanceStore(tmp_path, offload=False)
        scope = trio.CancelScope()

        async def first_run(task_status):
            with scope:
                async with trio.open_nursery() as inner:
                    agent = await inner.start(functools.partial(
                        serve_discovery, "control@x", port=0, key=KEY, config=config,
                        seeds=[member.addr]))
                    await inner.start(Publisher(store, instances, agent).serve)
                    task_status.started(agent)
        first = await nursery.start(first_run)
        await trio.sleep(MEMBER_SNAPSHOT_INTERVAL)
        # the file is written in a worker thread: poll (virtual time may run ahead of it)
        await _wait(lambda: load_known_members(tmp_path / MEMBERS_FILE) == [member.addr], 60)
        scope.cancel()  # the control dies (no leave)
        await _wait(lambda: member.node.member("control@x").state_name == "dead", 120)

        # restarted on another port, with no --join: it finds the member from the file
        second = await nursery.start(functools.partial(
            serve_discovery, "control@x", port=0, key=KEY, config=config))
        assert second.addr != first.addr
        publisher = await nursery.start(Publisher(store, instances, second).serve)
        assert publisher.rejoined == [member.addr]
        # (generous virtual-time bounds: with real sockets under the autojump clock, virtual
        # time runs on while a packet is in flight)
        await _wait(lambda: member.node.member("control@x").state_name == "alive", 60)
        created = await store.create(load_text(RR_YAML % "after-restart")[0])
        await _wait(lambda: member.node.config_entry("RouteRule", "default", "after-restart")
                    is not None, 60)
        assert created.revision == store.revision
