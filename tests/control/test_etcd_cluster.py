"""The etcd store against real processes: a three-member etcd cluster on 127.0.200.1-3 and two
controls (``trimesh run control --store etcd://...``) on 127.0.200.11 and .12, a third control in
this process with gossip (.13, a gossip member on .14), and a sidecar (.22, rules from control2)
in front of a fake reviews-v1 (.21) that must keep serving while controls and members die.

One cluster serves the module's tests in order (each leaves the objects it wrote, later tests
count on that). Every process is started here and stopped by PID; every wait is bounded."""

from __future__ import annotations

import functools
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import trio

from procs import Proc, free_port, spawn, trimesh_command
from trimesh.control import ControlClient, load_or_create_mesh_key, serve_control
from trimesh.discovery import gossip_profile, serve_discovery
from trimesh.errors import TrimeshError

ETCD_HOSTS = ("127.0.200.1", "127.0.200.2", "127.0.200.3")
CONTROL_HOSTS = ("127.0.200.11", "127.0.200.12")
IN_PROCESS_CONTROL = "127.0.200.13"  # a third control, in this process, with gossip
GOSSIP_MEMBER = "127.0.200.14"
UPSTREAM_HOST = "127.0.200.21"  # reviews-v1, a fake upstream
SIDECAR_HOST = "127.0.200.22"  # a sidecar taking its rules from control2, routing to reviews
WAIT = 30.0  # seconds any start or read-back may take
BURST = 300


def _wait(predicate, what: str, proc: Proc | None = None, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and not proc.alive():
            raise AssertionError(f"{proc.name} exited while waiting for {what}:\n{proc.log_tail()}")
        time.sleep(0.1)
    tail = f"\n{proc.log_tail()}" if proc is not None else ""
    raise AssertionError(f"timed out waiting for {what}{tail}")


def _rule(name: str, weight_v2: int = 0) -> dict:
    route = [{"labels": {"version": "v1"}, "weight": 100 - weight_v2}]
    if weight_v2:
        route.append({"labels": {"version": "v2"}, "weight": weight_v2})
    return {"apiVersion": "config.istio.io/v1alpha2", "kind": "RouteRule",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"destination": {"name": "ratings"}, "route": route}}  # not the sidecar's


class Cluster:
    """Three etcd members, each with its own data directory."""

    def __init__(self, root: Path, etcd: str) -> None:
        self.etcd = etcd
        self.root = root
        self.client_ports = {h: free_port(h) for h in ETCD_HOSTS}
        self.peer_ports = {h: free_port(h) for h in ETCD_HOSTS}
        self.members: dict[str, Proc] = {}

    @property
    def url(self) -> str:
        return "etcd://" + ",".join(f"{h}:{self.client_ports[h]}" for h in ETCD_HOSTS)

    def start(self, host: str) -> Proc:
        name = f"etcd{ETCD_HOSTS.index(host) + 1}"
        initial = ",".join(f"etcd{i + 1}=http://{h}:{self.peer_ports[h]}"
                           for i, h in enumerate(ETCD_HOSTS))
        client = f"http://{host}:{self.client_ports[host]}"
        peer = f"http://{host}:{self.peer_ports[host]}"
        proc = spawn(name, [
            self.etcd, "--name", name, "--data-dir", str(self.root / name),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", initial, "--initial-cluster-state", "new",
            "--initial-cluster-token", f"trimesh-test-{os.getpid()}",
            "--listen-metrics-urls", "", "--log-level", "warn", "--logger", "zap",
        ], self.root)
        self.members[host] = proc
        return proc

    def healthy(self, host: str) -> bool:
        try:
            with urllib.request.urlopen(
                    f"http://{host}:{self.client_ports[host]}/health", timeout=1) as answer:
                return b'"true"' in answer.read()
        except OSError:
            return False

    def stop(self) -> None:
        for proc in self.members.values():
            proc.stop()


class Control:
    def __init__(self, name: str, host: str, store_url: str, root: Path) -> None:
        self.name = name
        self.host = host
        self.store_url = store_url
        self.state_dir = root / name
        self.port = free_port(host)
        self.proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _ready_lines(self) -> int:
        path = self.state_dir.parent / f"{self.name}.log"
        return path.read_text(errors="replace").count("control ready") if path.exists() else 0

    def start(self) -> Proc:
        before = self._ready_lines()
        self.proc = spawn(self.name, [
            *trimesh_command(), "run", "control", "--store", self.store_url,
            "--state-dir", str(self.state_dir), "--address", self.host,
            "--config-port", str(self.port), "--no-gossip"], self.state_dir.parent)
        _wait(lambda: self._ready_lines() > before, f"{self.name} ready", self.proc)
        return self.proc

    def client(self) -> ControlClient:
        return ControlClient(self.url, timeout=WAIT)

    def names(self) -> set[str]:
        with self.client() as c:
            return {o["metadata"]["name"] for o in c.list(kind="RouteRule")["objects"]}


