"""The sidecar's supervision tree in process, in virtual time: order, hooks, restarts, escalation,
readiness and the drain sequence."""

from __future__ import annotations

import json

import pytest
import trio
import trio.lowlevel

from tests.proxy.conftest import http_request
from trimesh.config import make_instance
from trimesh.nursery import (
    ChildSpec,
    ChildStartError,
    RestartIntensityError,
    wait_stop_requested,
)
from trimesh.sidecar import SidecarConfig, serve_sidecar
from trimesh.sidecar._sidecar import CRASH_ENV, SIDECAR_INTENSITY, parse_crash_plan
from trimesh.testing import FakeUpstream, serve_upstream


def _config(address: str, **kw) -> SidecarConfig:
    return SidecarConfig(service=kw.pop("service", "productpage"), port=0,
                         app_port=kw.pop("app_port", 1), address=address, proxy_port=0,
                         admin_port=0, control=None, drain_timeout=kw.pop("drain_timeout", 1.0),
                         **kw)


async def _ready_status(sidecar) -> int:
    return (await http_request(sidecar.addresses["admin"], "GET", "/ready", host="x")).status


async def _stats(sidecar) -> dict:
    return json.loads((await http_request(sidecar.addresses["admin"], "GET", "/stats",
                                          host="x")).body)


class Extra:
    """A source child: serves one instance of 'ratings' into the snapshot, logs its life."""

    def __init__(self, log):
        self.log = log
        self.instances = []
        self.objects = []

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED):
        self.log.append("extra up")
        task_status.started()
        await wait_stop_requested()
        self.log.append("extra stopped")


async def test_tree_order_hooks_and_drain_sequence(nursery, autojump_clock):
    log = []
    extra = Extra(log)
    seen = {}

    async def service(*, task_status=trio.TASK_STATUS_IGNORED):
        task_status.started()
        await wait_stop_requested()
        log.append("service stopped")

    async def on_drained():
        seen["phase"] = sidecar.supervisor.statistics().phase
        seen["outbound_draining"] = sidecar.outbound_server.draining
        seen["ready"] = await _ready_status(sidecar)  # the admin still answers during the drain
        log.append("drained hook")

    def setup(sc):
        sc.add_child(ChildSpec("extra", extra.serve), stage="source")
        sc.add_child(ChildSpec("probe", service))
        sc.add_source(extra)
        sc.on_drained.append(on_drained)

    done = trio.Event()

    async def run(task_status=trio.TASK_STATUS_IGNORED):
        await serve_sidecar(_config("127.0.9.1"), setup=setup, task_status=task_status)
        done.set()

    sidecar = await nursery.start(run)
    mine = ("files", "extra", "snapshot", "inbound", "outbound", "probe", "telemetry", "admin")
    assert tuple(n for n in sidecar.supervisor.order if n in mine) == mine
    assert await _ready_status(sidecar) == 200
    tree = (await _stats(sidecar))["tree"]
    assert tree["phase"] == "running" and tree["all_up"] is True
    assert {c["state"] for c in tree["children"].values()} == {"running"}
    # a source feeds the snapshot builder: one new instance -> one coalesced rebuild
    version = sidecar.version
    extra.instances = [make_instance("ratings", "127.0.9.99", 9080)]
    sidecar.request_rebuild()
    sidecar.request_rebuild()
    await trio.lowlevel.checkpoint()
    await trio.lowlevel.checkpoint()
    assert sidecar.version == version + 1
    assert any(i.service == "ratings" for i in sidecar.snapshot.instances)
    with pytest.raises(RuntimeError):
        sidecar.add_child(ChildSpec("late", service))
    sidecar.shutdown()
    await done.wait()
    # hooks ran after the drain, while the tree was still up; then reverse-order stop
    assert seen == {"phase": "running", "outbound_draining": True, "ready": 503}
    assert log == ["extra up", "drained hook", "service stopped", "extra stopped"]
    assert sidecar.supervisor.statistics().phase == "stopped"


async def test_a_crashing_child_is_restarted_and_counted(nursery, autojump_clock, monkeypatch):
    monkeypatch.setenv(CRASH_ENV, "telemetry:1:0.5")
    sidecar = await nursery.start(serve_sidecar, _config("127.0.9.2"))
    assert await _ready_status(sidecar) == 200
    await trio.sleep(1.0)
    tree = (await _stats(sidecar))["tree"]
    child = tree["children"]["telemetry"]
    assert child["restarts"] == 1 and child["state"] == "running"
    assert "test crash of child 'telemetry'" in child["last_error"]
    assert tree["restarts_in_window"] == 1
    assert await _ready_status(sidecar) == 200
    sidecar.shutdown()


