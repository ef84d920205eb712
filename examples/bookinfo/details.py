"""Launcher kept for checkouts: runs ``python -m trimesh.samples.bookinfo.details`` (the sample ships in the package)."""

import runpy

runpy.run_module("trimesh.samples.bookinfo.details", run_name="__main__", alter_sys=True)
