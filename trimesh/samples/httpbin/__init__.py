"""An httpbin-like service for the Istio docs' ingress, circuit-breaking and mirroring tasks.

Run it: ``python -m trimesh.samples.httpbin --address 127.0.0.8 --port 8000 [--version v1]``. The docs'
rule files for httpbin are next to this module: ``routerules/`` and ``destinationpolicies/``.
"""

from ._app import DEFAULT_PORT as DEFAULT_PORT
from ._app import MAX_DELAY as MAX_DELAY
from ._app import HttpBin as HttpBin
from ._app import title_case as title_case

