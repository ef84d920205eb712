"""sleep: a client workload that idles until it is stopped (``python -m trimesh.samples.sleep``);
the theory is in :mod:`._sleep`."""

from ._sleep import main as main
from ._sleep import sleep_until_signalled as sleep_until_signalled
