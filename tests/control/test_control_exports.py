"""The public surface of trimesh.control, and the purity of its decision module."""

import ast
import inspect

import trimesh.control
from trimesh.control import _state

PUBLIC = {
    "ConfigStore", "StoreState", "Change", "WRITE_RULES", "StateDir", "StateError", "StoreIOError",
    "serve_config_api", "handle_api_connection", "serve_control", "default_state_dir",
    "ControlClient", "ControlUnreachableError", "DEFAULT_CONTROL_URL", "DEFAULT_CONFIG_PORT",
    "MAX_REQUEST_BYTES", "key_ref",
}


def test_public_names():
    exported = {n for n in dir(trimesh.control) if not n.startswith("_")}
    assert exported == PUBLIC
    for name in PUBLIC:
        obj = getattr(trimesh.control, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__module__.startswith("trimesh.control._"), name


def test_decisions_are_pure():
    tree = ast.parse(inspect.getsource(_state))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert not imported & {"trio", "socket", "ssl", "time", "random", "os", "pathlib"}
