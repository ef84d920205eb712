"""The app's health reaches the other members by gossip: a sidecar with gossip on (as
``trimesh run sidecar --join`` wires it) whose app answers its checks 503 is listed unhealthy in a
seed member's registry, and healthy again once the app recovers. In process, real loopback
sockets, a real seed member with the mesh key the control would write."""

from __future__ import annotations

from functools import partial

import trio
from resilience_testkit import ControlledUpstream

from trimesh.control import load_or_create_mesh_key, mesh_key_path
from trimesh.discovery import gossip_profile, serve_discovery
from trimesh.sidecar import GossipOptions, SidecarConfig, install_gossip, serve_sidecar
from trimesh.testing import serve_upstream

TIMEOUT = 10.0  # seconds (real time) for a change to reach the seed


async def test_the_apps_health_is_announced_in_gossip(tmp_path):
    key = await trio.to_thread.run_sync(load_or_create_mesh_key, tmp_path)
    app = ControlledUpstream(name="reviews-app")

    def listed(seed):
        return [i for i in seed.registry() if i.service == "reviews"]

    async with trio.open_nursery() as nursery:
        app_port = await nursery.start(serve_upstream, app, "127.79.250.2", 0)
        seed = await nursery.start(partial(
            serve_discovery, "control@127.79.250.1", host="127.79.250.1", port=0, key=key,
            config=gossip_profile("local")))
        options = GossipOptions(port=0, join=(seed.addr,), key_file=str(mesh_key_path(tmp_path)),
                                profile="local")
        await nursery.start(partial(serve_sidecar, SidecarConfig(
            service="reviews", labels={"version": "v1"}, port=0, app_port=app_port,
            app_address="127.79.250.2", address="127.79.250.3", proxy_port=0, admin_port=0,
            control=None, health_interval=0.2), setup=partial(install_gossip, options=options)))
        with trio.fail_after(TIMEOUT):
            while not listed(seed):
                await trio.sleep(0.05)
        assert [i.healthy for i in listed(seed)] == [True]
        app.health_status = 503
        t0 = trio.current_time()
        with trio.fail_after(TIMEOUT):
            while listed(seed)[0].healthy:
                await trio.sleep(0.05)
        took = trio.current_time() - t0
        app.health_status = 200
        with trio.fail_after(TIMEOUT):
            while not listed(seed)[0].healthy:
                await trio.sleep(0.05)
        nursery.cancel_scope.cancel()
    print(f"unhealthy app seen by the seed after {took:.2f}s")
    assert took < 2.0  # one check (0.2 s) + the watcher's poll (0.25 s) + a gossip round
