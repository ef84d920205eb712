"""The data plane (Trio): HTTP/1.1 codec on httptools, a thin socket layer, upstream pools, the
listener shell and the outbound/inbound handlers. docs/http.md describes the codec's rules."""

from ._access import AccessLog as AccessLog
from ._forward import ATTEMPTS_HEADER as ATTEMPTS_HEADER
from ._forward import FLAGS_HEADER as FLAGS_HEADER
from ._forward import RETRY_BUFFER_LIMIT as RETRY_BUFFER_LIMIT
from ._forward import InboundProxy as InboundProxy
from ._forward import OutboundProxy as OutboundProxy
from ._forward import shadow_authority as shadow_authority
from ._forward import split_target as split_target
from ._http1 import HEADER_READ_TIMEOUT as HEADER_READ_TIMEOUT
from ._http1 import MAX_HEADER_BYTES as MAX_HEADER_BYTES
from ._http1 import MAX_HEADERS as MAX_HEADERS
from ._http1 import HTTPError as HTTPError
from ._http1 import RequestHead as RequestHead
from ._http1 import RequestParser as RequestParser
from ._http1 import ResponseHead as ResponseHead
from ._http1 import ResponseParser as ResponseParser
from ._http1 import forwardable_headers as forwardable_headers
from ._io import FastStream as FastStream
from ._pool import UpstreamPool as UpstreamPool
from ._server import HttpServer as HttpServer
