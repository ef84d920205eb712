"""`trimesh run sidecar` as a real process: ready line, admin, SIGTERM, errors, the app child."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request

import pytest

from tests.lifecycle.proc import SIDECAR as CMD, start, stop as _stop
from tests.lifecycle.proc import wait_ready as _wait_ready

pytestmark = pytest.mark.e2e  # real processes on loopback


def _start(*args):
    return start(CMD + list(args))


def test_ready_line_admin_and_sigterm_exit_0():
    proc = _start("--service", "reviews", "--version", "v1", "--port", "0", "--app-port", "19080",
                  "--address", "127.0.8.60", "--proxy-port", "0", "--admin-port", "0",
                  "--control", "none", "--drain-timeout", "1")
    try:
        m = _wait_ready(proc)
        assert m.group(1) == "reviews-v1" and m.group(2) == "127.0.8.60"
        assert (m.group(4), m.group(5)) == ("127.0.0.1", "19080")
        admin = f"http://{m.group(8)}:{m.group(9)}"
        with urllib.request.urlopen(admin + "/ready", timeout=5) as r:
            assert r.status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        _stop(proc)


def test_bad_registry_is_a_user_error(tmp_path):
    reg = tmp_path / "reg.yaml"
    reg.write_text("- {service: a, address: 10.0.0.1, port: 99999}\n")
    proc = _start("--service", "a", "--port", "0", "--app-port", "1", "--address", "127.0.8.61",
                  "--proxy-port", "0", "--admin-port", "0", "--control", "none",
                  "--registry", str(reg))
    try:
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 1
        assert "reg.yaml" in err and "$[0].port" in err
    finally:
        _stop(proc)


def test_usage_error_exit_2():
    proc = _start("--port", "1", "--app-port", "1")
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 2 and "--service" in err


def test_app_child_gets_http_proxy_and_its_status(tmp_path):
    out = tmp_path / "proxy.txt"
    app = f"import os; open({str(out)!r}, 'w').write(os.environ['HTTP_PROXY']); raise SystemExit(3)"
    proc = _start("--service", "a", "--port", "0", "--app-port", "1", "--address", "127.0.8.62",
                  "--proxy-port", "0", "--admin-port", "0", "--control", "none",
                  "--drain-timeout", "0.5", "--", sys.executable, "-c", app)
    try:
        m = _wait_ready(proc)
        assert proc.wait(20) == 3
        assert out.read_text() == f"http://{m.group(6)}:{m.group(7)}"
    finally:
        _stop(proc)


@pytest.mark.parametrize("flag", ["--help"])
def test_help_lists_the_contract_flags(flag):
    res = subprocess.run(CMD + [flag], capture_output=True, text=True, timeout=20)
    for name in ("--service", "-n, --namespace", "--version", "--label", "--service-account",
                 "--port", "--protocol", "--app-port", "--app-address", "--address",
                 "--proxy-port", "--admin-port", "--gossip-port", "--join", "--control",
                 "--registry", "--config", "--drain-timeout"):
        assert name in res.stdout, name


def test_sigterm_is_forwarded_to_the_app(tmp_path):
    marker = tmp_path / "got-term"
    app = ("import signal, sys, time\n"
           f"def bye(*a):\n    open({str(marker)!r}, 'w').write('term'); sys.exit(0)\n"
           "signal.signal(signal.SIGTERM, bye)\n"
           "print('app up', flush=True)\n"
           "time.sleep(30)\n")
    proc = _start("--service", "a", "--port", "0", "--app-port", "1", "--address", "127.0.8.63",
                  "--proxy-port", "0", "--admin-port", "0", "--control", "none",
                  "--drain-timeout", "0.5", "--", sys.executable, "-c", app)
    try:
        _wait_ready(proc)
        assert proc.stdout.readline().strip() == "app up"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert marker.read_text() == "term"
    finally:
        _stop(proc)
