"""Gossip in real processes (issue 4's real-process acceptance): one control and 20 sidecars on
loopback, each on its own 127.76.x.y, all joined by gossip only (``--control none``).

- a RouteRule created at the control is in every sidecar's /config_dump within 1 s of the create
  returning, at the 99th percentile over 20 trials (p50/p99 printed);
- ``trimesh register`` / ``deregister`` reach every registry; ``trimesh members`` lists everyone;
- a graceful stop (SIGTERM: drain, then leave) removes a sidecar by its leave, not by the failure
  detector: the control holds it as ``left`` (a detection would say ``dead``) and every registry
  drops it;
- ``kill -9`` removes a sidecar from every registry within ``dead_detection_bound`` of the
  profile in use, and restarting it brings it back everywhere.
"""

from __future__ import annotations

import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from procs import free_port  # noqa: E402  (below the ephemeral range: no source-port race)
from mesh_testkit import (
    CONTROL_ADDRESS,
    GOSSIP_PORT,
    LOAD_ALLOWANCE,
    PROFILE,
    SERVICE_PORT,
    Proc,
    config_dump,
    percentile,
    ready,
    repair_bound,
    sidecar_address,
    sidecar_argv,
    trimesh_command,
    wait_until,
)

from trimesh.control import ControlClient
from trimesh.discovery import gossip_profile

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

N = 20
TRIALS = 20
P99_BOUND = 1.0  # seconds (issue 4)
SETTLE = repair_bound(gossip_profile(PROFILE), N + 1)  # news everywhere, gossip misses repaired


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    root = tmp_path_factory.mktemp("mesh")
    state = root / "state"
    port = free_port(CONTROL_ADDRESS)
    control = Proc("control", trimesh_command() + [
        "run", "control", "--state-dir", str(state), "--address", CONTROL_ADDRESS,
        "--config-port", str(port), "--gossip-port", str(GOSSIP_PORT),
        "--gossip-profile", PROFILE], root / "control.log").start()
    url = f"http://{CONTROL_ADDRESS}:{port}"
    key_file = state / "gossip.key"
    sidecars: dict[int, Proc] = {}
    # tests replace processes they restart in this dict: teardown stops whatever runs now
    handle = {"url": url, "control": control, "sidecars": sidecars, "key_file": key_file,
              "root": root}
    try:
        wait_until(lambda: key_file.exists() and "control ready" in control.log_tail(), 30,
                   "the control", [control])
        for i in range(N):  # started concurrently; each waits for its own readiness
            sidecars[i] = Proc(f"sidecar {i}", sidecar_argv(i, key_file),
                               root / f"sidecar{i}.log").start()
        wait_until(lambda: all(ready(i) for i in range(N)), 75, "20 sidecars ready",
                   list(sidecars.values()), step=0.25)
        yield handle
    finally:
        for proc in list(handle["sidecars"].values()) + [handle["control"]]:
            proc.stop()


def _addresses(dump) -> set[str]:
    return {i["address"] for i in dump["instances"]} if dump else set()


def _all_dumps(indices):
    return {i: config_dump(i) for i in indices}


