"""Every package's curated public surface (STYLE.md habit 2): its ``__init__.py`` only re-exports
names from its own private modules (``from ._x import Name as Name``, or ``*`` from a module with
``__all__``), every public name it ends up with is defined in the package, and the packages whose
surface no other test pins (tests/control, tests/nursery, tests/routing, tests/proxy and
tests/service pin theirs) are pinned here: a change to them is a deliberate edit of this file."""

from __future__ import annotations

import ast
import importlib
import inspect
import types
from pathlib import Path

import pytest

import trimesh

ROOT = Path(__file__).resolve().parents[1] / "trimesh"
PACKAGES = sorted("trimesh." + ".".join(p.parent.relative_to(ROOT).parts)
                  for p in ROOT.rglob("__init__.py") if p.parent != ROOT)

PINNED = {
    "trimesh.cli": {"main"},
    "trimesh.testing": {"FakeUpstream", "SimCluster", "SimNetwork", "TrioSimNet", "serve_upstream"},
    "trimesh.discovery": {
        "ALIVE", "SUSPECT", "DEAD", "LEFT", "BroadcastQueue", "ConfigEntry", "ConfigEvent",
        "DEFAULT_PORT", "GossipAgent", "GossipConfig", "INSTANCE_KIND", "Keyring", "KeyringError",
        "MAX_INCARNATION", "Member", "MemberEvent", "Notify", "PROFILES", "PROTOCOL_VERSION",
        "Schedule", "Send", "Stream", "SwimNode", "WireCodec", "gossip_profile", "parse_addr",
        "serve_discovery"},
    "trimesh.sidecar": {
        "AdminApp", "COALESCE_INTERVAL", "CertOptions", "install_cert_agent", "ControlSource", "DEFAULT_ADMIN_PORT",
        "DEFAULT_CONTROL_URL", "DEFAULT_DRAIN_TIMEOUT", "DEFAULT_PROXY_PORT", "FileSource",
        "GossipOptions", "GossipSource", "HEALTH_INTERVAL", "HEALTH_PATH", "HEALTH_TIMEOUT",
        "HealthCheckConfig", "HealthChecker", "JOIN_WAIT", "OWN_INSTANCE_POLL",
        "SIDECAR_INTENSITY", "Sidecar", "SidecarConfig", "app_environment", "install_gossip",
        "load_registry_text", "member_name", "serve_health_checker", "serve_sidecar",
        "DEFAULT_INGRESS_PORT", "DEFAULT_INGRESS_TLS_PORT", "IngressOptions", "install_ingress",
        "MixerOptions", "install_mixer"},
    "trimesh.demo": {
        "CONTROL_PORT", "ClientWorkload", "DEMO_BLOCK", "DemoError", "DemoMesh", "GOSSIP_PORT",
        "GOSSIP_PROFILE", "GossipProgress", "Member", "MeshPlan", "PageLoad", "PageView",
        "Process", "SLEEP", "ScenarioResult", "StopSummary", "Verdict", "check_block",
        "default_control_address", "gossip_progress", "open_demo_mesh", "plan_mesh", "read_page",
        "run_demo", "run_scenarios", "try_commands", "write_rule_files"},
}


def public(module: types.ModuleType) -> set[str]:
    return {n for n, v in vars(module).items()
            if not n.startswith("_") and not isinstance(v, types.ModuleType)} - {"annotations"}


def init_path(package: str) -> Path:
    return ROOT.joinpath(*package.split(".")[1:], "__init__.py")


@pytest.mark.parametrize("package", PACKAGES)
def test_init_only_re_exports_its_private_modules(package):
    tree = ast.parse(init_path(package).read_text(encoding="utf-8"))
    problems = []
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the docstring
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            continue
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == [
                "__all__"]:
            continue
        if not (isinstance(node, ast.ImportFrom) and node.level == 1 and node.module
                and node.module.startswith("_")):
            problems.append(f"line {node.lineno}: not a re-export from a private module")
            continue
        for alias in node.names:
            if alias.name != "*" and alias.asname != alias.name:
                problems.append(f"line {node.lineno}: write `{alias.name} as {alias.name}`")
    assert not problems, f"{init_path(package)}: " + "; ".join(problems)


@pytest.mark.parametrize("package", PACKAGES)
def test_public_names_are_defined_in_the_package(package):
    module = importlib.import_module(package)
    foreign = []
    for name in sorted(public(module)):
        obj = getattr(module, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            if not obj.__module__.startswith(package + "."):
                foreign.append(f"{name} (from {obj.__module__})")
    assert not foreign, f"{package} re-exports names defined elsewhere: {', '.join(foreign)}"
    if hasattr(module, "__all__"):
        assert set(module.__all__) == public(module), f"{package}.__all__ is not its surface"
    for star in _star_modules(package):
        assert hasattr(star, "__all__"), f"{star.__name__} is star-imported: give it __all__"
        assert set(star.__all__) <= public(module)


def _star_modules(package: str) -> list[types.ModuleType]:
    tree = ast.parse(init_path(package).read_text(encoding="utf-8"))
    return [importlib.import_module(f"{package}.{node.module}") for node in tree.body
            if isinstance(node, ast.ImportFrom) and node.level == 1
            and any(a.name == "*" for a in node.names)]


@pytest.mark.parametrize("package", sorted(PINNED))
def test_pinned_surfaces(package):
    assert public(importlib.import_module(package)) == PINNED[package]


def test_every_package_is_pinned_somewhere():
    pinned_elsewhere = {"trimesh.config", "trimesh.control", "trimesh.nursery",
                        "trimesh.routing", "trimesh.proxy", "trimesh.service",
                        "trimesh.telemetry",  # tests/proxy/test_exports.py
                        "trimesh.ca",  # tests/ca/test_ca_surface.py
                        "trimesh.quota",  # tests/quota/test_quota_surface.py
                        "trimesh.mixer",  # tests/mixer (test_expr_surface, test_status)
                        # tests/examples/test_samples_surface.py
                        "trimesh.samples", "trimesh.samples.bookinfo", "trimesh.samples.httpbin",
                        "trimesh.samples.loadgen", "trimesh.samples.sleep"}
    # config: 100+ model names, kept honest by its modules' __all__ (checked above)
    assert set(PACKAGES) <= set(PINNED) | pinned_elsewhere, \
        "a new package: pin its public names here or in its own test"


def test_the_embedding_api_resolves_every_name():
    assert set(trimesh.__all__) == set(dir(trimesh))
    for name in trimesh.__all__:
        assert getattr(trimesh, name) is not None, name
