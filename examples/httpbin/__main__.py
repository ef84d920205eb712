"""Launcher kept for checkouts: runs ``python -m trimesh.samples.httpbin`` (the sample ships in the package)."""

import runpy

runpy.run_module("trimesh.samples.httpbin", run_name="__main__", alter_sys=True)
