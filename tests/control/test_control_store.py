"""The persistent store: atomic files, restart, leftovers, lock, watchers, reads during a slow fsync."""

import json
import os
import threading

import pytest
import trio
import trio.testing

from trimesh.config import load_text
from trimesh.control import ConfigStore, StateDir, StateError, StoreIOError
from trimesh.control._disk import object_file_name
from trimesh.errors import ConflictError, NotFoundError


def rule(name, namespace="default", version="v1"):
    (obj,) = load_text(
        f"kind: RouteRule\nmetadata: {{name: '{name}', namespace: {namespace}}}\n"
        f"spec:\n  destination: {{name: reviews}}\n  route:\n  - labels: {{version: {version}}}\n")
    return obj


def files(state_dir):
    return sorted(os.listdir(state_dir / "config"))


async def test_writes_persist_and_come_back_after_restart(tmp_path):
    with ConfigStore.open(tmp_path) as store:
        a = await store.create(rule("a"))
        b = await store.create(rule("b", "bookinfo"))
        a2 = await store.replace(rule("a", version="v2"))
        deleted_at = await store.delete(b.key)
        assert (a.revision, b.revision, a2.revision, deleted_at) == (1, 2, 3, 4)
    assert files(tmp_path) == ["LOCK", "REVISION", object_file_name(a.key)]
    with ConfigStore.open(tmp_path) as store:
        assert store.revision == 4  # the delete's revision survives: it is in REVISION
        (back,) = store.list()
        assert back == a2  # same spec, same revision
        assert (await store.create(rule("c"))).revision == 5


async def test_revision_derived_from_objects_when_last_write_was_a_create(tmp_path):
    with ConfigStore.open(tmp_path) as store:
        await store.create(rule("a"))
        await store.delete(rule("a").key)
        await store.create(rule("b"))
        await store.create(rule("c"))
    assert (tmp_path / "config" / "REVISION").read_text() == "2\n"
    with ConfigStore.open(tmp_path) as store:
        assert store.revision == 4


async def test_refused_writes_touch_nothing_on_disk(tmp_path):
    with ConfigStore.open(tmp_path) as store:
        await store.create(rule("a"))
        before = {n: (tmp_path / "config" / n).read_bytes() for n in files(tmp_path)}
        with pytest.raises(ConflictError):
            await store.create(rule("a", version="v9"))
        with pytest.raises(NotFoundError):
            await store.replace(rule("zz"))
        with pytest.raises(NotFoundError):
            await store.delete(rule("zz").key)
        after = {n: (tmp_path / "config" / n).read_bytes() for n in files(tmp_path)}
        assert after == before and store.revision == 1
        assert store.statistics()["refused"] == 3


async def test_leftover_temp_files_are_removed_at_start(tmp_path):
    with ConfigStore.open(tmp_path) as store:
        a = await store.create(rule("a"))
    torn = tmp_path / "config" / (".tmp-" + object_file_name(rule("b").key))
    torn.write_bytes(b'{"apiVersion": "config.istio.io/v1alp')  # a write cut short by kill -9
    with ConfigStore.open(tmp_path) as store:
        assert store.list() == [a]
    assert files(tmp_path) == ["LOCK", object_file_name(a.key)]


def test_second_control_on_same_directory_is_refused(tmp_path):
    with ConfigStore.open(tmp_path):
        with pytest.raises(StateError, match="another control"):
            ConfigStore.open(tmp_path)
    ConfigStore.open(tmp_path).close()  # released on close


async def test_corrupt_object_file_stops_start_naming_the_file(tmp_path):
    with ConfigStore.open(tmp_path) as store:
        a = await store.create(rule("a"))
    path = tmp_path / "config" / object_file_name(a.key)
    doc = json.loads(path.read_text())
    doc["spec"]["route"] = "not a list"
    path.write_text(json.dumps(doc))
    with pytest.raises(StateError, match=r"RouteRule\.default\.a\.json.*\$\.spec\.route"):
        ConfigStore.open(tmp_path)
    ConfigStore.open(tmp_path / "other").close()  # a failed open released its lock too
    ConfigStore.in_memory()


@pytest.mark.parametrize("name", ["a.b", "a_b", "../x", "a/b", "ünï", "x" * 300, ".", "A-b"])
def test_file_names_are_distinct_and_stay_in_the_directory(name):
    key = ("RouteRule", "default", name)
    file_name = object_file_name(key)
    assert "/" not in file_name and not file_name.startswith(".") and len(file_name) <= 200
    others = {object_file_name(("RouteRule", "default", n)) for n in ["a.b", "a_b", "a/b", "a-b"]}
    assert len(others) == 4


async def test_odd_names_round_trip_through_disk(tmp_path):
    names = ["a.b", "a-b", "x" * 250, "a.b-c.d" * 30]
    with ConfigStore.open(tmp_path) as store:
        for n in names:
            await store.create(rule(n))
    with ConfigStore.open(tmp_path) as store:
        assert sorted(o.name for o in store.list()) == sorted(names)


async def test_watchers_wake_on_every_change_and_time_out(autojump_clock):
    store = ConfigStore.in_memory()
    results = []

    async def watch(after, timeout):
        results.append((after, await store.wait_revision(after, timeout=timeout), trio.current_time()))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch, 0, 30)
        nursery.start_soon(watch, 1, 30)
        nursery.start_soon(watch, 5, 30)
        await trio.sleep(10)
        await store.create(rule("a"))
        await trio.sleep(5)
        await store.delete(rule("a").key)
    assert sorted(results) == [(0, 1, 10.0), (1, 2, 15.0), (5, 2, 30.0)]


async def test_reads_are_not_blocked_by_a_slow_commit(tmp_path):
    store = ConfigStore.open(tmp_path)
    a = await store.create(rule("a"))
    release = threading.Event()
    real_commit = store._disk.commit

    def slow_commit(change):
        release.wait(10)
        real_commit(change)

    store._disk.commit = slow_commit
    async with trio.open_nursery() as nursery:
        nursery.start_soon(store.replace, rule("a", version="v2"))
        await trio.testing.wait_all_tasks_blocked()
        # The write holds the lock and is stuck in its fsync; reads answer with the old state.
        assert store.get(a.key) == a and store.revision == 1
        assert store.statistics()["write_waiters"] == 0
        release.set()
    assert store.get(a.key).revision == 2
    store.close()


async def test_failed_commit_is_not_applied_and_its_revision_is_burnt(tmp_path):
    store = ConfigStore.open(tmp_path, offload=False)
    await store.create(rule("a"))

    def full_disk(change):
        raise OSError(28, "No space left on device")

    real_commit, store._disk.commit = store._disk.commit, full_disk
    with pytest.raises(StoreIOError, match="route-rule/default/b.*No space left"):
        await store.create(rule("b"))
    assert [o.name for o in store.list()] == ["a"] and store.revision == 2
    store._disk.commit = real_commit
    assert (await store.create(rule("b"))).revision == 3
    assert store.statistics()["io_errors"] == 1
    assert "revision=3" in repr(store)
    store.close()


def test_state_dir_statistics_and_repr(tmp_path):
    disk = StateDir(tmp_path)
    objects, revision = disk.open()
    assert (objects, revision) == ([], 0)
    assert disk.statistics()["commits"] == 0 and "commits=0" in repr(disk)
    disk.close()
