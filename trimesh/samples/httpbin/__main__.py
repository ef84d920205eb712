"""``python -m trimesh.samples.httpbin --help``."""

import sys

from ._app import main

sys.exit(main())
