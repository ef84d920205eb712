"""The public surface of trimesh.control, and the purity of its decision module."""

import ast
import inspect

import trimesh.control
import pytest

from trimesh.control import _etcd_wire, _publish, _state

PUBLIC = {
    "ConfigStore", "StoreState", "Change", "WRITE_RULES", "StateDir", "StateError", "StoreIOError",
    "serve_config_api", "handle_api_connection", "serve_control", "default_state_dir",
    "ControlClient", "ControlUnreachableError", "DEFAULT_CONTROL_URL", "DEFAULT_CONFIG_PORT",
    "MAX_REQUEST_BYTES", "key_ref",
    # membership: static instances, the mesh key, publishing into gossip
    "Mesh", "InstanceStore", "Registration", "parse_registration", "MESH_KEY_FILE", "MeshKeyError",
    "Publisher", "load_or_create_mesh_key", "member_rows", "mesh_key_path", "read_mesh_key",
    "default_mesh_key_file", "Plan", "Put", "plan_publication",
    # the etcd store (--store etcd://...)
    "EtcdStore", "EtcdClient", "EtcdUnavailableError", "EtcdTarget", "parse_store_url",
    "open_etcd_store", "open_config_store",
}


def test_public_names():
    exported = {n for n in dir(trimesh.control) if not n.startswith("_")}
    assert exported == PUBLIC
    for name in PUBLIC:
        obj = getattr(trimesh.control, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__module__.startswith("trimesh.control._"), name


@pytest.mark.parametrize("module", [_state, _publish, _etcd_wire])
def test_decisions_are_pure(module):
    tree = ast.parse(inspect.getsource(module))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert not imported & {"trio", "socket", "ssl", "time", "random", "os", "pathlib"}
