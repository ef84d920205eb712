"""A sidecar with gossip on (``install_gossip``, as ``trimesh run sidecar --join`` wires it) shows
its gossip member in ``/stats``; one without gossip shows ``"gossip": null``. In process, real
loopback sockets (127.0.8.5x), a real seed member with the mesh key the control would write."""

from __future__ import annotations

import json
from functools import partial

import trio

import trimesh.sidecar
from tests.proxy.conftest import http_request
from trimesh.control import load_or_create_mesh_key, mesh_key_path
from trimesh.discovery import gossip_profile, serve_discovery
from trimesh.sidecar import GossipOptions, SidecarConfig, install_gossip, serve_sidecar

JOIN_TIMEOUT = 10.0  # seconds (real time) for the seed to list the sidecar's instance


def test_gossip_names_are_public():
    from trimesh.sidecar import _gossip

    for name in ("GossipSource", "GossipOptions", "install_gossip", "member_name",
                 "COALESCE_INTERVAL", "JOIN_WAIT", "OWN_INSTANCE_POLL"):
        assert getattr(trimesh.sidecar, name) is getattr(_gossip, name)


async def _stats(sidecar) -> dict:
    r = await http_request(sidecar.addresses["admin"], "GET", "/stats", host="admin")
    assert r.status == 200
    return json.loads(r.body)


async def test_stats_show_the_gossip_member_when_gossip_is_on(nursery, tmp_path):
    key = await trio.to_thread.run_sync(load_or_create_mesh_key, tmp_path)
    seed = await nursery.start(partial(serve_discovery, "control@127.0.8.50", host="127.0.8.50",
                                       port=0, key=key, config=gossip_profile("local")))
    options = GossipOptions(port=0, join=(seed.addr,), key_file=str(mesh_key_path(tmp_path)),
                            profile="local")
    sc = await nursery.start(partial(serve_sidecar, SidecarConfig(
        service="reviews", labels={"version": "v1"}, port=0, app_port=1, address="127.0.8.51",
        proxy_port=0, admin_port=0, control=None), setup=partial(install_gossip, options=options)))

    with trio.fail_after(JOIN_TIMEOUT):  # the seed learns the sidecar's instance by gossip
        while not [i for i in seed.registry() if i.service == "reviews"]:
            await trio.sleep(0.05)
    stats = await _stats(sc)
    gossip = stats["gossip"]
    assert set(gossip) == set(sc.gossip.statistics())  # the source's own statistics()
    assert gossip["name"] == "reviews-v1@127.0.8.51"  # port 0: no port in the name
    assert gossip["refreshes"] >= 1 and gossip["left"] is False
    assert gossip["instances"] >= 1  # its own, announced and read back
    assert gossip["agent"] is not None
    assert "GossipSource reviews-v1@127.0.8.51" in repr(sc.gossip)

    plain = await nursery.start(serve_sidecar, SidecarConfig(
        service="ratings", port=0, app_port=1, address="127.0.8.52", proxy_port=0,
        admin_port=0, control=None))
    assert (await _stats(plain))["gossip"] is None
    nursery.cancel_scope.cancel()
