"""AppProcess (the app under a sidecar), serve_signals, cancel_on_stop, local_no_proxy."""

from __future__ import annotations

import os
import signal
import sys

import pytest
import trio

from trimesh.nursery import (
    AppProcess,
    ChildSpec,
    Supervisor,
    cancel_on_stop,
    local_no_proxy,
    serve_signals,
)

PY = sys.executable


async def test_run_returns_the_exit_status():
    app = AppProcess([PY, "-c", "raise SystemExit(5)"], name="five")
    assert await app.run() == 5
    assert app.returncode == 5 and not app.running
    assert app.statistics()["returncode"] == 5 and "exited 5" in repr(app)


async def test_forwarded_signal_and_stop_without_a_second_sigterm(tmp_path):
    marker = tmp_path / "terms"
    code = ("import signal, sys, time\n"
            f"def bye(n, f):\n    open({str(marker)!r}, 'a').write('T'); sys.exit(3)\n"
            "signal.signal(signal.SIGTERM, bye)\n"
            "print('up', flush=True)\n"
            "time.sleep(30)\n")
    app = AppProcess([PY, "-c", code], stop_timeout=5)
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(app.run)
        assert pid == app.pid and app.running
        await trio.sleep(0.5)  # let it install its handler
        assert app.send_signal(signal.SIGTERM)
        await app.stop()  # already signalled: waits, does not signal again
    assert app.returncode == 3 and marker.read_text() == "T"
    assert app.signals_sent == [signal.SIGTERM] and not app.killed
    assert not app.send_signal(signal.SIGTERM)  # nothing to send to any more


async def test_an_app_ignoring_sigterm_is_killed_after_the_timeout():
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(30)"
    app = AppProcess([PY, "-c", code], stop_timeout=0.5)
    async with trio.open_nursery() as nursery:
        await nursery.start(app.run)
        await trio.sleep(0.5)
        start = trio.current_time()
        await app.stop()
        assert 0.4 < trio.current_time() - start < 5
    assert app.killed and app.returncode == -signal.SIGKILL


async def test_cancelling_run_terminates_the_app():
    app = AppProcess([PY, "-c", "import time; time.sleep(30)"], stop_timeout=5)
    with trio.move_on_after(0.5):
        await app.run()
    assert app.returncode == -signal.SIGTERM and not app.running


def test_empty_command_is_rejected():
    with pytest.raises(ValueError, match="empty command"):
        AppProcess([])


async def test_serve_signals_calls_back():
    seen = []
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_signals, seen.append, (signal.SIGUSR1,))
        os.kill(os.getpid(), signal.SIGUSR1)
        with trio.fail_after(5):
            while not seen:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert seen == [signal.SIGUSR1]


async def test_cancel_on_stop_stops_at_once(autojump_clock):
    log = []

    async def poller(*, task_status=trio.TASK_STATUS_IGNORED):
        task_status.started("value")
        try:
            await trio.sleep_forever()
        finally:
            log.append(trio.current_time())

    sup = Supervisor([ChildSpec("poller", cancel_on_stop(poller), shutdown_timeout=30)])
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.serve)
        assert sup.started_value("poller") == "value"
        stop_at = trio.current_time()
        sup.stop()
    assert log == [stop_at]  # not stop_at + 30: it did not wait for its shutdown_timeout


def test_local_no_proxy():
    assert local_no_proxy(["127.0.0.5", "localhost"], "a.example, ,b") == \
        "a.example,b,localhost,127.0.0.1,::1,127.0.0.5"
