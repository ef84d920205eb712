"""Mixer: the attribute vocabulary and expression language, check / quota / report, the adapters,
the Trio service and the sidecar-side client. The decision cores (expressions, adapters, the status
table) are PURE: values and ``now`` in, results out.
"""

# --- attributes and the expression language (PURE) ----------------------------------------------
from ._attributes import MISSING as MISSING
from ._attributes import VOCABULARY as VOCABULARY
from ._attributes import Bag as Bag
from ._attributes import Manifest as Manifest
from ._attributes import ValueType as ValueType
from ._expr import Compiler as Compiler
from ._expr import EvaluationError as EvaluationError
from ._expr import Expression as Expression
from ._expr import compile_expression as compile_expression
from ._expr import parse_go_duration as parse_go_duration
from ._expr import parse_timestamp as parse_timestamp
from ._expr_config import check_config_expression as check_config_expression
from ._expr_parse import ExpressionError as ExpressionError
from ._expr_parse import format_expression as format_expression
from ._expr_parse import parse_expression as parse_expression
# (importing _expr_config installs the checker: config validation type-checks expressions)
# --- end of attributes and the expression language ----------------------------------------------

# --- adapters, check results and the rpc status table (quota helper) ---
from ._adapters import Denier as Denier
from ._adapters import EntryList as EntryList
from ._adapters import ListChecker as ListChecker
from ._adapters import MemQuotaHandler as MemQuotaHandler
from ._adapters import QuotaArgs as QuotaArgs
from ._adapters import parse_list as parse_list
from ._status import DEFAULT_HTTP_STATUS as DEFAULT_HTTP_STATUS
from ._status import DEFAULT_VALID_DURATION as DEFAULT_VALID_DURATION
from ._status import DEFAULT_VALID_USE_COUNT as DEFAULT_VALID_USE_COUNT
from ._status import FLAG_DENIED as FLAG_DENIED
from ._status import FLAG_RATE_LIMITED as FLAG_RATE_LIMITED
from ._status import HTTP_STATUS_BY_CODE as HTTP_STATUS_BY_CODE
from ._status import QUOTA_EXHAUSTED_PREFIX as QUOTA_EXHAUSTED_PREFIX
from ._status import REPLY_CONTENT_TYPE as REPLY_CONTENT_TYPE
from ._status import CheckResult as CheckResult
from ._status import MixerReply as MixerReply
from ._status import RpcCode as RpcCode
from ._status import code_name as code_name
from ._status import http_status as http_status
from ._status import quota_exhausted as quota_exhausted
from ._status import unavailable as unavailable

# --- end of the adapters block ---

# --- the config at run time, the service, the wire and the sidecar-side client (mixerrt) ---
from ._client import CALL_TIMEOUT as CALL_TIMEOUT
from ._client import RETRY_AFTER as RETRY_AFTER
from ._client import SOURCE_HEADER as SOURCE_HEADER
from ._client import MixerClient as MixerClient
from ._client import MixerUnavailable as MixerUnavailable
from ._client import PolicyCheck as PolicyCheck
from ._client import parse_source_header as parse_source_header
from ._client import source_header_value as source_header_value
from ._report import REPORT_INTERVAL as REPORT_INTERVAL
from ._report import REPORT_QUEUE as REPORT_QUEUE
from ._report import Reporter as Reporter
from ._report import ReportingLog as ReportingLog
from ._runtime import GLOBAL_NAMESPACE as GLOBAL_NAMESPACE
from ._runtime import Decision as Decision
from ._runtime import MixerConfig as MixerConfig
from ._runtime import destination_namespace as destination_namespace
from ._service import DEFAULT_MIXER_PORT as DEFAULT_MIXER_PORT
from ._service import IDLE_TIMEOUT as IDLE_TIMEOUT
from ._service import MixerService as MixerService
from ._service import serve_mixer as serve_mixer
from ._wire import MAX_FRAME as MAX_FRAME
from ._wire import FrameReader as FrameReader
from ._wire import encode_frame as encode_frame
from ._wire import status_from_wire as status_from_wire
from ._wire import status_to_wire as status_to_wire
# --- end of the run-time block ---

__all__ = [
    # attributes and the expression language
    "MISSING", "VOCABULARY", "Bag", "Manifest", "ValueType", "Compiler", "EvaluationError",
    "Expression", "compile_expression", "parse_go_duration", "parse_timestamp",
    "check_config_expression", "ExpressionError", "format_expression", "parse_expression",
    # adapters, check results and the rpc status table
    "Denier", "EntryList", "ListChecker", "MemQuotaHandler", "QuotaArgs", "parse_list",
    "DEFAULT_HTTP_STATUS", "DEFAULT_VALID_DURATION", "DEFAULT_VALID_USE_COUNT", "FLAG_DENIED",
    "FLAG_RATE_LIMITED", "HTTP_STATUS_BY_CODE", "QUOTA_EXHAUSTED_PREFIX", "REPLY_CONTENT_TYPE",
    "CheckResult", "MixerReply", "RpcCode", "code_name", "http_status", "quota_exhausted",
    "unavailable",
    # the config at run time, the service, the wire, the client
    "CALL_TIMEOUT", "RETRY_AFTER", "SOURCE_HEADER", "MixerClient", "MixerUnavailable",
    "PolicyCheck", "parse_source_header", "source_header_value", "REPORT_INTERVAL", "REPORT_QUEUE",
    "Reporter", "ReportingLog", "GLOBAL_NAMESPACE", "Decision",
    "MixerConfig", "destination_namespace", "DEFAULT_MIXER_PORT", "IDLE_TIMEOUT", "MixerService",
    "serve_mixer", "MAX_FRAME", "FrameReader", "encode_frame", "status_from_wire",
    "status_to_wire",
]