class Traffic:
    """Requests to reviews through the sidecar's outbound proxy, one every 20 ms, in a thread."""

    def __init__(self, proxy: str, port: int) -> None:
        self.proxy = proxy
        self.port = port
        self.answers: list[int | str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _one(self) -> int | str:
        request = urllib.request.Request(self.proxy + "/", headers={"host": f"reviews:{self.port}"})
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                return answer.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError as exc:
            return str(exc)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.answers.append(self._one())

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(WAIT)


def _start_sidecar(root: Path, control_url: str) -> tuple[list[Proc], str, int]:
    port = free_port(UPSTREAM_HOST)
    upstream = spawn("reviews-v1", [
        sys.executable, "-m", "trimesh.testing.upstream", "--address", UPSTREAM_HOST,
        "--port", str(port), "--name", "reviews-v1", "--service", "reviews",
        "--version", "v1"], root)
    registry = root / "registry.yaml"
    registry.write_text(
        f"- {{service: reviews, namespace: default, address: {UPSTREAM_HOST}, port: {port}, "
        "labels: {version: v1}}\n")
    proxy_port, admin_port, app_port = (free_port(SIDECAR_HOST) for _ in range(3))
    sidecar = spawn("sidecar", [
        *trimesh_command(), "run", "sidecar", "--service", "productpage", "--port",
        str(free_port(SIDECAR_HOST)), "--app-port", str(app_port), "--address", SIDECAR_HOST,
        "--proxy-port", str(proxy_port), "--admin-port", str(admin_port),
        "--registry", str(registry), "--control", control_url, "--access-log", "off"], root)
    proxy = f"http://{SIDECAR_HOST}:{proxy_port}"
    traffic = Traffic(proxy, port)
    _wait(lambda: traffic._one() == 200, "reviews through the sidecar", sidecar)
    return [sidecar, upstream], proxy, port, f"http://{SIDECAR_HOST}:{admin_port}"


def _config_dump(admin: str) -> str:
    try:
        with urllib.request.urlopen(admin + "/config_dump", timeout=5) as answer:
            return answer.read().decode()
    except OSError:
        return ""


@pytest.fixture(scope="module")
def lab(request, tmp_path_factory):
    root_conftest = Path(__file__).resolve().parent.parent / "conftest.py"
    etcd = request.config.pluginmanager.get_plugin(str(root_conftest)).require_tool("etcd")
    root = tmp_path_factory.mktemp("etcd-lab")
    cluster = Cluster(root, etcd)
    controls: list[Control] = []
    others: list[Proc] = []
    try:
        for host in ETCD_HOSTS:
            cluster.start(host)
        for host in ETCD_HOSTS:
            _wait(lambda host=host: cluster.healthy(host), f"etcd on {host}",
                  cluster.members[host])
        controls = [Control(f"control{i + 1}", h, cluster.url, root)
                    for i, h in enumerate(CONTROL_HOSTS)]
        for control in controls:
            control.start()
        others, proxy, port, admin = _start_sidecar(root, controls[1].url)
        cluster.traffic = lambda: Traffic(proxy, port)
        cluster.sidecar_config = lambda: _config_dump(admin)
        yield cluster, controls
    finally:
        for proc in others:
            proc.stop()
        for control in controls:
            if control.proc is not None:
                control.proc.stop()
        cluster.stop()


def test_an_object_written_through_one_control_is_read_and_long_polled_through_the_other(lab):
    _, (a, b) = lab
    with b.client() as cb:
        before = cb.list()["revision"]
    polled: dict = {}

    def long_poll() -> None:
        with ControlClient(b.url, timeout=WAIT) as c:
            polled.update(c._request("GET", f"/v1/objects?after={before}&timeout=20"))

    poller = threading.Thread(target=long_poll)
    poller.start()
    time.sleep(0.3)  # the poll is waiting on b before the write is made on a
    with a.client() as ca:
        stored = ca.create(_rule("shared", 20))
    poller.join(WAIT)
    assert not poller.is_alive()
    assert [o["metadata"]["name"] for o in polled["objects"]] == ["shared"]
    assert polled["revision"] >= int(stored["metadata"]["resourceVersion"]) > before
    with b.client() as cb:
        got = cb.get("RouteRule", "default", "shared")
    assert got == stored  # same object, same revision (etcd's mod_revision)


def test_writes_refused_by_etcd_compare_whichever_control_takes_them(lab):
    _, (a, b) = lab
    with a.client() as ca, b.client() as cb:
        with pytest.raises(TrimeshError, match="409|exists"):
            cb.create(_rule("shared"))  # made through a in the test above
        first = cb.replace(_rule("shared", 50))
        stale = _rule("shared", 70)
        stale["metadata"]["resourceVersion"] = str(int(first["metadata"]["resourceVersion"]) - 1)
        with pytest.raises(TrimeshError, match="409|changed"):
            ca.replace(stale)
        with pytest.raises(TrimeshError, match="404|not found"):
            ca.replace(_rule("never-made"))
        _wait(lambda: ca.get("RouteRule", "default", "shared") == first, "a sees b's replace")


async def test_a_control_publishes_into_gossip_what_another_control_wrote(lab, tmp_path):
    cluster, (a, _) = lab
    key = load_or_create_mesh_key(tmp_path)
    config = gossip_profile("local")
    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            member = await nursery.start(functools.partial(
                serve_discovery, "sidecar", host=GOSSIP_MEMBER, port=0, key=key, config=config))
            await nursery.start(functools.partial(
                serve_control, store_url=cluster.url, state_dir=tmp_path,
                address=IN_PROCESS_CONTROL, config_port=0, gossip_port=0, join=[member.addr],
                gossip_config=config))

            def create() -> dict:
                with a.client() as ca:
                    return ca.create(_rule("via-gossip", 10))

            stored = await trio.to_thread.run_sync(create)
            while (entry := member.node.config_entry("RouteRule", "default", "via-gossip")) is None:
                await trio.sleep(0.05)
            assert entry.obj == stored  # the object a wrote, as the control on .13 publishes it
            assert entry.revision == int(stored["metadata"]["resourceVersion"])
            assert entry.origin == f"control@{IN_PROCESS_CONTROL}"
            nursery.cancel_scope.cancel()


def test_kill_9_of_a_control_during_a_burst_loses_no_acknowledged_object(lab):
    _, (a, b) = lab
    acked: list[str] = []
    killed = threading.Event()

    def killer() -> None:
        deadline = time.monotonic() + WAIT
        while len(acked) < 100 and time.monotonic() < deadline:
            time.sleep(0.005)
        a.proc.kill9()  # while the burst is writing, mid-request or between two
        killed.set()

    thread = threading.Thread(target=killer)
    cluster, _ = lab
    with cluster.traffic() as traffic, ControlClient(a.url, timeout=10) as ca:
        thread.start()
        failed_at = None
        for i in range(BURST):
            try:
                ca.create(_rule(f"burst-{i:03d}"))
            except TrimeshError:
                failed_at = i
                break
            acked.append(f"burst-{i:03d}")
        thread.join(WAIT)
    assert killed.is_set() and failed_at is not None and len(acked) >= 100
    assert traffic.answers and set(traffic.answers) == {200}  # the sidecar served throughout
    names = _wait(lambda: (n := b.names()) >= set(acked) and n, "every acked object on b")
    assert set(acked) <= names
    # the one in flight when a died is there or not, nothing after it
    assert not {f"burst-{i:03d}" for i in range(failed_at + 1, BURST)} & names


def test_restarting_a_control_keeps_everything(lab):
    _, (a, b) = lab
    a.start()
    assert a.names() == b.names()
    assert "shared" in a.names() and len(a.names()) >= 101


def test_with_one_etcd_member_killed_writes_continue_through_both_controls(lab):
    cluster, (a, b) = lab
    written = []
    with cluster.traffic() as traffic:
        cluster.members[ETCD_HOSTS[0]].kill9()  # the first endpoint of both controls
        _write_through(a, b, written)
    assert traffic.answers and set(traffic.answers) == {200}
    for control in (a, b):
        _wait(lambda control=control: control.names() >= set(written),
              f"{control.name} sees every write made with a member down")
    # the sidecar (on control2) got the rules written through control1 with a member down
    _wait(lambda: all(name in cluster.sidecar_config() for name in written),
          "the sidecar's config has every write")


def _write_through(a: Control, b: Control, written: list[str]) -> None:
    for control in (a, b, a, b):
        with control.client() as c:
            for i in range(10):
                name = f"after-kill-{control.name}-{len(written):02d}"
                c.create(_rule(name))
                written.append(name)
