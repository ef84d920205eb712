"""Run BookInfo ratings v1: ``python -m trimesh.samples.bookinfo.ratings --help``."""

import sys

from ._ratings import main

if __name__ == "__main__":
    sys.exit(main())
