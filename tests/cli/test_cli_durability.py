"""Acceptance of the store's durability with real control processes: restart, kill -9 in the middle
of a burst of concurrent writes, 20 concurrent clients."""

from __future__ import annotations

import json
import os
import threading

from trimesh.control import ControlClient, ControlUnreachableError
from trimesh.errors import TrimeshError


def rule(name: str, version: str = "v1", namespace: str = "default") -> dict:
    return {"apiVersion": "config.istio.io/v1alpha2", "kind": "RouteRule",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"destination": {"name": "reviews"}, "route": [{"labels": {"version": version}}]}}


def stored(url: str) -> dict[str, int]:
    with ControlClient(url) as client:
        return {o["metadata"]["name"]: int(o["metadata"]["resourceVersion"])
                for o in client.list()["objects"]}


def store_revision(url: str) -> int:
    with ControlClient(url) as client:
        return client.version()["revision"]


def test_restart_brings_back_every_object_and_revisions_keep_increasing(new_control, tmp_path):
    control = new_control()
    with ControlClient(control.url) as client:
        for i in range(5):
            client.create(rule(f"r{i}"))
        client.replace(rule("r1", "v2"))
        client.delete("RouteRule", "default", "r3")  # the last write is a delete: revision 7
    before, revision = stored(control.url), store_revision(control.url)
    assert revision == 7 and len(before) == 4
    assert control.stop() == 0
    control = new_control()
    assert stored(control.url) == before and store_revision(control.url) == 7
    with ControlClient(control.url) as client:
        after = client.create(rule("r9"))
    assert int(after["metadata"]["resourceVersion"]) == 8


def test_kill_9_during_concurrent_writes_loses_nothing_acknowledged(new_control, tmp_path):
    control = new_control()
    writers = 6
    acked: dict[str, int | None] = {}  # name -> revision of its last acknowledged write (None: deleted)
    in_flight: dict[int, tuple[str, str]] = {}  # writer -> (name, op) not yet answered
    highest = [0]
    lock = threading.Lock()
    enough = threading.Event()
    refused: list[BaseException] = []

    def writer(w: int) -> None:
        cycle = ["create", "replace", "delete"]
        with ControlClient(control.url, timeout=10) as client:
            for i in range(10_000):  # bounded; the kill ends it long before
                # Four objects per writer, each going create -> replace -> delete -> create ...
                name, op = f"w{w}-{i % 4}", cycle[(i // 4) % 3]
                with lock:
                    in_flight[w] = (name, op)
                try:
                    if op == "create":
                        rev = int(client.create(rule(name))["metadata"]["resourceVersion"])
                    elif op == "replace":
                        rev = int(client.replace(rule(name, f"v{i}"))["metadata"]["resourceVersion"])
                    else:
                        rev = client.delete("RouteRule", "default", name)
                except ControlUnreachableError:
                    return  # the control died mid-request: this write is in doubt
                except TrimeshError as exc:  # refused: cannot happen, each writer owns its names
                    refused.append(exc)
                    return
                with lock:
                    acked[name] = None if op == "delete" else rev
                    highest[0] = max(highest[0], rev)
                    del in_flight[w]
                    if len(acked) >= 12 and highest[0] >= 60:
                        enough.set()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    assert enough.wait(30), control.log_tail()
    control.kill()  # kill -9 while every writer has a request on the wire or about to
    for t in threads:
        t.join(15)
    assert not any(t.is_alive() for t in threads)
    assert not refused
    assert in_flight  # the kill did land in the middle of writes

    files = os.listdir(tmp_path / "state" / "config")
    for name in files:
        if name.endswith(".json"):  # no torn file under a final name
            json.loads((tmp_path / "state" / "config" / name).read_text())

    control = new_control()  # start-up succeeds on the killed control's directory
    assert not [f for f in os.listdir(tmp_path / "state" / "config") if f.startswith(".tmp-")]
    now = stored(control.url)
    doubtful = {name for name, _ in in_flight.values()}
    for name, revision in acked.items():
        if name in doubtful:
            continue  # its last acknowledged write may have been followed by a persisted, unanswered one
        assert now.get(name) == revision, (name, revision, now.get(name))
    for name in doubtful:
        if acked.get(name) is not None and name in now:
            assert now[name] >= acked[name]
    assert set(now) <= set(acked) | doubtful
    assert store_revision(control.url) >= highest[0]
    with ControlClient(control.url) as client:
        fresh = client.create(rule("after-restart"))
    assert int(fresh["metadata"]["resourceVersion"]) > highest[0]


def test_twenty_clients_at_once_get_distinct_revisions(control):
    results: dict[str, int] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(20)

    def client_task(c: int) -> None:
        try:
            with ControlClient(control.url) as client:
                start.wait(10)
                for i in range(5):
                    obj = client.create(rule(f"c{c}-{i}", namespace="burst"))
                    results[obj["metadata"]["name"]] = int(obj["metadata"]["resourceVersion"])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=client_task, args=(c,)) for c in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and len(results) == 100
    assert len(set(results.values())) == 100  # distinct revisions
    with ControlClient(control.url) as client:
        listing = client.list(namespace="burst")
    assert {o["metadata"]["name"]: int(o["metadata"]["resourceVersion"]) for o in listing["objects"]} == results
