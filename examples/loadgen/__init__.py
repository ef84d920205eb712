"""Launcher package for ``python -m examples.loadgen`` (the sample is trimesh.samples.loadgen)."""
