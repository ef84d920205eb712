"""Run BookInfo ratings v1: ``python -m examples.bookinfo.ratings --help``."""

import sys

from ._ratings import main

if __name__ == "__main__":
    sys.exit(main())
