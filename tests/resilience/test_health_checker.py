"""The sidecar's health-checker (trimesh/sidecar/_health.py): the probe loop in virtual time with
an injected probe, then real probes against fake upstreams on loopback."""

from __future__ import annotations

import random

import msgspec
import pytest
import trio

from trimesh.config import Snapshot, make_instance
from trimesh.routing import RequestInfo, SourceIdentity, compile_routes
from trimesh.sidecar._health import (
    HEALTH_INTERVAL,
    HEALTH_PATH,
    USER_AGENT,
    HealthCheckConfig,
    HealthChecker,
    probe_endpoint,
    probe_passes,
    serve_health_checker,
)
from trimesh.testing import FakeUpstream, serve_upstream

SOURCE = SourceIdentity(service="productpage", namespace="default",
                        labels={"app": "productpage", "version": "v1"})
FQDN = "reviews.default.svc.cluster.local"
ALL = HealthCheckConfig(mode="all")  # probe the peers too (the default probes only the app)


def reviews_table(addresses, port=9080, protocol="http"):
    insts = [make_instance("reviews", a, port, labels={"version": "v1"}, protocol=protocol)
             for a in addresses]
    table = compile_routes(Snapshot([], insts, version=1), source=SOURCE)
    table.decide(RequestInfo(method="GET", authority="reviews:9080", path="/"), random.Random(1))
    return table


class ScriptedProbe:
    """Answers per endpoint from a dict the test changes; records every call with its time."""

    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    async def __call__(self, address, port, path, host, timeout):
        self.calls.append((trio.current_time(), address, port, path, host, timeout))
        status = self.answers.get((address, port), 200)
        return probe_passes(status), status


def test_defaults_are_named():
    assert HEALTH_INTERVAL == 1.0 and HEALTH_PATH == "/health"
    cfg = HealthCheckConfig()
    assert (cfg.interval, cfg.path) == (HEALTH_INTERVAL, HEALTH_PATH)


@pytest.mark.parametrize("status,ok", [(200, True), (204, True), (302, True), (404, True),
                                       (500, False), (503, False), (None, False)])
def test_what_passes(status, ok):
    assert probe_passes(status) is ok


@pytest.mark.parametrize("kw,where", [({"interval": 0}, "interval"), ({"timeout": -1}, "timeout"),
                                      ({"path": "health"}, "path"),
                                      ({"paths": {"reviews": "x"}}, "paths['reviews']")])
def test_bad_config_says_what(kw, where):
    with pytest.raises(ValueError, match=where.replace("[", r"\[").replace("]", r"\]")):
        HealthCheckConfig(**kw)


async def test_modes(autojump_clock):
    """The default probes only the own app; ``all`` adds the routed endpoints; ``off`` nothing."""
    table = reviews_table(["127.0.0.1", "127.0.0.2"])
    seen = {}
    for mode in ("app", "all", "off"):
        probe = ScriptedProbe({})
        checker = HealthChecker(lambda: table, own_app=("127.0.0.9", 8000), probe=probe,
                                config=HealthCheckConfig(mode=mode))
        await checker.check_once()
        seen[mode] = sorted(c[1] for c in probe.calls)
    assert HealthCheckConfig().mode == "app"
    assert seen == {"app": ["127.0.0.9"], "all": ["127.0.0.1", "127.0.0.2", "127.0.0.9"],
                    "off": []}
    with pytest.raises(ValueError, match="mode must be one of app, all, off"):
        HealthCheckConfig(mode="peers")


def test_per_service_paths():
    cfg = HealthCheckConfig(paths={"reviews": "/r", "ratings.default.svc.cluster.local": "/q"})
    assert cfg.path_for("reviews", FQDN) == "/r"
    assert cfg.path_for("ratings", "ratings.default.svc.cluster.local") == "/q"
    assert cfg.path_for("details", "details.default.svc.cluster.local") == "/health"


