"""Issue 13 acceptance with real processes in 127.0.170.0/24: the docs' Mixer YAML as written,
created with ``trimesh create -f`` against a control, checked by a standalone ``trimesh run mixer``
and enforced by the ratings sidecar's inbound policy stage; callers are reviews v2 / v3 sidecars
whose outbound names them in the source header.

- denier: reviews-v3 → ratings 403 with the exact body, reviews-v2 → ratings 200; deleting the
  rule restores access within 2 s;
- rate limit: reviews v2 → ratings held to 1 request per second, v3 keeps passing;
- Mixer killed: cached answers keep answering, uncached checks fail open (the default); the
  stage uses Mixer again once it is back;
- the control's own Mixer child answers on its port.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml
from e2e_harness import Proc, free_port, spawn, trimesh_command, wait_until

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
BLOCK = "127.0.170"
CONTROL, MIXER, RATINGS_APP, RATINGS, V2, V3 = (f"{BLOCK}.{i}" for i in (20, 21, 22, 23, 24, 25))
PORT = 9080
READY = 25.0

DENY_LABEL = (Path(__file__).resolve().parent.parent / "mixer" / "test_runtime.py").read_text(
    ).split('DENY_LABEL = """', 1)[1].split('"""', 1)[0]
RATE_FILES = ("ratelimit-handler.yaml", "ratelimit-rule.yaml",
              "mixer-rule-ratings-ratelimit-quotaspec.yaml")


def _ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _log_has(proc: Proc, text: str) -> bool:
    return text in proc.log_path.read_text(errors="replace")


class World:
    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.procs: dict[str, Proc] = {}
        self.cport = free_port(CONTROL)
        self.url = f"http://{CONTROL}:{self.cport}"
        self.mport = free_port(MIXER)
        self.proxy: dict[str, int] = {}

    def start(self, name, argv):
        self.procs[name] = spawn(name, argv, self.log_dir)
        return self.procs[name]

    def start_mixer(self):
        p = self.start("mixer", trimesh_command() + [
            "run", "mixer", "--address", MIXER, "--port", str(self.mport), "--control", self.url])
        wait_until(lambda: _log_has(p, "mixer ready on"), READY, "mixer ready", p)

    def sidecar(self, name, service, version, address, app=None):
        reg = self.log_dir / f"{name}-registry.yaml"
        reg.write_text(yaml.safe_dump([{"service": "ratings", "namespace": "default",
                                        "address": RATINGS, "port": PORT,
                                        "labels": {"app": "ratings", "version": "v1"}}]))
        admin, proxy = free_port(address), free_port(address)
        app_address, app_port = app or ("127.0.0.1", free_port("127.0.0.1"))
        p = self.start(name, trimesh_command() + [
            "run", "sidecar", "--service", service, "--version", version, "--port", str(PORT),
            "--app-address", app_address, "--app-port", str(app_port), "--address", address,
            "--proxy-port", str(proxy), "--admin-port", str(admin), "--registry", str(reg),
            "--control", self.url, "--mixer", f"{MIXER}:{self.mport}", "--drain-timeout", "1",
            "--access-log", str(self.log_dir / f"{name}-access.log")])
        self.proxy[name] = proxy
        return p, f"http://{address}:{admin}/ready"

    def get(self, caller: str) -> httpx.Response:
        addr = V2 if caller == "v2" else V3
        return httpx.get(f"http://{addr}:{self.proxy[caller]}/ratings/0",
                         headers={"host": f"ratings:{PORT}"}, timeout=5)

    def cli(self, verb: str, text: str) -> None:
        path = self.log_dir / f"{verb}-{time.monotonic_ns()}.yaml"
        path.write_text(text)
        out = subprocess.run(trimesh_command() + [verb, "-f", str(path)], capture_output=True,
                             text=True, timeout=30, env={**os.environ, "TRIMESH_CONTROL": self.url})
        assert out.returncode == 0, out.stderr

    def stop(self):
        for p in reversed(list(self.procs.values())):
            if p.alive():
                p.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = World(tmp_path_factory.mktemp("e2e-mixer"))
    try:
        c = w.start("control", trimesh_command() + [
            "run", "control", "--state-dir", str(w.log_dir / "state"), "--address", CONTROL,
            "--config-port", str(w.cport), "--no-gossip", "--no-mixer"])
        wait_until(lambda: _ready(f"{w.url}/v1/version"), READY, "control", c)
        w.start_mixer()
        import sys
        w.start("ratings-app", [sys.executable, "-m", "trimesh.testing.upstream", "--address",
                                RATINGS_APP, "--port", str(PORT), "--name", "ratings-v1",
                                "--service", "ratings", "--version", "v1"])
        ready = [w.sidecar("ratings", "ratings", "v1", RATINGS, app=(RATINGS_APP, PORT)),
                 w.sidecar("v2", "reviews", "v2", V2), w.sidecar("v3", "reviews", "v3", V3)]
        for proc, url in ready:
            wait_until(lambda: _ready(url), READY, f"{proc.name} ready", proc)
        yield w
    finally:
        w.stop()


def _until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return time.monotonic()
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s: {what}")


def test_the_denier_and_deleting_it_restores_access(world):
    assert world.get("v3").status_code == 200
    world.cli("create", DENY_LABEL)
    _until(lambda: world.get("v3").status_code == 403, 10, "v3 denied")
    r = world.get("v3")
    assert r.text.strip() == "PERMISSION_DENIED:denyreviewsv3handler.denier.default:Not allowed"
    assert r.headers["content-type"].startswith("text/plain")
    assert [world.get("v2").status_code for _ in range(5)] == [200] * 5
    world.cli("delete", DENY_LABEL)
    t0 = time.monotonic()
    t1 = _until(lambda: world.get("v3").status_code == 200, 5, "v3 allowed again")
    assert t1 - t0 < 2.0
    # the ratings sidecar reported its requests (batched every second)
    _until(lambda: _mixer_stats(world)["records"] > 0, 5, "reports reached Mixer")


def _mixer_stats(world) -> dict:
    import socket

    from trimesh.mixer import FrameReader, encode_frame
    with socket.create_connection((MIXER, world.mport), timeout=5) as s:
        s.sendall(encode_frame({"op": "stats"}))
        reader, answer = FrameReader(), None
        while answer is None:
            reader.feed(s.recv(1 << 20))
            answer = reader.next()
    return answer


def test_rate_limit_reviews_v2_to_ratings_one_per_second(world):
    text = "\n---\n".join((FIXTURES / f).read_text() for f in RATE_FILES)
    world.cli("create", text)
    try:
        # the config reached Mixer once a burst from v2 sees a 429
        _until(lambda: any(world.get("v2").status_code == 429 for _ in range(3)), 10,
               "v2 rate limited")
        time.sleep(1.1)
        start = time.monotonic()
        v2 = []
        bodies = set()
        while time.monotonic() - start < 2.0:
            r = world.get("v2")
            v2.append((time.monotonic(), r.status_code))
            if r.status_code == 429:
                bodies.add(r.text.strip())
            time.sleep(0.1)
        passed = [t for t, s in v2 if s == 200]
        assert {s for _, s in v2} <= {200, 429} and 1 <= len(passed) <= 3
        assert all(b - a >= 0.9 for a, b in zip(passed, passed[1:]))  # ≤ 1 in any second
        assert bodies == {"RESOURCE_EXHAUSTED:Quota is exhausted for: requestcount"}
        assert [world.get("v3").status_code for _ in range(10)] == [200] * 10
    finally:
        world.cli("delete", text)


WHITELIST_FILES = ("whitelist-handler.yaml", "appversion-instance.yaml", "checkversion-rule.yaml")


def test_the_docs_whitelist_and_blacklist(world):
    """telemetry-security.md §11 (behaviour 56), the docs' three files as written: v3 gets 404
    ``NOT_FOUND:whitelist.listchecker.default:v3 is not whitelisted``, v2 passes; replaced by a
    blacklist with ``overrides: ["v3"]``, v3 gets 403 ``… v3 is blacklisted``."""
    text = "\n---\n".join((FIXTURES / f).read_text() for f in WHITELIST_FILES)
    world.cli("create", text)
    try:
        _until(lambda: world.get("v3").status_code == 404, 10, "v3 not whitelisted")
        r = world.get("v3")
        assert r.text == "NOT_FOUND:whitelist.listchecker.default:v3 is not whitelisted"
        assert [world.get("v2").status_code for _ in range(5)] == [200] * 5
        black = (FIXTURES / "whitelist-handler.yaml").read_text().replace(
            '["v1", "v2"]', '["v3"]').replace("blacklist: false", "blacklist: true")
        world.cli("replace", black)
        _until(lambda: world.get("v3").status_code == 403, 10, "v3 blacklisted")
        assert world.get("v3").text == (
            "PERMISSION_DENIED:whitelist.listchecker.default:v3 is blacklisted")
        assert world.get("v2").status_code == 200
    finally:
        world.cli("delete", text)
    _until(lambda: world.get("v3").status_code == 200, 10, "v3 allowed again")


def test_new_telemetry_metrics_on_42422_and_logs_on_mixers_stdout(world):
    """telemetry-security.md §2 (behaviours 14, 16, 23): the docs' ``new_telemetry.yaml`` as
    written; reviews v2 → ratings, reported by the ratings sidecar, counted twice in
    ``istio_double_request_count`` on the Mixer's Prometheus port (promtool accepts the page),
    and one ``newlog`` JSON line per request on the Mixer's stdout."""
    import re
    import subprocess as sp

    from e2e_harness import require_tool

    text = (FIXTURES / "new_telemetry.yaml").read_text()
    world.cli("create", text)
    url = f"http://{MIXER}:42422/metrics"
    sample = re.compile(r'^istio_double_request_count_total\{([^}]*)\} ([0-9.e+]+)$', re.M)

    def doubled() -> float:
        for labels, value in sample.findall(httpx.get(url, timeout=5).text):
            if ('destination="ratings.default.svc.cluster.local"' in labels
                    and 'source="reviews.default.svc.cluster.local"' in labels
                    and 'message="twice the fun!"' in labels):
                return float(value)
        return 0.0

    try:
        time.sleep(1.5)  # the config reaches Mixer; earlier reports are not counted twice
        before = doubled()
        for _ in range(5):
            assert world.get("v2").status_code == 200
        _until(lambda: doubled() >= before + 10, 10, "ten more in istio_double_request_count")
        time.sleep(1.5)  # one more report interval: nothing beyond the five requests
        assert doubled() == before + 10
        page = httpx.get(url, timeout=5)
        assert page.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert "# TYPE istio_double_request_count_total counter" in page.text \
            or "# TYPE istio_double_request_count counter" in page.text
        out = sp.run([require_tool("promtool"), "check", "metrics"], input=page.text,
                     capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stdout + out.stderr
        lines = [json.loads(line) for line in
                 world.procs["mixer"].log_path.read_text().splitlines()
                 if '"instance":"newlog.logentry.istio-system"' in line]
        assert len(lines) >= 5
        last = lines[-1]
        assert list(last)[:3] == ["level", "ts", "instance"] and last["level"] == "warn"
        assert last["destination"] == "ratings" and last["source"] == "reviews"
        assert last["responseCode"] == 200 and last["user"] == "unknown"
        assert re.fullmatch(r"[0-9.]+(ns|µs|ms|s)", last["latency"]), last
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", last["ts"]), last
    finally:
        world.cli("delete", text)


def test_mixer_killed_fails_open_and_resumes(world):
    world.cli("create", DENY_LABEL)
    try:
        _until(lambda: world.get("v3").status_code == 403, 10, "v3 denied")
        world.procs["mixer"].kill9()
        # the cached denial keeps answering (denier: valid 5 s) ...
        assert world.get("v3").status_code == 403
        assert world.get("v2").status_code == 200
        # ... then the uncached check fails open (the default)
        _until(lambda: world.get("v3").status_code == 200, 10, "v3 fails open")
        world.start_mixer()
        _until(lambda: world.get("v3").status_code == 403, 10, "Mixer back: v3 denied")
    finally:
        world.cli("delete", DENY_LABEL)


def test_the_controls_mixer_child_answers(tmp_path):
    import socket

    from trimesh.mixer import FrameReader, encode_frame
    address = f"{BLOCK}.30"
    cport, mport = free_port(address), free_port(address)
    p = spawn("control-with-mixer", trimesh_command() + [
        "run", "control", "--state-dir", str(tmp_path / "state"), "--address", address,
        "--config-port", str(cport), "--no-gossip", "--mixer-port", str(mport)], tmp_path)
    try:
        wait_until(lambda: _log_has(p, "control ready"), READY, "the control", p)

        def listening():
            try:
                socket.create_connection((address, mport), timeout=1).close()
                return True
            except OSError:
                return False

        wait_until(listening, READY, "the control's mixer port", p)
        with socket.create_connection((address, mport), timeout=5) as s:
            s.sendall(encode_frame({"op": "check", "attrs": {}}))
            reader = FrameReader()
            answer = None
            while answer is None:
                reader.feed(s.recv(65536))
                answer = reader.next()
        assert answer["result"][0] == 0 and "rev" in answer
        # the Mixer child's Prometheus port (42422 by default): a page, empty of istio_ metrics
        metrics = httpx.get(f"http://{address}:42422/metrics", timeout=5)
        assert metrics.status_code == 200 and "istio_" not in metrics.text
        assert httpx.get(f"http://{address}:42422/other", timeout=5).status_code == 404
    finally:
        p.stop()
