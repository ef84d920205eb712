"""Run BookInfo details v1: ``python -m trimesh.samples.bookinfo.details --help``."""

import sys

from ._details import main

if __name__ == "__main__":
    sys.exit(main())