def _member_rows(url: str) -> dict[str, dict]:
    """``trimesh members -o json``: every member the control knows, by name, in any state."""
    result = subprocess.run(trimesh_command() + ["members", "-o", "json", "--control", url],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return {r["name"]: r for r in json.loads(result.stdout)}


def _members(url: str) -> dict[str, dict]:
    return {name: r for name, r in _member_rows(url).items() if r["state"] == "alive"}


def _member_name(i: int) -> str:
    return f"svc{i}-v1@{sidecar_address(i)}:{GOSSIP_PORT}"


def _listed_everywhere(address: str, indices, listed: bool) -> bool:
    """Whether every sidecar of ``indices`` answers and its registry lists ``address``
    (``listed``) or does not list it (``not listed``)."""
    return all(d is not None and (address in _addresses(d)) == listed
               for d in _all_dumps(indices).values())


def test_members_lists_the_control_and_every_sidecar(mesh):
    alive = wait_until(lambda: (lambda m: m if len(m) == N + 1 else None)(_members(mesh["url"])),
                       SETTLE, "21 alive members")
    assert f"control@{CONTROL_ADDRESS}" in alive
    for i in range(N):
        row = alive[_member_name(i)]
        assert row["service"] == f"svc{i}"
        assert row["labels"] == {"app": f"svc{i}", "version": "v1"}
        assert row["instances"][0]["port"] == SERVICE_PORT
    # every sidecar's registry holds all 20 instances
    dumps = wait_until(lambda: (lambda d: d if all(len(_addresses(v)) == N for v in d.values())
                                else None)(_all_dumps(range(N))), SETTLE, "full registries")
    assert all(_addresses(d) == {sidecar_address(i) for i in range(N)} for d in dumps.values())


def _has_object(i: int, name: str) -> tuple[float, bool]:
    """(when the request was sent, whether sidecar ``i``'s /config_dump holds ``name``)."""
    sent = time.monotonic()
    dump = config_dump(i)
    return sent, bool(dump and any(o["metadata"]["name"] == name for o in dump["objects"]))


def test_route_rule_reaches_every_sidecar_within_one_second_p99(mesh):
    """Each sweep asks every sidecar still pending at once (one thread each), so a sidecar's
    measured latency is its true latency plus one /config_dump round trip, not plus the time to
    ask all twenty in turn (which a loaded machine stretches past the bound by itself)."""
    latencies: list[float] = []  # one per sidecar and trial: when the answer showed it
    earliest: list[float] = []  # the same, when the last answer without it was asked for
    all_applied: list[float] = []  # one per trial: until the last of the 20 had it
    with ControlClient(mesh["url"]) as client, ThreadPoolExecutor(N) as pool:
        for trial in range(TRIALS):
            name = f"gossip-trial-{trial}"
            client.create({"apiVersion": "config.istio.io/v1alpha2", "kind": "RouteRule",
                           "metadata": {"name": name, "namespace": "default"},
                           "spec": {"destination": {"name": f"svc{trial % N}"},
                                    "route": [{"labels": {"version": "v1"}}]}})
            t0 = time.monotonic()
            asked = dict.fromkeys(range(N), t0)  # pending sidecar -> its last negative poll
            deadline = t0 + SETTLE  # a rare slow one counts in the percentiles below
            while asked and time.monotonic() < deadline:
                pending = sorted(asked)
                for i, (sent, has) in zip(pending, pool.map(_has_object, pending,
                                                            [name] * len(pending))):
                    if has:
                        latencies.append(time.monotonic() - t0)
                        earliest.append(asked.pop(i) - t0)
                    else:
                        asked[i] = sent
                time.sleep(0.01)  # bounded poll: at most ~100 sweeps a second
            assert not asked, f"trial {trial}: sidecars {sorted(asked)} never applied {name}"
            all_applied.append(max(latencies[-N:]))
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    t50, t99 = percentile(all_applied, 50), percentile(all_applied, 99)
    print(f"\nRouteRule create -> applied, {TRIALS} trials x {N} sidecars: per sidecar "
          f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms (lower bounds: p50 "
          f"{percentile(earliest, 50) * 1000:.0f} ms, p99 {percentile(earliest, 99) * 1000:.0f} "
          f"ms); all {N} applied: p50 {t50 * 1000:.0f} ms, p99 {t99 * 1000:.0f} ms")
    assert len(latencies) == N * TRIALS
    assert p99 <= P99_BOUND, f"p99 {p99:.3f}s > {P99_BOUND}s (p50 {p50:.3f}s)"
    assert t99 <= P99_BOUND, f"all-applied p99 {t99:.3f}s > {P99_BOUND}s (p50 {t50:.3f}s)"


def test_register_and_deregister_reach_every_registry(mesh):
    cli = trimesh_command()
    reg = subprocess.run(cli + ["register", "vm-db", "10.9.8.7", "http:3306", "grpc:3307",
                                "-l", "version=v9", "--control", mesh["url"]],
                         capture_output=True, text=True, timeout=30)
    assert reg.returncode == 0, reg.stderr
    assert reg.stdout.startswith("Registered vm-db at 10.9.8.7 (http:3306 grpc:3307)")

    def seen(dump):
        return {(i["port"], i["protocol"], i["labels"].get("version")) for i in dump["instances"]
                if i["address"] == "10.9.8.7"} if dump else set()

    wait_until(lambda: all(seen(d) == {(3306, "http", "v9"), (3307, "grpc", "v9")}
                           for d in _all_dumps(range(N)).values()), SETTLE, "the static instance")
    dereg = subprocess.run(cli + ["deregister", "vm-db", "10.9.8.7", "--control", mesh["url"]],
                           capture_output=True, text=True, timeout=30)
    assert dereg.returncode == 0, dereg.stderr
    wait_until(lambda: all(d is not None and not seen(d)
                           for d in _all_dumps(range(N)).values()), SETTLE, "the deregistration")


def test_graceful_stop_leaves_rather_than_dies(mesh):
    """The sidecar's leave, not the failure detector, removes it. The proof is the state the
    control records: ``left`` comes only from the member's own leave (gossiped, or copied by
    push/pull), a detection records ``dead``. (A wall-clock bound such as "gone everywhere within
    the suspicion timeout" cannot hold: gossip misses a member in about one leave in seven, and a
    loaded machine stretches every timer.)"""
    i = N - 1
    proc = mesh["sidecars"][i]
    address = sidecar_address(i)
    assert proc.stop() == 0
    t0 = time.monotonic()
    others = range(N - 1)
    wait_until(lambda: _listed_everywhere(address, others, False), SETTLE,
               f"{address} leaving every registry")
    gone_after = time.monotonic() - t0
    state = wait_until(lambda: (lambda r: r and r["state"] in ("left", "dead") and r["state"])(
        _member_rows(mesh["url"]).get(_member_name(i))), SETTLE, "the control's verdict")
    print(f"\ngraceful stop: gone from all {N - 1} registries {gone_after:.2f} s after the "
          f"process exited; the control holds it as {state!r}")
    assert state == "left", f"the control holds {_member_name(i)} as {state!r}, not 'left'"
    mesh["sidecars"][i] = proc = Proc(proc.name, proc.argv, proc.log_path).start()
    wait_until(lambda: ready(i), 30, f"sidecar {i} back", [proc])
    wait_until(lambda: _listed_everywhere(address, others, True),
               SETTLE, f"{address} back in every registry", [proc])


def test_kill_minus_9_is_removed_within_the_bound_and_comes_back(mesh):
    i = 5
    proc = mesh["sidecars"][i]
    address = sidecar_address(i)
    others = [j for j in range(N) if j != i]
    config = gossip_profile(PROFILE)
    bound = config.dead_detection_bound(N + 1)
    t0 = time.monotonic()
    proc.kill9()
    wait_until(lambda: _listed_everywhere(address, others, False), bound + LOAD_ALLOWANCE,
               f"{address} dropped from every registry", step=0.2)
    elapsed = time.monotonic() - t0
    print(f"\nkill -9: removed from all {N - 1} registries after {elapsed:.1f} s "
          f"(bound {bound:.1f} s, profile {PROFILE})")
    assert elapsed <= bound

    mesh["sidecars"][i] = proc = Proc(proc.name, proc.argv, proc.log_path).start()
    wait_until(lambda: ready(i), 30, f"sidecar {i} restarted", [proc])
    wait_until(lambda: _listed_everywhere(address, others, True),
               SETTLE, f"{address} back in every registry", [proc])
    wait_until(lambda: len(_addresses(config_dump(i))) == N, SETTLE,
               "the restarted sidecar's full registry", [proc])


def test_sidecars_keep_their_view_while_the_control_is_down_and_catch_up(mesh):
    control = mesh["control"]
    control.kill9()
    before = {i: config_dump(i) for i in range(N)}
    names = {o["metadata"]["name"] for o in before[0]["objects"]}
    assert {f"gossip-trial-{t}" for t in range(TRIALS)} <= names
    mesh["control"] = control = Proc(control.name, control.argv, control.log_path).start()
    wait_until(lambda: control.log_tail().count("control ready") >= 2, 30, "the control again",
               [control])
    t0 = time.monotonic()
    with ControlClient(mesh["url"]) as client:
        client.create({"apiVersion": "config.istio.io/v1alpha2", "kind": "RouteRule",
                       "metadata": {"name": "after-restart", "namespace": "default"},
                       "spec": {"destination": {"name": "svc1"},
                                "route": [{"labels": {"version": "v1"}}]}})
    # the restarted control rejoins the members it remembered (STATE_DIR/members.json)
    wait_until(lambda: all(d and "after-restart" in {o["metadata"]["name"] for o in d["objects"]}
                           for d in _all_dumps(range(N)).values()), SETTLE,
               "the rule created after the restart", [control])
    print(f"\ncontrol kill -9 + restart: a new rule reached all {N} sidecars "
          f"{time.monotonic() - t0:.2f} s after the create")
    for i in range(N):  # nothing was lost meanwhile
        assert names <= {o["metadata"]["name"] for o in config_dump(i)["objects"]}
