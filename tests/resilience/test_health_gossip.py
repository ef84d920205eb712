"""The app's health reaches the other members by gossip: a sidecar with gossip on (as
``trimesh run sidecar --join`` wires it) whose app answers its checks 503 is listed unhealthy in a
seed member's registry, and healthy again once the app recovers. In process, real loopback
sockets, a real seed member with the mesh key the control would write."""

from __future__ import annotations

import math
from functools import partial

import trio
from resilience_testkit import ControlledUpstream

from trimesh.control import load_or_create_mesh_key, mesh_key_path
from trimesh.discovery import gossip_profile, serve_discovery
from trimesh.routing import UNHEALTHY_THRESHOLD
from trimesh.sidecar import (OWN_INSTANCE_POLL, GossipOptions, SidecarConfig, install_gossip,
                             serve_sidecar)
from trimesh.testing import serve_upstream

TIMEOUT = 10.0  # seconds (real time) for a change to reach the seed
HEALTH_INTERVAL = 0.2  # seconds between the sidecar's checks of its app
PROFILE = gossip_profile("local")
# The bound is counted in the checker's own rounds, not in seconds: every timer of this test runs
# in one Trio loop, so a loaded machine stretches the rounds and the gossip alike, while a wall
# clock would only see the stretch. The app turns unhealthy after UNHEALTHY_THRESHOLD failed
# checks; the own-instance poll and one dissemination to the seed follow, plus one round of phase.
BOUND_ROUNDS = UNHEALTHY_THRESHOLD + math.ceil(
    (OWN_INSTANCE_POLL + PROFILE.dissemination_bound(2)) / HEALTH_INTERVAL) + 1


async def test_the_apps_health_is_announced_in_gossip(tmp_path):
    key = await trio.to_thread.run_sync(load_or_create_mesh_key, tmp_path)
    app = ControlledUpstream(name="reviews-app")

    def listed(seed):
        return [i for i in seed.registry() if i.service == "reviews"]

    async with trio.open_nursery() as nursery:
        app_port = await nursery.start(serve_upstream, app, "127.79.250.2", 0)
        seed = await nursery.start(partial(
            serve_discovery, "control@127.79.250.1", host="127.79.250.1", port=0, key=key,
            config=PROFILE))
        options = GossipOptions(port=0, join=(seed.addr,), key_file=str(mesh_key_path(tmp_path)),
                                profile="local")
        sidecar = await nursery.start(partial(serve_sidecar, SidecarConfig(
            service="reviews", labels={"version": "v1"}, port=0, app_port=app_port,
            app_address="127.79.250.2", address="127.79.250.3", proxy_port=0, admin_port=0,
            control=None, health_interval=HEALTH_INTERVAL),
            setup=partial(install_gossip, options=options)))
        with trio.fail_after(TIMEOUT):
            while not listed(seed):
                await trio.sleep(0.05)
        assert [i.healthy for i in listed(seed)] == [True]
        app.health_status = 503
        t0, rounds0 = trio.current_time(), sidecar.statistics()["health"]["rounds"]
        with trio.fail_after(TIMEOUT):
            while listed(seed)[0].healthy:
                await trio.sleep(0.05)
        took = trio.current_time() - t0
        took_rounds = sidecar.statistics()["health"]["rounds"] - rounds0
        app.health_status = 200
        with trio.fail_after(TIMEOUT):
            while not listed(seed)[0].healthy:
                await trio.sleep(0.05)
        nursery.cancel_scope.cancel()
    print(f"unhealthy app seen by the seed after {took:.2f}s, {took_rounds} check rounds "
          f"(bound {BOUND_ROUNDS})")
    assert took_rounds <= BOUND_ROUNDS, (took_rounds, took)
