"""The Trio supervisor in virtual time (autojump_clock): start and stop order, deadlines, restarts,
escalation, readiness. Every timestamp asserted is derived from the scripted delays."""

from functools import partial
from itertools import accumulate

import pytest
import trio
from trio.testing import MockClock

from nursery_scripted import (
    Scripted,
    crash,
    events,
    fail_start,
    ignore_stop,
    raise_on_stop,
    return_before_start,
    returns,
    serve,
)
from trimesh.errors import ConfigError
from trimesh.nursery import (
    ChildSpec,
    ChildStartError,
    ChildState,
    RestartIntensityError,
    RestartPolicy,
    Supervisor,
    SupervisorPhase,
    open_supervisor,
    serve_supervisor,
    stop_requested,
    wait_stop_requested,
)

approx = pytest.approx


def child(log, name, *steps, **kw):
    return ChildSpec(name, Scripted(name, log, *steps), **kw)


async def test_children_start_in_dependency_order_one_at_a_time(autojump_clock):
    log = []
    delays = {"admin": 0.1, "proxy": 0.3, "discovery": 0.5, "certs": 0.2}
    specs = [
        child(log, "admin", serve(delays["admin"]), depends_on=("proxy",)),
        child(log, "proxy", serve(delays["proxy"]), depends_on=("discovery", "certs")),
        child(log, "discovery", serve(delays["discovery"])),
        child(log, "certs", serve(delays["certs"])),
    ]
    t0 = trio.current_time()
    async with trio.open_nursery() as nursery:
        sup = await nursery.start(partial(serve_supervisor, specs, name="sidecar"))
        up_at = trio.current_time() - t0
        assert sup.order == ("discovery", "certs", "proxy", "admin")
        # each child starts only after the previous one reported started()
        expected = list(zip(accumulate(delays[n] for n in sup.order), sup.order))
        assert events(log, "started", t0) == [(approx(t), n) for t, n in expected]
        assert up_at == approx(expected[-1][0])  # the tree is up when the last child is
        assert sup.all_up
        stats = sup.statistics()
        assert stats.phase is SupervisorPhase.RUNNING
        assert list(stats.children) == list(sup.order)
        for t, name in expected:
            assert stats.children[name].state is ChildState.RUNNING
            assert stats.children[name].started_at == approx(t0 + t)
            assert stats.children[name].restarts == 0
        nursery.cancel_scope.cancel()


async def test_cancellation_stops_children_in_reverse_order_with_deadlines(autojump_clock):
    log = []
    a_drain, b_timeout, c_drain = 0.5, 2.0, 0.25
    specs = [
        child(log, "a", serve(drain=a_drain)),
        child(log, "b", ignore_stop(), depends_on=("a",), shutdown_timeout=b_timeout),
        child(log, "c", serve(drain=c_drain), depends_on=("b",)),
    ]
    sup = Supervisor(specs)
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.serve)
            t_stop = trio.current_time()
            scope.cancel()
    done = trio.current_time() - t_stop
    assert [(n, w) for _, n, w in log if w != "started"] == [
        ("c", "stop requested"), ("c", "stopped"),
        ("b", "cancelled"),
        ("a", "stop requested"), ("a", "stopped"),
    ]
    b_cancelled = c_drain + b_timeout  # b's grace period starts when c has stopped
    assert events(log, "cancelled", t_stop) == [(approx(b_cancelled), "b")]
    assert events(log, "stopped", t_stop) == [(approx(c_drain), "c"), (approx(b_cancelled + a_drain), "a")]
    assert done == approx(b_cancelled + a_drain)
    stats = sup.statistics()
    assert stats.phase is SupervisorPhase.STOPPED and not stats.all_up
    assert {c.state for c in stats.children.values()} == {ChildState.STOPPED}


async def test_stop_returns_normally_after_graceful_shutdown(autojump_clock):
    log = []
    sup = Supervisor([child(log, "a", serve(drain=1.0)), child(log, "b", serve(drain=1.0))])
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.serve)
        t_stop = trio.current_time()
        sup.stop()
        sup.stop()  # idempotent
        assert not sup.all_up  # draining is not ready
    assert trio.current_time() - t_stop == approx(2.0)
    assert [n for _, n, w in log if w == "stopped"] == ["b", "a"]
    assert sup.statistics().phase is SupervisorPhase.STOPPED


