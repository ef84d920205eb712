"""Embedding trimesh in a Python app: a Trio app using ``trimesh.open_mesh`` and a plain
synchronous script using ``trimesh.start_in_thread`` + ``HTTP_PROXY`` (docs/embedding.md)."""
