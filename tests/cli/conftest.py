import pytest
from control_harness import ControlProcess


@pytest.fixture(scope="module")
def control(tmp_path_factory):
    """One control process per test module."""
    base = tmp_path_factory.mktemp("control")
    proc = ControlProcess(base / "state", base / "control.log").start()
    try:
        yield proc
    finally:
        assert proc.stop() == 0, proc.log_tail()


@pytest.fixture
def new_control(tmp_path):
    """A control of the test's own (restarts, kill -9); stopped at the end."""
    procs = []

    def start(state_dir=None):
        proc = ControlProcess(state_dir or tmp_path / "state", tmp_path / "control.log").start()
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()
