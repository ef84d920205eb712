"""Run BookInfo reviews v1, v2 and v3: ``python -m trimesh.samples.bookinfo.reviews --help``."""

import sys

from ._reviews import main

if __name__ == "__main__":
    sys.exit(main())
