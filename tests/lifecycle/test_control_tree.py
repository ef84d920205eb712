"""The control's supervision tree: extra children start after the built-in ones and stop before
them; a child crashing past the intensity takes the control down naming it."""

from __future__ import annotations

import pytest
import trio

from tests.proxy.conftest import http_request
from trimesh.control import serve_control
from trimesh.control._process import CONTROL_INTENSITY
from trimesh.nursery import ChildSpec, RestartIntensityError, wait_stop_requested


async def test_extra_children_join_the_tree(tmp_path, autojump_clock):
    log = []

    async def service(*, task_status=trio.TASK_STATUS_IGNORED):
        log.append("service up")
        task_status.started()
        await wait_stop_requested()
        log.append("service stopped")

    async with trio.open_nursery() as nursery:
        url = await nursery.start(lambda task_status: serve_control(
            state_dir=tmp_path, address="127.0.9.30", config_port=0,
            children=[ChildSpec("mixer", service)], task_status=task_status))
        host, port = url.removeprefix("http://").rsplit(":", 1)
        r = await http_request((host, int(port)), "GET", "/v1/objects", host="x")
        assert r.status == 200 and log == ["service up"]
        nursery.cancel_scope.cancel()
    assert log == ["service up", "service stopped"]


async def test_a_child_crashing_past_the_intensity_takes_the_control_down(tmp_path,
                                                                          autojump_clock):
    runs = []

    async def crashing(*, task_status=trio.TASK_STATUS_IGNORED):
        runs.append(trio.current_time())
        task_status.started()
        await trio.sleep(0.1)
        raise RuntimeError("ca broke")

    with pytest.raises(RestartIntensityError) as info:
        await serve_control(state_dir=tmp_path, address="127.0.9.31", config_port=0,
                            children=[ChildSpec("ca", crashing)])
    err = info.value
    assert err.child == "ca" and "ca broke" in err.cause
    assert len(runs) == CONTROL_INTENSITY[0] + 1