async def test_a_503_leaves_the_pool_within_one_interval(autojump_clock):
    table = reviews_table(["127.0.0.1", "127.0.0.2", "127.0.0.3"])
    cluster = table.cluster(FQDN)
    probe = ScriptedProbe({})
    checker = HealthChecker(lambda: table, probe=probe, config=ALL)
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_health_checker, checker)
        await trio.sleep(2.5)  # rounds at 0, 1, 2
        assert checker.rounds == 3 and checker.probes == 9 and checker.failures == 0
        assert cluster.healthy_count == 3
        t_shed = trio.current_time()
        probe.answers[("127.0.0.2", 9080)] = 503
        while cluster.healthy_count == 3:
            await trio.sleep(0.01)
        assert trio.current_time() - t_shed <= HEALTH_INTERVAL
        picks = {cluster.pick(random.Random(i), trio.current_time()).address for i in range(50)}
        assert picks == {"127.0.0.1", "127.0.0.3"}
        # Back after HEALTHY_THRESHOLD (2) passing rounds.
        probe.answers[("127.0.0.2", 9080)] = 200
        t_ok = trio.current_time()
        while cluster.healthy_count != 3:
            await trio.sleep(0.01)
        assert 1.0 <= trio.current_time() - t_ok <= 2.0 + 1e-9
        nursery.cancel_scope.cancel()
    assert checker.flips == 2
    times = sorted({round(c[0], 6) for c in probe.calls})
    assert times == [float(k) for k in range(len(times))]  # one round per interval, on the grid
    assert {c[3] for c in probe.calls} == {"/health"} and {c[4] for c in probe.calls} == {"reviews:9080"}


async def test_failures_need_the_threshold(autojump_clock):
    table = reviews_table(["127.0.0.1", "127.0.0.2"])
    cluster = table.cluster(FQDN)
    probe = ScriptedProbe({("127.0.0.1", 9080): 500})
    checker = HealthChecker(lambda: table, probe=probe, config=ALL)
    await checker.check_once()
    assert cluster.healthy_count == 2  # one 500 is not enough
    await checker.check_once()
    assert cluster.healthy_count == 1
    assert table.health_states()[("127.0.0.1", 9080)].last_status == 500
    stats = checker.statistics()
    assert stats["unhealthy"] == 1 and stats["endpoints"]["127.0.0.1:9080"] == "unhealthy"
    assert "rounds=2" in repr(checker)


async def test_the_table_is_reread_every_round(autojump_clock):
    tables = [reviews_table(["127.0.0.1"])]
    probe = ScriptedProbe({})
    checker = HealthChecker(lambda: tables[0], probe=probe, config=ALL)
    await checker.check_once()
    tables[0] = reviews_table(["127.0.0.5", "127.0.0.6"])
    await checker.check_once()
    assert probe.calls[0][1] == "127.0.0.1"
    assert sorted(c[1] for c in probe.calls[1:]) == ["127.0.0.5", "127.0.0.6"]


async def test_tcp_instances_get_a_connect_check(autojump_clock):
    table = reviews_table(["127.0.0.1"], protocol="tcp")
    probe = ScriptedProbe({})
    await HealthChecker(lambda: table, probe=probe, config=ALL).check_once()
    assert probe.calls[0][3] is None


async def test_own_app_flips_are_announced(autojump_clock):
    table = reviews_table(["127.0.0.1", "127.0.0.2"])
    announced = []
    probe = ScriptedProbe({("127.0.0.9", 8000): 503})
    checker = HealthChecker(lambda: table, own_app=("127.0.0.9", 8000),
                            own_endpoint=("127.0.0.2", 9080), own_service="reviews",
                            config=HealthCheckConfig(paths={"reviews": "/ping"}, mode="all"), probe=probe,
                            on_own_change=announced.append)
    await checker.check_once()
    # The own endpoint is not probed as a peer: the app is probed directly, its verdict shared.
    assert sorted((c[1], c[2], c[3]) for c in probe.calls) == [
        ("127.0.0.1", 9080, "/ping"), ("127.0.0.9", 8000, "/ping")]
    assert announced == [False] and not checker.own.healthy  # reported after every check
    assert not table.health_states()[("127.0.0.2", 9080)].healthy
    probe.answers[("127.0.0.9", 8000)] = 200
    await checker.check_once()
    await checker.check_once()
    assert announced == [False, False, True]
    assert checker.statistics()["app"]["state"] == "healthy"


async def test_no_table_yet_probes_only_the_app(autojump_clock):
    probe = ScriptedProbe({})
    checker = HealthChecker(lambda: None, own_app=("127.0.0.9", 8000), probe=probe)
    await checker.check_once()
    assert [(c[1], c[2]) for c in probe.calls] == [("127.0.0.9", 8000)]
    assert checker.statistics()["endpoints"] == {}


# -- real probes over loopback -------------------------------------------------------------------


class HealthAwareUpstream(FakeUpstream):
    """A fake upstream whose health-check answers (recognised by the checker's user agent) are
    ``health_status``, whatever it answers other requests."""

    health_status: int = 200

    def plan(self, headers):
        if headers.get("user-agent") == USER_AGENT:
            headers = {**headers, "x-upstream-status": str(self.health_status)}
        return super().plan(headers)