async def test_a_restarted_listener_keeps_its_port(nursery, autojump_clock, monkeypatch):
    app = FakeUpstream(name="ratings-app")
    app_port = await nursery.start(serve_upstream, app, "127.0.9.13", 0)
    monkeypatch.setenv(CRASH_ENV, "inbound:1:0.5")
    sidecar = await nursery.start(serve_sidecar, _config(
        "127.0.9.3", service="ratings", app_port=app_port, app_address="127.0.9.13"))
    before = sidecar.addresses["inbound"]
    await trio.sleep(1.0)
    assert sidecar.supervisor.statistics().children["inbound"].restarts == 1
    assert sidecar.addresses["inbound"] == before
    r = await http_request(before, "GET", "/", host="ratings:9080")
    assert r.status == 200 and r.headers["x-upstream-name"] == "ratings-app"
    sidecar.shutdown()


async def test_crashing_past_the_intensity_takes_the_sidecar_down(autojump_clock, monkeypatch):
    monkeypatch.setenv(CRASH_ENV, "telemetry:0:0.5")
    readiness = []

    async def watch(sidecar):
        while True:  # what /ready would say at every moment a client could ask
            readiness.append((sidecar.supervisor.statistics().children["telemetry"].restarts,
                              sidecar.ready))
            await trio.sleep(0.01)

    err = None
    try:
        async with trio.open_nursery() as nursery:
            sidecar = await nursery.start(serve_sidecar, _config("127.0.9.4"))
            admin = sidecar.addresses["admin"]
            nursery.start_soon(watch, sidecar)
            await trio.sleep_forever()
    except BaseExceptionGroup as group:
        err = group.exceptions[0]
    assert isinstance(err, RestartIntensityError)
    assert err.child == "telemetry" and "test crash of child 'telemetry'" in err.cause
    assert "telemetry" in str(err) and "over the limit" in str(err)
    assert sidecar.supervisor.statistics().children["telemetry"].state == "failed"
    assert sidecar.supervisor.statistics().phase == "failed"
    assert not sidecar.ready
    with pytest.raises(OSError):  # no half-alive sidecar: the admin port is closed too
        await trio.open_tcp_stream(*admin)
    # restarts happened (ready again after each), and the last restart count was the limit
    assert max(r for r, _ in readiness) == SIDECAR_INTENSITY[0]
    assert (SIDECAR_INTENSITY[0], True) in readiness


async def test_ready_is_503_while_a_child_restarts(nursery, autojump_clock, monkeypatch):
    monkeypatch.setenv(CRASH_ENV, "files:1:0.5")
    seen = []

    sidecar = await nursery.start(serve_sidecar, _config("127.0.9.5"))
    orig = sidecar.files.serve

    async def slow_start(*, task_status=trio.TASK_STATUS_IGNORED):
        if sidecar.supervisor.statistics().children["files"].restarts:
            seen.append(sidecar.ready)
            await trio.sleep(0.3)  # a slow restart: /ready must say 503 meanwhile
            r = await http_request(sidecar.addresses["admin"], "GET", "/ready", host="x")
            seen.append(r.status)
            seen.append(r.body)
        await orig(task_status=task_status)

    sidecar.files.serve = slow_start
    await trio.sleep(1.5)
    assert seen == [False, 503, b"not ready: files restarting\n"]
    assert await _ready_status(sidecar) == 200
    sidecar.shutdown()


def test_crash_plan_parsing():
    assert parse_crash_plan("a:2:0.5, b") == {"a": (2, 0.5), "b": (0, 0.2)}
    assert parse_crash_plan("") == {}
    with pytest.raises(ValueError, match=CRASH_ENV):
        parse_crash_plan("a:x")


async def test_a_listener_that_cannot_bind_names_the_os_error(nursery):
    busy = trio.socket.socket()
    await busy.bind(("127.0.9.6", 0))
    busy.listen()
    port = busy.getsockname()[1]
    config = _config("127.0.9.6")
    config.proxy_port = port
    with pytest.raises(ChildStartError) as info:
        await serve_sidecar(config)
    assert info.value.child == "outbound"
    assert isinstance(info.value.__cause__, OSError)
    assert f"outbound listener 127.0.9.6:{port}" in str(info.value)
    busy.close()
