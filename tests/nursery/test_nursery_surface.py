"""The package's public surface, and the purity of its decision modules."""

import ast
import pathlib

import pytest

import trimesh.nursery

PUBLIC = {
    "Action", "ChildSpec", "ChildStartError", "ChildState", "ChildStatistics", "DECISIONS",
    "DEFAULT_MAX_RESTARTS", "DEFAULT_RESTART_WINDOW", "DEFAULT_SHUTDOWN_TIMEOUT", "Decision",
    "ExitKind", "RestartIntensityError", "RestartPolicy", "RestartTracker",
    "RestartTrackerStatistics", "Supervisor", "SupervisorError", "SupervisorPhase",
    "SupervisorStatistics", "dependents_of", "open_supervisor", "serve_supervisor", "start_order",
    "stop_requested", "wait_stop_requested",
    "AppProcess", "DEFAULT_APP_STOP_TIMEOUT", "local_no_proxy", "serve_signals",
    "cancel_on_stop",
    "GroupPopen", "KILL_TIMEOUT", "StopStep", "child_pids", "describe_exit", "exit_status",
    "group_alive", "group_members", "log_tail", "signal_group", "spawn_logged", "stop_processes",
    "stop_steps", "ProcessGroup", "pid_runs", "read_cmdline",
}

FORBIDDEN = {"trio", "socket", "ssl", "time", "random", "asyncio", "anyio"}


def test_public_surface():
    exported = {n for n in vars(trimesh.nursery) if not n.startswith("_")}
    assert exported == PUBLIC
    for name in PUBLIC:
        obj = getattr(trimesh.nursery, name)
        module = getattr(obj, "__module__", None)
        if module and module.startswith("trimesh.nursery"):
            assert module.split(".")[-1].startswith("_"), f"{name} lives in a public module"


@pytest.mark.parametrize("module", ["_policy.py", "_spec.py", "_errors.py", "_group.py"])
def test_decision_modules_are_pure(module):
    path = pathlib.Path(trimesh.nursery.__file__).parent / module
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert imported, "the scan found no imports at all"
    assert not imported & FORBIDDEN
