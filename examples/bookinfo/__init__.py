"""Launchers for ``python -m examples.bookinfo.SERVICE`` (the samples are trimesh.samples.bookinfo)."""
