"""``python -m examples.sleep``."""

import sys

from . import main

sys.exit(main())
