"""Run BookInfo productpage v1: ``python -m trimesh.samples.bookinfo.productpage --help``."""

import sys

from ._productpage import main

if __name__ == "__main__":
    sys.exit(main())