async def test_permanent_child_crash_is_restarted_and_counted(autojump_clock):
    log = []
    flaky = Scripted("flaky", log, crash(after=1.0), serve())
    specs = [child(log, "steady", serve()), ChildSpec("flaky", flaky)]
    async with trio.open_nursery() as nursery:
        t0 = trio.current_time()
        sup = await nursery.start(partial(serve_supervisor, specs, intensity=(3, 10.0)))
        await trio.sleep(5.0)
        stats = sup.statistics()
        assert flaky.runs == 2
        assert stats.children["flaky"].restarts == 1
        assert stats.children["flaky"].state is ChildState.RUNNING
        assert stats.children["flaky"].last_error == repr(flaky.raised[0]) == "ValueError('boom')"
        assert stats.children["flaky"].started_at == approx(t0 + 1.0)
        assert stats.children["steady"].restarts == 0
        assert stats.restarts_in_window == 1
        assert sup.all_up
        assert "flaky=running" in repr(sup) and "1 restarts" in repr(sup)
        sup.stop()
    assert [n for _, n, w in log if w == "started"] == ["steady", "flaky", "flaky"]


async def test_crash_past_intensity_stops_siblings_and_names_child_and_cause(autojump_clock):
    log = []
    crasher = Scripted("discovery", log, crash(after=0.5, make=lambda: OSError(98, "address in use")))
    specs = [
        child(log, "certs", serve(drain=0.1)),
        ChildSpec("discovery", crasher),
        child(log, "admin", serve(drain=0.1), depends_on=("certs",)),
    ]
    sup = Supervisor(specs, intensity=(2, 5.0), name="sidecar")
    t0 = trio.current_time()
    with pytest.raises(RestartIntensityError) as info:
        await sup.serve()
    err = info.value
    assert err.child == "discovery" and err.supervisor == "sidecar"
    assert err.__cause__ is crasher.raised[-1]  # chained to the original exception
    assert isinstance(err.__cause__, OSError)
    assert "'discovery'" in str(err) and "address in use" in str(err) and "2 restarts in 5s" in str(err)
    assert crasher.runs == 3  # the first run and two restarts
    # the third crash at 1.5 s escalates; siblings are stopped in reverse start order
    assert events(log, "stop requested", t0) == [(approx(1.5), "admin"), (approx(1.6), "certs")]
    stats = sup.statistics()
    assert stats.phase is SupervisorPhase.FAILED
    assert stats.children["discovery"].state is ChildState.FAILED
    assert stats.children["discovery"].restarts == 2
    assert stats.children["certs"].state is stats.children["admin"].state is ChildState.STOPPED


async def test_crashes_further_apart_than_the_window_never_escalate(autojump_clock):
    log = []
    crasher = Scripted("c", log, crash(after=6.0))
    sup = Supervisor([ChildSpec("c", crasher)], intensity=(1, 5.0))
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.serve)
        await trio.sleep(6.0 * 4 + 1.0)
        assert crasher.runs == 5
        assert sup.statistics().children["c"].restarts == 4
        assert sup.statistics().restarts_in_window == 1
        sup.stop()


@pytest.mark.parametrize(
    ("policy", "step", "state", "restarts"),
    [
        (RestartPolicy.PERMANENT, returns(1.0), ChildState.RUNNING, 1),
        (RestartPolicy.PERMANENT, crash(1.0), ChildState.RUNNING, 1),
        (RestartPolicy.TRANSIENT, returns(1.0), ChildState.STOPPED, 0),
        (RestartPolicy.TRANSIENT, crash(1.0), ChildState.RUNNING, 1),
        (RestartPolicy.TEMPORARY, returns(1.0), ChildState.STOPPED, 0),
        (RestartPolicy.TEMPORARY, crash(1.0), ChildState.FAILED, 0),
    ],
)
async def test_policies(autojump_clock, policy, step, state, restarts):
    log = []
    job = Scripted("job", log, step, serve())
    sup = Supervisor([child(log, "other", serve()), ChildSpec("job", job, policy=policy)],
                     intensity=(5, 10.0))
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.serve)
        await trio.sleep(3.0)
        stats = sup.statistics()
        assert stats.children["job"].state is state
        assert stats.children["job"].restarts == restarts == job.runs - 1
        assert stats.children["job"].last_error == (repr(job.raised[0]) if job.raised else None)
        # whatever happened to the job, the rest of the tree is up and ready
        assert stats.phase is SupervisorPhase.RUNNING and sup.all_up
        assert stats.children["other"].state is ChildState.RUNNING
        sup.stop()


