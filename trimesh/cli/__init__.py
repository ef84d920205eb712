"""The ``trimesh`` command: argument wiring only, no logic."""

from ._main import main as main
