"""Launcher kept for checkouts: runs ``python -m trimesh.samples.bookinfo.reviews`` (the sample ships in the package)."""

import runpy

runpy.run_module("trimesh.samples.bookinfo.reviews", run_name="__main__", alter_sys=True)