@pytest.mark.parametrize(
    ("step", "cause"),
    [
        (fail_start(0.3), "raised RuntimeError('no config') before calling task_status.started()"),
        (return_before_start(0.3), "returned before calling task_status.started()"),
    ],
)
async def test_child_failing_before_started_fails_startup(autojump_clock, step, cause):
    log = []
    broken = Scripted("b", log, step)
    late = Scripted("c", log)
    specs = [child(log, "a", serve(drain=0.1)), ChildSpec("b", broken, depends_on=("a",)),
             ChildSpec("c", late, depends_on=("b",))]
    sup = Supervisor(specs, intensity=(5, 10.0), name="sidecar")
    t0 = trio.current_time()
    with pytest.raises(ChildStartError) as info:
        await sup.serve()
    err = info.value
    assert err.child == "b" and err.cause == cause
    assert str(err) == f"sidecar: child 'b' failed to start: {cause}"
    assert err.__cause__ is (broken.raised[0] if broken.raised else None)
    assert broken.runs == 1  # a start failure during startup is not retried (as in OTP)
    assert late.runs == 0
    assert events(log, "stopped", t0) == [(approx(0.4), "a")]
    stats = sup.statistics()
    assert stats.phase is SupervisorPhase.FAILED
    assert [stats.children[n].state for n in "abc"] == [
        ChildState.STOPPED, ChildState.FAILED, ChildState.STOPPED]


async def test_readiness_is_false_while_a_child_restarts(autojump_clock):
    log = []
    restart_delay = 2.0
    flaky = Scripted("flaky", log, crash(after=1.0), serve(start_delay=restart_delay))
    sup = Supervisor([child(log, "steady", serve()), ChildSpec("flaky", flaky)], intensity=(3, 10.0))
    async with trio.open_nursery() as nursery:
        t0 = trio.current_time()
        await nursery.start(sup.serve)
        assert sup.all_up
        await sup.wait_all_up()  # already up: returns at once
        assert trio.current_time() == t0
        await trio.sleep(1.5)
        assert not sup.all_up
        assert sup.statistics().children["flaky"].state is ChildState.RESTARTING
        await sup.wait_all_up()
        assert trio.current_time() - t0 == approx(1.0 + restart_delay)
        assert sup.all_up and sup.statistics().children["flaky"].state is ChildState.RUNNING
        sup.stop()


async def test_restart_takes_dependents_down_and_up_again(autojump_clock):
    log = []
    db = Scripted("db", log, crash(after=1.0), serve())
    specs = [
        ChildSpec("db", db),
        child(log, "cache", serve()),
        child(log, "api", serve(drain=0.2), depends_on=("db",)),
        child(log, "worker", serve(), depends_on=("api",), policy="temporary"),
    ]
    sup = Supervisor(specs, intensity=(3, 10.0))
    async with trio.open_nursery() as nursery:
        t0 = trio.current_time()
        await nursery.start(sup.serve)
        await trio.sleep(2.0)
        after_crash = [(round(t - t0, 6), n, w) for t, n, w in log if t > t0]
        assert after_crash == [
            (1.0, "db", "crashed"),
            (1.0, "worker", "stop requested"), (1.0, "worker", "stopped"),  # dependents, reverse
            (1.0, "api", "stop requested"), (1.2, "api", "stopped"),
            (1.2, "db", "started"), (1.2, "api", "started"),  # then start order again
        ]
        stats = sup.statistics()
        assert {n: (c.state, c.restarts) for n, c in stats.children.items()} == {
            "db": (ChildState.RUNNING, 1),
            "cache": (ChildState.RUNNING, 0),  # not a dependent: untouched
            "api": (ChildState.RUNNING, 1),
            "worker": (ChildState.STOPPED, 0),  # temporary: not restarted
        }
        assert stats.restarts_in_window == 1  # one restart event against the intensity
        sup.stop()


