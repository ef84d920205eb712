"""Mixer's answers and what the caller sees: rpc codes, the HTTP table, the reply bodies.

Mixer speaks ``google.rpc.Status``: a code from ``google.rpc.Code`` (names and numbers in
:data:`trimesh.config.RPC_CODES`) and a message. The sidecar turns a failed check into a local reply
whose HTTP status comes from Istio's proxy table (``istio/proxy`` ``src/envoy/mixer``
``HttpCode()``, "based on the mapping defined by the protobuf http error space";
telemetry-security.md §11.2), with ``content-type: text/plain`` and, as body, the status rendered
the way protobuf's ``Status::ToString()`` does: ``<CODE NAME>:<message>``.

The message itself is built by Mixer's dispatcher (``mixer/pkg/runtime/dispatcher/session.go``):
each failing handler contributes ``<handler fqn>:<adapter message>``, several are joined with
``", "``, and the first failure's code is the result's code; valid duration and use count are the
smallest of all the results. Hence the docs' bodies (telemetry-security.md §11.2, §16.9):

* ``PERMISSION_DENIED:denyreviewsv3handler.denier.default:Not allowed`` → 403;
* ``NOT_FOUND:whitelist.listchecker.default:v3 is not whitelisted`` → 404;
* an empty adapter message leaves the handler and a trailing colon
  (``FAILED_PRECONDITION:handler.denier.default:`` → 400), as that format gives.

An exhausted quota is decided by the proxy, not by a handler (``istio/proxy``
``src/istio/mixerclient/quota_cache.cc``: a quota granted 0 is "rejected"): status
``RESOURCE_EXHAUSTED`` with message ``Quota is exhausted for: <quota names, comma-separated>``, so
the caller gets **429** with body ``RESOURCE_EXHAUSTED:Quota is exhausted for: requestcount`` (the
body users of Istio 0.x quote in rate-limit walkthroughs; the name is the quota as the QuotaSpec
names it).

The access-log response flag is Envoy's: ``UAEX`` (unauthorized by an external service) for a denied
check, ``RL`` (rate limited) for an exhausted quota.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Iterable, NamedTuple

from trimesh.config import RPC_CODES

__all__ = ["RpcCode", "HTTP_STATUS_BY_CODE", "DEFAULT_HTTP_STATUS", "DEFAULT_VALID_DURATION",
           "DEFAULT_VALID_USE_COUNT", "REPLY_CONTENT_TYPE", "QUOTA_EXHAUSTED_PREFIX",
           "FLAG_DENIED", "FLAG_RATE_LIMITED", "CheckResult", "MixerReply", "code_name",
           "http_status", "quota_exhausted", "unavailable"]

RpcCode = enum.IntEnum("RpcCode", [(name, code) for code, name in sorted(RPC_CODES.items())],
                       module=__name__, qualname="RpcCode")
RpcCode.__doc__ = "google.rpc.Code (google/rpc/code.proto): OK 0 … UNAUTHENTICATED 16."

# istio/proxy src/envoy/mixer HttpCode(): google.rpc.Code -> HTTP status
HTTP_STATUS_BY_CODE = {
    RpcCode.OK: 200,
    RpcCode.CANCELLED: 499,
    RpcCode.UNKNOWN: 500,
    RpcCode.INVALID_ARGUMENT: 400,
    RpcCode.DEADLINE_EXCEEDED: 504,
    RpcCode.NOT_FOUND: 404,
    RpcCode.ALREADY_EXISTS: 409,
    RpcCode.PERMISSION_DENIED: 403,
    RpcCode.RESOURCE_EXHAUSTED: 429,
    RpcCode.FAILED_PRECONDITION: 400,
    RpcCode.ABORTED: 409,
    RpcCode.OUT_OF_RANGE: 400,
    RpcCode.UNIMPLEMENTED: 501,
    RpcCode.INTERNAL: 500,
    RpcCode.UNAVAILABLE: 503,
    RpcCode.DATA_LOSS: 500,
    RpcCode.UNAUTHENTICATED: 401,
}
DEFAULT_HTTP_STATUS = 500  # HttpCode(): "default: return 500"

DEFAULT_VALID_DURATION = 60.0  # mixer runtime dispatcher: defaultValidDuration 1m (no adapter)
DEFAULT_VALID_USE_COUNT = 10000  # mixer runtime dispatcher: defaultValidUseCount
REPLY_CONTENT_TYPE = "text/plain"  # Envoy's local reply (telemetry-security.md §11.2 transcript)
QUOTA_EXHAUSTED_PREFIX = "Quota is exhausted for: "  # istio/proxy quota_cache.cc
FLAG_DENIED = "UAEX"  # Envoy response flag: unauthorized by an external authorization service
FLAG_RATE_LIMITED = "RL"  # Envoy response flag: rate limited


def code_name(code: int) -> str:
    """``7`` → ``PERMISSION_DENIED``; a number outside google.rpc.Code → ``UNKNOWN``."""
    return RPC_CODES.get(code, "UNKNOWN")


def http_status(code: int) -> int:
    """The HTTP status the caller gets for rpc ``code`` (500 for anything not in the table)."""
    return HTTP_STATUS_BY_CODE.get(code, DEFAULT_HTTP_STATUS)


class MixerReply(NamedTuple):
    """The local reply for a refused request: status, content type, body, access-log flag."""

    status: int
    content_type: str
    body: bytes
    flag: str


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's answer: rpc ``code`` and ``message``, how long (``valid_duration`` seconds) and
    how many times (``valid_use_count``) the sidecar may reuse it, and the fully-qualified name of
    the ``handler`` that decided (``None`` when the proxy decided, or for a combined result whose
    message already names its handlers)."""

    code: int = RpcCode.OK
    message: str = ""
    valid_duration: float = DEFAULT_VALID_DURATION
    valid_use_count: int = DEFAULT_VALID_USE_COUNT
    handler: str | None = None

    @property
    def ok(self) -> bool:
        return self.code == RpcCode.OK

    @property
    def code_name(self) -> str:
        return code_name(self.code)

    @property
    def http_status(self) -> int:
        return http_status(self.code)

    @property
    def status_message(self) -> str:
        """The message as Mixer sends it: ``<handler fqn>:<adapter message>``."""
        return self.message if self.handler is None else f"{self.handler}:{self.message}"

    @property
    def body(self) -> str:
        """``Status::ToString()``: ``OK``, ``<CODE>`` or ``<CODE>:<status message>``."""
        if self.ok:
            return "OK"
        text = self.status_message
        return f"{self.code_name}:{text}" if text else self.code_name

    def reply(self) -> MixerReply:
        """The local reply the sidecar sends for this (failed) result."""
        flag = FLAG_RATE_LIMITED if self.code == RpcCode.RESOURCE_EXHAUSTED else FLAG_DENIED
        return MixerReply(self.http_status, REPLY_CONTENT_TYPE, self.body.encode(), flag)

    @staticmethod
    def combine(results: Iterable["CheckResult"]) -> "CheckResult":
        """Several handlers' answers as one, the way Mixer's dispatcher merges them: the first
        failure's code; the failures' messages ``handler:message`` joined with ``", "``; the
        smallest valid duration and use count. No results: OK, cacheable 1 min / 10000 uses."""
        results = list(results)
        if not results:
            return ALLOW
        if len(results) == 1:
            return results[0]
        duration = min(r.valid_duration for r in results)
        uses = min(r.valid_use_count for r in results)
        failures = [r for r in results if not r.ok]
        if not failures:
            return CheckResult(RpcCode.OK, "", duration, uses)
        if len(failures) == 1:
            f = failures[0]
            return CheckResult(f.code, f.message, duration, uses, f.handler)
        return CheckResult(failures[0].code, ", ".join(f.status_message for f in failures),
                           duration, uses)


ALLOW = CheckResult()


def quota_exhausted(quota_names: Iterable[str]) -> CheckResult:
    """The proxy's answer when quotas granted nothing: RESOURCE_EXHAUSTED → 429 with body
    ``RESOURCE_EXHAUSTED:Quota is exhausted for: requestcount``. Not cacheable."""
    names = ",".join(quota_names)
    return CheckResult(RpcCode.RESOURCE_EXHAUSTED, QUOTA_EXHAUSTED_PREFIX + names, 0.0, 0)


def unavailable(message: str, handler: str | None = None) -> CheckResult:
    """UNAVAILABLE → 503, not cacheable: Mixer unreachable under fail-closed, or a handler with
    nothing to decide from (a listchecker whose list has not been fetched or was purged)."""
    return CheckResult(RpcCode.UNAVAILABLE, message, 0.0, 0, handler)
