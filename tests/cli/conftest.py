import pytest
from control_harness import ControlProcess

PROCESS_FIXTURES = {"control", "new_control"}  # each starts a real `trimesh run control`


def pytest_collection_modifyitems(items):
    """Tests here that use a real control process are ``e2e`` (the others run in process)."""
    for item in items:
        if "/cli/" in str(item.fspath) and PROCESS_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.e2e)


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
