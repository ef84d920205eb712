"""Launcher kept for checkouts: runs ``python -m trimesh.samples.sleep`` (the sample ships in the package)."""

import runpy

runpy.run_module("trimesh.samples.sleep", run_name="__main__", alter_sys=True)
