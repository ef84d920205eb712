"""The rpc code -> HTTP table, the reply bodies of telemetry-security.md §11.2, and how check
results combine."""

from __future__ import annotations

import ast
import pathlib

import pytest

import trimesh.mixer as mixer
from trimesh.mixer import (CheckResult, RpcCode, code_name, http_status, quota_exhausted,
                           unavailable)

# telemetry-security.md §11.2 (istio/proxy HttpCode())
TABLE = [
    (0, "OK", 200), (1, "CANCELLED", 499), (2, "UNKNOWN", 500), (3, "INVALID_ARGUMENT", 400),
    (4, "DEADLINE_EXCEEDED", 504), (5, "NOT_FOUND", 404), (6, "ALREADY_EXISTS", 409),
    (7, "PERMISSION_DENIED", 403), (8, "RESOURCE_EXHAUSTED", 429),
    (9, "FAILED_PRECONDITION", 400), (10, "ABORTED", 409), (11, "OUT_OF_RANGE", 400),
    (12, "UNIMPLEMENTED", 501), (13, "INTERNAL", 500), (14, "UNAVAILABLE", 503),
    (15, "DATA_LOSS", 500), (16, "UNAUTHENTICATED", 401),
]


@pytest.mark.parametrize("code, name, status", TABLE)
def test_rpc_code_table(code, name, status):
    assert RpcCode[name] == code
    assert code_name(code) == name
    assert http_status(code) == status
    assert CheckResult(code).http_status == status


def test_table_is_complete_and_unknown_codes_are_500():
    assert len(RpcCode) == len(TABLE) == len(mixer.HTTP_STATUS_BY_CODE)
    assert http_status(17) == http_status(-1) == 500
    assert code_name(99) == "UNKNOWN"


@pytest.mark.parametrize("result, body, status", [
    # the docs' denier (telemetry-security.md §16.9 item 54)
    (CheckResult(7, "Not allowed", handler="denyreviewsv3handler.denier.default"),
     "PERMISSION_DENIED:denyreviewsv3handler.denier.default:Not allowed", 403),
    # the whitelist (item 56)
    (CheckResult(5, "v3 is not whitelisted", handler="whitelist.listchecker.default"),
     "NOT_FOUND:whitelist.listchecker.default:v3 is not whitelisted", 404),
    (CheckResult(7, "v3 is blacklisted", handler="whitelist.listchecker.default"),
     "PERMISSION_DENIED:whitelist.listchecker.default:v3 is blacklisted", 403),
    # a denier without status (item 57): the handler and an empty message
    (CheckResult(9, "", handler="handler.denier.default"),
     "FAILED_PRECONDITION:handler.denier.default:", 400),
    # decided by the proxy: no handler
    (quota_exhausted(["requestcount"]), "RESOURCE_EXHAUSTED:Quota is exhausted for: requestcount",
     429),
    (quota_exhausted(["a", "b"]), "RESOURCE_EXHAUSTED:Quota is exhausted for: a,b", 429),
    (CheckResult(14), "UNAVAILABLE", 503),
    (CheckResult(0, "ignored", handler="h.denier.ns"), "OK", 200),
])
def test_bodies(result, body, status):
    assert result.body == body
    assert result.http_status == status


def test_reply_carries_status_content_type_body_and_flag():
    denied = CheckResult(7, "Not allowed", handler="denyproductpagehandler.denier.default")
    reply = denied.reply()
    assert reply == (403, "text/plain",
                     b"PERMISSION_DENIED:denyproductpagehandler.denier.default:Not allowed", "UAEX")
    assert len(reply.body) == 67  # the 0.5-era transcript's content-length
    assert quota_exhausted(["requestcount"]).reply().flag == "RL"
    assert quota_exhausted(["requestcount"]).reply().status == 429


def test_quota_exhausted_and_unavailable_are_not_cacheable():
    for r in (quota_exhausted(["q"]), unavailable("mixer unreachable")):
        assert (r.valid_duration, r.valid_use_count) == (0.0, 0)
    assert unavailable("gone", "h.listchecker.ns").body == "UNAVAILABLE:h.listchecker.ns:gone"


def test_combine_like_mixers_dispatcher():
    ok_list = CheckResult(0, "", 300.0, 10000, "whitelist.listchecker.default")
    deny = CheckResult(7, "Not allowed", 5.0, 1000, "deny.denier.default")
    miss = CheckResult(5, "v3 is not whitelisted", 300.0, 10000, "wl.listchecker.default")
    assert CheckResult.combine([]) == CheckResult(0, "", 60.0, 10000)
    assert CheckResult.combine([deny]) is deny
    assert CheckResult.combine([ok_list, ok_list]) == CheckResult(0, "", 300.0, 10000)
    one = CheckResult.combine([ok_list, deny])
    assert one == CheckResult(7, "Not allowed", 5.0, 1000, "deny.denier.default")
    both = CheckResult.combine([miss, deny])
    assert both.code == RpcCode.NOT_FOUND  # the first failure's code
    assert both.body == ("NOT_FOUND:wl.listchecker.default:v3 is not whitelisted, "
                         "deny.denier.default:Not allowed")
    assert (both.valid_duration, both.valid_use_count) == (5.0, 1000)


def test_status_and_adapters_modules_are_pure():
    forbidden = {"trio", "socket", "ssl", "time", "random", "asyncio", "threading", "os"}
    pkg = pathlib.Path(mixer.__file__).parent
    for name in ("_status.py", "_adapters.py"):
        for node in ast.walk(ast.parse((pkg / name).read_text(), name)):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for n in names:
                assert n.split(".")[0] not in forbidden, f"{name} imports {n}"


def test_adapter_exports_come_from_the_package():
    for name in ("CheckResult", "RpcCode", "Denier", "ListChecker", "MemQuotaHandler",
                 "QuotaArgs", "quota_exhausted", "http_status"):
        assert name in mixer.__all__
        assert getattr(mixer, name).__module__.startswith("trimesh.mixer"), name
