"""Runnable examples from a checkout: the embedding examples (``examples/embedding``) and thin
launchers for the sample workloads, which ship in the package as :mod:`trimesh.samples`
(``python -m examples.bookinfo.productpage`` runs ``python -m trimesh.samples.bookinfo.productpage``).
"""
