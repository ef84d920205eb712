"""Launcher package for ``python -m examples.sleep`` (the sample is trimesh.samples.sleep)."""
