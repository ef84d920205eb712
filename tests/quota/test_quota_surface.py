"""The public surface of trimesh.quota, and its purity (no I/O, clock or global randomness)."""

from __future__ import annotations

import ast
import pathlib

import trimesh.quota as quota

FORBIDDEN = {"trio", "socket", "ssl", "time", "random", "asyncio", "threading", "os"}


def test_exports_come_from_the_package():
    assert {"MemQuota", "RollingWindow", "QuotaResult", "fallback_share"} <= set(quota.__all__)
    for name in quota.__all__:
        obj = getattr(quota, name)
        assert getattr(obj, "__module__", "trimesh.quota").startswith("trimesh.quota"), name


def test_quota_modules_import_nothing_impure():
    for path in pathlib.Path(quota.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for n in names:
                assert n.split(".")[0] not in FORBIDDEN, f"{path.name} imports {n}"