async def test_failed_restarts_count_toward_intensity(autojump_clock):
    log = []
    db = Scripted("db", log, crash(after=1.0), fail_start(0.1, make=lambda: ConnectionError("refused")))
    sup = Supervisor([ChildSpec("db", db)], intensity=(2, 10.0))
    with pytest.raises(RestartIntensityError) as info:
        await sup.serve()
    assert info.value.child == "db" and "refused" in str(info.value)
    assert info.value.__cause__ is db.raised[-1] and isinstance(db.raised[-1], ConnectionError)
    assert db.runs == 3  # crash, then two failed starts; the second is one too many
    assert sup.statistics().children["db"].restarts == 2


async def test_nested_supervisor_drains_gracefully_when_its_parent_stops(autojump_clock):
    log = []
    inner = Supervisor([child(log, "x", serve(drain=0.5)),
                        child(log, "y", serve(drain=0.1), depends_on=("x",))], name="inner")
    specs = [
        child(log, "before", serve()),
        ChildSpec("inner", inner.serve, depends_on=("before",), shutdown_timeout=10.0),
        child(log, "after", serve(), depends_on=("inner",)),
    ]
    outer = Supervisor(specs, name="outer")
    async with trio.open_nursery() as nursery:
        await nursery.start(outer.serve)
        assert [n for _, n, w in log if w == "started"] == ["before", "x", "y", "after"]
        assert inner.all_up and outer.all_up
        t_stop = trio.current_time()
        outer.stop()
    assert [(round(t - t_stop, 6), n, w) for t, n, w in log if w != "started"] == [
        (0.0, "after", "stop requested"), (0.0, "after", "stopped"),
        (0.0, "y", "stop requested"), (0.1, "y", "stopped"),
        (0.1, "x", "stop requested"), (0.6, "x", "stopped"),
        (0.6, "before", "stop requested"), (0.6, "before", "stopped"),
    ]
    assert inner.statistics().phase is SupervisorPhase.STOPPED


async def test_error_while_stopping_is_recorded_not_raised(autojump_clock):
    log = []
    messy = Scripted("messy", log, raise_on_stop())
    sup = Supervisor([ChildSpec("messy", messy), child(log, "tidy", serve())])
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.serve)
        sup.stop()
    stats = sup.statistics()
    assert stats.phase is SupervisorPhase.STOPPED
    assert stats.children["messy"].state is ChildState.STOPPED
    assert stats.children["messy"].last_error == repr(messy.raised[0])
    assert stats.children["messy"].restarts == 0


class Fatal(BaseException):
    pass


async def test_base_exceptions_are_not_swallowed(autojump_clock):
    log = []
    specs = [child(log, "victim", ignore_stop()), child(log, "bomb", crash(1.0, make=Fatal))]
    sup = Supervisor(specs, intensity=(5, 10.0))
    with pytest.raises(BaseExceptionGroup) as info:
        await sup.serve()
    assert info.value.subgroup(Fatal) is not None
    assert ("victim", "cancelled") in [(n, w) for _, n, w in log]
    assert sup.statistics().children["bomb"].restarts == 0


async def test_open_supervisor_runs_body_when_up_and_stops_on_exit(autojump_clock):
    log = []
    specs = [child(log, "a", serve(start_delay=1.0, drain=0.5)), child(log, "b", serve(drain=0.5))]
    t0 = trio.current_time()
    async with open_supervisor(specs, name="app") as sup:
        assert trio.current_time() - t0 == approx(1.0)
        assert sup.all_up and sup.name == "app"
    assert trio.current_time() - t0 == approx(2.0)
    assert [n for _, n, w in log if w == "stopped"] == ["b", "a"]

    with pytest.raises(KeyError):  # a body error comes out as itself, not in a group
        async with open_supervisor(specs):
            raise KeyError("x")


async def test_open_supervisor_failure_cancels_the_body_and_raises_the_error(autojump_clock):
    log = []
    body_cancelled = False
    specs = [child(log, "bad", crash(1.0))]
    with pytest.raises(RestartIntensityError) as info:
        async with open_supervisor(specs, intensity=(0, 5.0)):
            try:
                await trio.sleep_forever()
            except trio.Cancelled:
                body_cancelled = True
                raise
    assert body_cancelled and info.value.child == "bad"
    assert isinstance(info.value.__cause__, ValueError)