async def test_real_probes_against_fake_upstreams():
    ups = [HealthAwareUpstream(name=f"r{i}") for i in range(2)]
    async with trio.open_nursery() as nursery:
        ports = [await nursery.start(serve_upstream, u, "127.0.0.1", 0) for u in ups]
        ok = await probe_endpoint("127.0.0.1", ports[0], "/health", "reviews:9080", 1.0)
        assert ok == (True, 200)
        ups[1].health_status = 503
        assert await probe_endpoint("127.0.0.1", ports[1], "/health", "r", 1.0) == (False, 503)
        assert await probe_endpoint("127.0.0.1", ports[1], None, "r", 1.0) == (True, None)
        seen = ups[0].requests[-1]
        assert seen["path"] == "/health" and seen["headers"]["user-agent"] == USER_AGENT
        assert seen["headers"]["host"] == "reviews:9080"
        nursery.cancel_scope.cancel()
    # Nothing listening: refused, no status.
    assert await probe_endpoint("127.0.0.1", ports[0], "/health", "r", 1.0) == (False, None)


async def test_a_hanging_endpoint_fails_by_the_timeout():
    up = FakeUpstream(name="hang", hang=True)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_upstream, up, "127.0.0.1", 0)
        t0 = trio.current_time()
        assert await probe_endpoint("127.0.0.1", port, "/health", "h", 0.2) == (False, None)
        assert 0.15 <= trio.current_time() - t0 < 1.0
        nursery.cancel_scope.cancel()


async def test_a_starting_app_gets_a_grace_period(autojump_clock):
    """Refused checks while the app starts are not counted until it first passes (or the grace
    ends); after its first pass, failures count at once."""
    probe = ScriptedProbe({("127.0.0.9", 8000): None})
    checker = HealthChecker(lambda: None, own_app=("127.0.0.9", 8000), probe=probe)
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_health_checker, checker)
        await trio.sleep(4.5)
        assert checker.own.healthy and checker.startup_failures == 5
        probe.answers[("127.0.0.9", 8000)] = 200
        await trio.sleep(1.0)
        probe.answers[("127.0.0.9", 8000)] = None
        await trio.sleep(2.0)
        assert not checker.own.healthy and checker.startup_failures == 5
        nursery.cancel_scope.cancel()


async def test_an_app_that_never_starts_is_unhealthy_after_the_grace(autojump_clock):
    from trimesh.sidecar._health import APP_START_GRACE
    probe = ScriptedProbe({("127.0.0.9", 8000): None})
    checker = HealthChecker(lambda: None, own_app=("127.0.0.9", 8000), probe=probe)
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_health_checker, checker)
        await trio.sleep(APP_START_GRACE + 1.5)
        assert not checker.own.healthy
        nursery.cancel_scope.cancel()


async def test_the_sidecar_announces_its_apps_health(tmp_path):
    """In-process sidecar: its app answers its checks 503, so its own instance (what gossip
    announces) turns unhealthy; back to 200 and it is healthy again."""
    from trimesh.sidecar import SidecarConfig, serve_sidecar
    app = HealthAwareUpstream(name="reviews-app")
    async with trio.open_nursery() as nursery:
        app_port = await nursery.start(serve_upstream, app, "127.0.0.1", 0)
        cfg = SidecarConfig(service="reviews", port=0, app_port=app_port, proxy_port=0,
                            admin_port=0, control=None, health_interval=0.1)
        sidecar = await nursery.start(serve_sidecar, cfg)
        assert sidecar.own_instance.healthy
        app.health_status = 503
        with trio.fail_after(5):
            while sidecar.own_instance.healthy:
                await trio.sleep(0.02)
        with trio.fail_after(5):  # the rebuilt snapshot carries it (rebuilds are coalesced)
            while sidecar.snapshot.instances[0].healthy:
                await trio.sleep(0.02)
        # Something re-creates the own instance (an inbound restart does): the next check
        # repairs the announcement.
        sidecar.own_instance = msgspec.structs.replace(sidecar.own_instance, healthy=True)
        with trio.fail_after(5):
            while sidecar.own_instance.healthy:
                await trio.sleep(0.02)
        app.health_status = 200
        with trio.fail_after(5):
            while not sidecar.own_instance.healthy:
                await trio.sleep(0.02)
        stats = sidecar.statistics()["health"]
        assert stats["app"]["flips"] == 2 and stats["rounds"] >= 3
        nursery.cancel_scope.cancel()
