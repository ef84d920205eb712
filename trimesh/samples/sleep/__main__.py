"""``python -m trimesh.samples.sleep``."""

import sys

from ._sleep import main

sys.exit(main())