async def test_configuration_errors_are_raised_before_anything_starts():
    log = []
    a = Scripted("a", log)
    specs = [ChildSpec("a", a, depends_on=("b",)), ChildSpec("b", a, depends_on=("a",))]
    with pytest.raises(ConfigError, match="dependency cycle: a -> b -> a"):
        await serve_supervisor(specs)
    with pytest.raises(ConfigError, match="unknown child 'c'"):
        Supervisor([ChildSpec("a", a, depends_on=("c",))])
    assert a.runs == 0
    with pytest.raises(ValueError, match="intensity"):
        Supervisor([ChildSpec("a", a)], intensity=(-1, 5.0))
    with pytest.raises(ValueError, match=r"intensity must be \(max_restarts, window_seconds\)"):
        Supervisor([ChildSpec("a", a)], intensity=3)


async def test_serve_runs_only_once(autojump_clock):
    sup = Supervisor([])
    async with trio.open_nursery() as nursery:
        assert await nursery.start(sup.serve) is sup
        assert sup.all_up  # an empty tree is trivially up
        with pytest.raises(RuntimeError, match="only once"):
            await sup.serve()
        sup.stop()


async def test_stop_request_outside_a_supervisor_never_comes(autojump_clock):
    assert not stop_requested()
    with trio.move_on_after(1000.0) as scope:
        await wait_stop_requested()
    assert scope.cancelled_caught


async def test_stop_request_reaches_tasks_the_child_spawns(autojump_clock):
    seen = []

    async def parent(*, task_status):
        async def helper():
            await wait_stop_requested()
            seen.append(("helper", trio.current_time(), stop_requested()))

        async with trio.open_nursery() as n:
            n.start_soon(helper)
            task_status.started()
            await wait_stop_requested()
            seen.append(("parent", trio.current_time(), stop_requested()))

    sup = Supervisor([ChildSpec("p", parent)])
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.serve)
        await trio.sleep(3.0)
        t_stop = trio.current_time()
        sup.stop()
    assert sorted(seen) == [("helper", t_stop, True), ("parent", t_stop, True)]


async def test_cancelling_a_hanging_start_is_prompt(autojump_clock):
    log = []
    sup = Supervisor([child(log, "a", serve(drain=0.5)), child(log, "slow", serve(start_delay=1e6))])
    t0 = trio.current_time()
    with trio.move_on_after(3.0):
        await sup.serve()
    # the starting child is cancelled at once; the running one still gets its graceful stop
    assert trio.current_time() - t0 == approx(3.5)
    assert [(n, w) for _, n, w in log] == [("a", "started"), ("a", "stop requested"), ("a", "stopped")]
    assert {c.state for c in sup.statistics().children.values()} == {ChildState.STOPPED}


async def test_exit_during_startup_is_handled_before_reporting_started(autojump_clock):
    log = []
    early = Scripted("early", log, crash(after=0.0), serve())
    specs = [ChildSpec("early", early), child(log, "slow", serve(start_delay=1.0))]
    async with trio.open_nursery() as nursery:
        sup = await nursery.start(partial(serve_supervisor, specs, intensity=(3, 10.0)))
        assert sup.all_up
        assert early.runs == 2 and sup.statistics().children["early"].restarts == 1
        assert [n for _, n, w in log if w == "started"] == ["early", "slow", "early"]
        sup.stop()


async def test_escalation_takes_the_parent_down_with_the_chain_of_causes(autojump_clock):
    log = []
    inner = Supervisor([child(log, "proxy", crash(1.0, make=lambda: OSError("bind failed")))],
                       intensity=(1, 5.0), name="sidecar")
    outer = Supervisor([ChildSpec("sidecar", inner.serve), child(log, "admin", serve())],
                       intensity=(0, 5.0), name="process")
    with pytest.raises(RestartIntensityError) as info:
        await outer.serve()
    err = info.value
    assert (err.supervisor, err.child) == ("process", "sidecar")
    inner_err = err.__cause__
    assert isinstance(inner_err, RestartIntensityError)
    assert (inner_err.supervisor, inner_err.child) == ("sidecar", "proxy")
    assert isinstance(inner_err.__cause__, OSError) and "bind failed" in str(inner_err)
    assert "proxy" in str(err) and "bind failed" in str(err)  # the cause's repr names it all


def test_trio_run_raises_the_bare_error_for_a_non_zero_exit():
    specs = [ChildSpec("job", Scripted("job", [], crash(0.5)))]
    with pytest.raises(RestartIntensityError, match="'job'.*ValueError"):
        trio.run(partial(serve_supervisor, specs, intensity=(0, 1.0)),
                 clock=MockClock(autojump_threshold=0))


