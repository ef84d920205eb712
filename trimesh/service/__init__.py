"""Control-plane HTTP/1.1 on h11: the one small server (and client) helper behind the config API,
the sidecar's admin port, the test kit's fake upstreams and, later, the CA, Mixer and service graph.

The data plane (``trimesh.proxy``) is a different codec on purpose (httptools, for speed); see
docs/design-notes.md and the theory of operation in ``_http.py``.
"""

from ._http import BODY_TIMEOUT as BODY_TIMEOUT
from ._http import DRAIN_TIMEOUT as DRAIN_TIMEOUT
from ._http import HEADER_TIMEOUT as HEADER_TIMEOUT
from ._http import IDLE_TIMEOUT as IDLE_TIMEOUT
from ._http import MAX_BODY as MAX_BODY
from ._http import MAX_HEAD as MAX_HEAD
from ._http import ClientResponse as ClientResponse
from ._http import HTTPError as HTTPError
from ._http import HttpService as HttpService
from ._http import Request as Request
from ._http import Response as Response
from ._http import Takeover as Takeover
from ._http import http_request as http_request
from ._http import json_error as json_error
from ._http import json_response as json_response
from ._http import serve_http as serve_http
from ._http import text_error as text_error
from ._http import text_response as text_response
