"""The sidecar as a real process: restarts visible in /stats, escalation exits non-zero naming the
child, an app calling another service on its first line, and SIGTERM under load loses nothing."""

from __future__ import annotations

import json
import signal
import socket
import sys
import threading
import time

import pytest

from tests.lifecycle.proc import (
    SIDECAR,
    UPSTREAM,
    get,
    start,
    stop,
    wait_port,
    wait_ready,
)

BASE = ["--port", "0", "--proxy-port", "0", "--admin-port", "0", "--control", "none",
        "--access-log", "off"]


def test_a_crashed_child_is_restarted_and_shown_in_stats():
    proc = start(SIDECAR + ["--service", "a", "--app-port", "1", "--address", "127.0.20.1", *BASE],
                 env={"TRIMESH_TEST_CRASH": "health:1:0.3"})
    try:
        m = wait_ready(proc)
        admin = f"http://{m.group(8)}:{m.group(9)}"
        deadline = time.monotonic() + 10
        child = None
        while time.monotonic() < deadline:
            child = json.loads(get(admin + "/stats")[1])["tree"]["children"]["health"]
            if child["restarts"] == 1 and child["state"] == "running":
                break
            time.sleep(0.1)
        assert child["restarts"] == 1 and child["state"] == "running", child
        assert "test crash" in child["last_error"]
        assert get(admin + "/ready")[0] == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        stop(proc)


def test_crashing_past_the_intensity_exits_non_zero_naming_the_child():
    proc = start(SIDECAR + ["--service", "a", "--app-port", "1", "--address", "127.0.20.2", *BASE],
                 env={"TRIMESH_TEST_CRASH": "health:0:0.2"})
    try:
        m = wait_ready(proc)
        admin = f"http://{m.group(8)}:{m.group(9)}"
        lines, failed_at = [], []

        def read_stderr():
            for line in proc.stderr:
                lines.append(line)
                if "failing:" in line and not failed_at:
                    failed_at.append(time.monotonic())  # the supervisor gave up

        reader = threading.Thread(target=read_stderr)
        reader.start()
        polls = []  # (time the request was sent, status or None when refused)
        while proc.poll() is None and len(polls) < 2000:
            sent = time.monotonic()
            try:
                polls.append((sent, get(admin + "/ready", timeout=1)[0]))
            except OSError:
                polls.append((sent, None))
            time.sleep(0.005)
        code = proc.wait(10)
        reader.join(10)
        err = "".join(lines)
        assert code == 1
        assert "child 'health'" in err and "test crash of child 'health'" in err
        assert "over the limit of 3 restarts" in err
        assert any(status == 200 for _, status in polls)  # it was ready between restarts
        # no half-alive sidecar: nothing asked after the supervisor gave up was told "ready"
        assert failed_at
        after = [s for t, s in polls if t > failed_at[0]]
        assert after.count(200) == 0
    finally:
        stop(proc)


@pytest.fixture
def ratings(tmp_path):
    """A real upstream process for service 'ratings' and a registry file naming it."""
    up = start(UPSTREAM + ["--address", "127.0.20.9", "--port", "9080", "--name", "ratings-v1",
                           "--service", "ratings", "--version", "v1", "--no-record"])
    try:
        wait_port("127.0.20.9", 9080)
        reg = tmp_path / "registry.yaml"
        reg.write_text("- {service: ratings, address: 127.0.20.9, port: 9080, "
                       "labels: {version: v1}}\n")
        yield reg
    finally:
        stop(up)


APP = ("import urllib.request, sys\n"
       "r = urllib.request.urlopen('http://ratings:9080/ratings/0', timeout=5)\n"
       "sys.exit(0 if r.status == 200 and r.headers['x-upstream-name'] == 'ratings-v1' else 7)\n")


@pytest.mark.slow
def test_an_app_calling_out_on_its_first_line_succeeds_every_time(ratings):
    failures = []
    for i in range(20):
        proc = start(SIDECAR + ["--service", "productpage", "--app-port", "1",
                                "--address", "127.0.20.3", *BASE, "--registry", str(ratings),
                                "--drain-timeout", "0.2", "--", sys.executable, "-c", APP])
        try:
            _, err = proc.communicate(timeout=30)
            if proc.returncode != 0:
                failures.append((i, proc.returncode, err[-500:]))
        finally:
            stop(proc)
    assert failures == []


def _complete_200(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep or not head.startswith(b"HTTP/1.1 200"):
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) == int(value)
    return False


def _client(addr, stop_at, results, lock):
    """One request per fresh connection, steady pace; a request counts as started once its
    bytes were sent, and as failed if it then gets anything but a full 200."""
    while time.monotonic() < stop_at:
        t0 = time.monotonic()
        try:
            s = socket.create_connection(addr, timeout=5)
        except OSError:
            with lock:
                results["refused"] += 1
            time.sleep(0.01)
            continue
        try:
            s.sendall(b"GET /x HTTP/1.1\r\nHost: reviews:9080\r\nx-upstream-delay: 0.05\r\n"
                      b"connection: close\r\n\r\n")
        except OSError:
            with lock:
                results["unsent"] += 1
            s.close()
            continue
        data = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError:
            pass
        s.close()
        with lock:
            if _complete_200(data):
                results["ok"] += 1
            else:
                results["failed"].append(data[:200])
        time.sleep(max(0.0, 0.04 - (time.monotonic() - t0)))


def test_sigterm_under_load_fails_no_started_request():
    app = start(UPSTREAM + ["--address", "127.0.20.5", "--port", "9080", "--name", "reviews-app",
                            "--no-record"])
    proc = None
    try:
        wait_port("127.0.20.5", 9080)
        proc = start(SIDECAR + ["--service", "reviews", "--app-port", "9080", "--app-address",
                                "127.0.20.5", "--address", "127.0.20.6", *BASE,
                                "--drain-timeout", "3"])
        m = wait_ready(proc)
        inbound = (m.group(2), int(m.group(3)))
        results = {"ok": 0, "refused": 0, "unsent": 0, "failed": []}
        lock = threading.Lock()
        stop_at = time.monotonic() + 2.0
        # 8 clients x ~20 req/s each (50 ms upstream delay): ~160-200 requests/s
        threads = [threading.Thread(target=_client, args=(inbound, stop_at, results, lock))
                   for _ in range(8)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        ok_before = results["ok"]
        proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(10)
        assert proc.wait(10) == 0
        assert ok_before > 50, results
        assert results["failed"] == [], results
        assert results["refused"] > 0  # new connections were refused after SIGTERM
    finally:
        if proc is not None:
            stop(proc)
        stop(app)


def test_a_port_in_use_is_a_one_line_user_error():
    busy = socket.socket()
    busy.bind(("127.0.20.7", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        proc = start(SIDECAR + ["--service", "a", "--app-port", "1", "--address", "127.0.20.7",
                                "--port", str(port), "--proxy-port", "0", "--admin-port", "0",
                                "--control", "none"])
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 1
        last = err.strip().splitlines()[-1]
        assert last == f"Error: sidecar a: [Errno 98] inbound listener 127.0.20.7:{port}: " \
                       "Address already in use"
    finally:
        busy.close()
