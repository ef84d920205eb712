"""trimesh: the Istio service mesh rebuilt in Python on Trio.

This module is the public embedding API; everything else lives in subpackages.
"""

__version__ = "0.1.0"
