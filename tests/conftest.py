import os
import shutil

import pytest

IN_CI = os.environ.get("CI") == "true"


def require_tool(name: str) -> str:
    """Path of a real tool, or skip (fail under CI=true, where .ci/run installs it)."""
    path = shutil.which(name)
    if path is None:
        if IN_CI:
            pytest.fail(f"{name} is required under CI=true (.ci/run installs it)")
        pytest.skip(f"{name} is not installed")
    return path
