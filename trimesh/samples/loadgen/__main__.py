"""``python -m trimesh.samples.loadgen --help``."""

import sys

from ._load import main

sys.exit(main())
