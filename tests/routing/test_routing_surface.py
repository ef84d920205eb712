"""The public surface of trimesh.routing, and its purity (no I/O, clock or global randomness)."""

from __future__ import annotations

import ast
import pathlib

import trimesh.routing as routing

CONTRACT = {"compile_routes", "RouteTable", "RequestInfo", "SourceIdentity", "Forward", "Redirect",
            "Reject", "RetryPolicy", "make_balancer"}
FORBIDDEN = {"trio", "socket", "ssl", "time", "random", "asyncio", "threading", "os"}


def test_contract_names_are_exported():
    assert CONTRACT <= set(routing.__all__)
    for name in routing.__all__:
        obj = getattr(routing, name)
        assert getattr(obj, "__module__", "trimesh.routing").startswith("trimesh.routing"), name


def test_routing_modules_import_nothing_impure():
    pkg = pathlib.Path(routing.__file__).parent
    for path in pkg.glob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for n in names:
                assert n.split(".")[0] not in FORBIDDEN, f"{path.name} imports {n}"
