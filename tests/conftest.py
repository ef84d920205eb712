import importlib
import os
import shutil

import pytest
from hypothesis import HealthCheck, settings

IN_CI = os.environ.get("CI") == "true"

# Hypothesis' per-example deadline (200 ms) and its too-slow health check measure wall time, which
# a loaded machine stretches: both would fail correct code. Examples stay random (a failure is a
# real counterexample, replayable from the printed blob).
settings.register_profile("trimesh", deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("trimesh")


def skip_or_fail(reason: str) -> None:
    """Skip with ``reason``; under CI=true fail instead: there everything a test needs is
    installed, so a missing piece is a broken build, not a reason to pass quietly."""
    if IN_CI:
        pytest.fail(f"{reason} (a failure under CI=true, not a skip)")
    pytest.skip(reason)


def require_module(name: str):
    """A Python module a test needs as a real peer (grpcio...), or skip (fail under CI=true,
    where .ci/run installs the test extra)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        skip_or_fail(f"Python module {name} is not installed")


def require_tool(name: str) -> str:
    """Path of a real tool, or skip (fail under CI=true, where .ci/run installs it)."""
    path = shutil.which(name)
    if path is None:
        skip_or_fail(f"{name} is not installed")
    return path
