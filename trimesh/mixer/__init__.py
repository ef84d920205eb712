"""Mixer: the attribute vocabulary and expression language, check / quota / report, the adapters,
the Trio service and the sidecar-side client. The decision cores (expressions, adapters, the status
table) are PURE: values and ``now`` in, results out.
"""

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

__all__ = [
    # adapters, check results and the rpc status table
    "Denier", "EntryList", "ListChecker", "MemQuotaHandler", "QuotaArgs", "parse_list",
    "DEFAULT_HTTP_STATUS", "DEFAULT_VALID_DURATION", "DEFAULT_VALID_USE_COUNT", "FLAG_DENIED",
    "FLAG_RATE_LIMITED", "HTTP_STATUS_BY_CODE", "QUOTA_EXHAUSTED_PREFIX", "REPLY_CONTENT_TYPE",
    "CheckResult", "MixerReply", "RpcCode", "code_name", "http_status", "quota_exhausted",
    "unavailable",
]