async def test_stop_abandons_a_restart_that_hangs(autojump_clock):
    log = []
    stuck = Scripted("stuck", log, crash(after=1.0), serve(start_delay=1e6))
    sup = Supervisor([child(log, "a", serve(drain=0.5)), ChildSpec("stuck", stuck),
                      child(log, "dep", serve(), depends_on=("stuck",))], intensity=(3, 10.0))
    async with trio.open_nursery() as nursery:
        t0 = trio.current_time()
        await nursery.start(sup.serve)
        await trio.sleep(2.0)
        assert sup.statistics().children["stuck"].state is ChildState.RESTARTING
        sup.stop()
    assert trio.current_time() - t0 == approx(2.5)  # only a's drain; the hanging start is abandoned
    stats = sup.statistics()
    assert stuck.runs == 2
    assert {n: c.state for n, c in stats.children.items()} == {
        "a": ChildState.STOPPED, "stuck": ChildState.STOPPED, "dep": ChildState.STOPPED}
    assert [n for _, n, w in log if w == "started"] == ["a", "stuck", "dep"]  # dep not restarted


async def test_the_sidecar_tree_from_the_docs(autojump_clock):
    """docs/supervision.md's sidecar example, with scripted children and an admin that probes /ready."""
    log = []
    probes = []

    async def admin(*, task_status):
        task_status.started()
        while not stop_requested():
            probes.append((trio.current_time(), sup.all_up))
            with trio.move_on_after(0.25):
                await wait_stop_requested()
        probes.append((trio.current_time(), sup.all_up))

    discovery = Scripted("discovery", log, crash(after=1.1), serve(start_delay=0.5, drain=0.2))
    sup = Supervisor(
        [
            ChildSpec("admin", admin),
            child(log, "certs", serve()),
            ChildSpec("discovery", discovery, shutdown_timeout=2.0),
            child(log, "health", serve(), depends_on=("discovery",)),
            child(log, "proxy", serve(drain=1.0), depends_on=("discovery", "certs")),
            child(log, "telemetry", serve(), depends_on=("proxy",), policy="transient"),
        ],
        intensity=(3, 10.0),
        name="sidecar",
    )
    async with trio.open_nursery() as nursery:
        t0 = trio.current_time()
        await nursery.start(sup.serve)
        assert sup.order == ("admin", "certs", "discovery", "health", "proxy", "telemetry")
        await trio.sleep(3.1)
        restarts = {n: c.restarts for n, c in sup.statistics().children.items()}
        assert restarts == {"admin": 0, "certs": 0, "discovery": 1, "health": 1, "proxy": 1,
                            "telemetry": 1}
        t_stop = trio.current_time()
        sup.stop()
    # The crash at 1.1 takes telemetry, proxy (1 s drain) and health down; discovery needs 0.5 s to
    # start again, so the tree is back at 2.6. Admin starts first (so it probes before the others
    # are up) and stops last, unready throughout the drain (proxy 1.0 s + discovery 0.2 s).
    back = 1.1 + 1.0 + 0.5
    for t, up in probes:
        rel = t - t0
        assert up is not (rel == 0.0 or 1.1 <= rel < back or t >= t_stop), (rel, up)
    assert len(probes) > 12
    assert probes[-1] == (approx(t_stop + 1.0 + 0.2), False)
    assert [n for t, n, w in log if w == "stop requested" and t >= t_stop] == [
        "telemetry", "proxy", "health", "discovery", "certs"]


async def test_started_values_are_available_to_dependents(autojump_clock):
    seen = []

    async def registry(*, task_status):
        task_status.started({"reviews": ["127.0.0.2:9080"]})
        await wait_stop_requested()

    async def proxy(*, task_status):
        seen.append(sup.started_value("registry"))
        task_status.started(("127.0.0.1", 15001))
        await wait_stop_requested()

    sup = Supervisor([ChildSpec("proxy", proxy, depends_on=("registry",)),
                      ChildSpec("registry", registry)])
    with pytest.raises(LookupError, match="'proxy' has not started"):
        sup.started_value("proxy")
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.serve)
        assert seen == [{"reviews": ["127.0.0.2:9080"]}]
        assert sup.started_value("proxy") == ("127.0.0.1", 15001)
        with pytest.raises(KeyError):
            sup.started_value("nope")
        sup.stop()
