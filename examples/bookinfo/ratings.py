"""Launcher kept for checkouts: runs ``python -m trimesh.samples.bookinfo.ratings`` (the sample ships in the package)."""

import runpy

runpy.run_module("trimesh.samples.bookinfo.ratings", run_name="__main__", alter_sys=True)
