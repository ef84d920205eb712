"""Launcher kept for checkouts: runs ``python -m trimesh.samples.loadgen`` (the sample ships in the package)."""

import runpy

runpy.run_module("trimesh.samples.loadgen", run_name="__main__", alter_sys=True)
