"""The data plane (Trio): HTTP/1.1 codec on httptools, a thin socket layer, upstream pools, the
listener shell, the request pipeline with its two sides (outbound, inbound), and the TCP relay
(CONNECT tunnels, plain TCP listeners). docs/http.md
describes the codec's rules, docs/pipeline.md the stages."""

from ._body import ATTEMPTS_HEADER as ATTEMPTS_HEADER
from ._exchange import Exchange as Exchange
from ._exchange import split_target as split_target
from ._http1 import HEADER_READ_TIMEOUT as HEADER_READ_TIMEOUT
from ._http1 import MAX_HEADER_BYTES as MAX_HEADER_BYTES
from ._http1 import MAX_HEADERS as MAX_HEADERS
from ._http1 import HTTPError as HTTPError
from ._http1 import RequestHead as RequestHead
from ._http1 import RequestParser as RequestParser
from ._http1 import ResponseHead as ResponseHead
from ._http1 import ResponseParser as ResponseParser
from ._http1 import forwardable_headers as forwardable_headers
from ._http1 import reason_phrase as reason_phrase
from ._h2 import PREFACE as PREFACE
from ._inbound import InboundProxy as InboundProxy
from ._ingress import IngressProxy as IngressProxy
from ._io import FastStream as FastStream
from ._outbound import OutboundProxy as OutboundProxy
from ._outbound import shadow_authority as shadow_authority
from ._pipeline import OUTCOMES as OUTCOMES
from ._pipeline import RETRY_BUFFER_LIMIT as RETRY_BUFFER_LIMIT
from ._pipeline import Pipeline as Pipeline
from ._pool import UpstreamPool as UpstreamPool
from ._replies import FLAGS_HEADER as FLAGS_HEADER
from ._replies import grpc_status_for_http as grpc_status_for_http
from ._replies import render_reply as render_reply
from ._server import Http1Answers as Http1Answers
from ._server import HttpServer as HttpServer
from ._tcp import TCP_CONNECT_TRIES as TCP_CONNECT_TRIES
from ._tcp import TCP_IDLE_TIMEOUT as TCP_IDLE_TIMEOUT
from ._tcp import RelayStats as RelayStats
from ._tcp import TcpProxy as TcpProxy
from ._tcp import TcpServer as TcpServer
from ._tcp import relay as relay
from ._tls import TlsStream as TlsStream
from ._tls import MeshTls as MeshTls
from ._tls import Peer as Peer
from ._tls import client_context as client_context
from ._tls import edge_context as edge_context
from ._tls import tls_handshake as tls_handshake
from ._tls import peer_identity as peer_identity
from ._tls import server_context as server_context
