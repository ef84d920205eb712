"""Launcher package for ``python -m examples.httpbin`` (the sample is trimesh.samples.httpbin)."""
