"""The check and quota adapters with the docs' handlers: denier, listchecker (whitelist, blacklist,
entry types, provider refresh and purge), memquota glue. Virtual time only."""

from __future__ import annotations

import ipaddress

import msgspec
import pytest
from docs_yaml import fixture
from hypothesis import given, settings
from hypothesis import strategies as st

from trimesh.config import DenierParams, ListCheckerParams, load_text
from trimesh.errors import ConfigError
from trimesh.mixer import (CheckResult, Denier, EntryList, ListChecker, MemQuotaHandler, QuotaArgs,
                           RpcCode, parse_list, quota_exhausted)
from trimesh.quota import QuotaResult

# samples/bookinfo/kube/mixer-rule-deny-label.yaml's handler (telemetry-security.md §11.2)
DENY_LABEL = """\
apiVersion: config.istio.io/v1alpha2
kind: denier
metadata:
  name: denyreviewsv3handler
spec:
  status:
    code: 7
    message: Not allowed
"""


def spec_of(text: str):
    (obj,) = load_text(text)
    return obj.spec


# --- denier ---------------------------------------------------------------------------------------


def test_docs_denier_answers_403_with_the_docs_body():
    denier = Denier("denyreviewsv3handler.denier.default", spec_of(DENY_LABEL))
    result = denier.check()
    assert result == CheckResult(7, "Not allowed", 5.0, 1000, "denyreviewsv3handler.denier.default")
    assert result.reply().status == 403
    assert result.body == "PERMISSION_DENIED:denyreviewsv3handler.denier.default:Not allowed"
    assert denier.statistics() == {"checks": 1, "code": "PERMISSION_DENIED"}
    assert "denyreviewsv3handler.denier.default" in repr(denier)


@pytest.mark.parametrize("spec, code, duration, uses", [
    ("{}", RpcCode.FAILED_PRECONDITION, 5.0, 1000),                       # upstream defaults
    ("{validDuration: 2s, validUseCount: 7}", RpcCode.FAILED_PRECONDITION, 2.0, 7),
    ("{status: {code: 16, message: who}}", RpcCode.UNAUTHENTICATED, 5.0, 1000),
    ("{status: {code: 0}}", RpcCode.OK, 5.0, 1000),                       # code 0 allows
])
def test_denier_status_and_cacheability(spec, code, duration, uses):
    text = ("apiVersion: config.istio.io/v1alpha2\nkind: denier\nmetadata: {name: d}\n"
            f"spec: {spec}\n")
    result = Denier("d.denier.default", spec_of(text)).check()
    assert (result.code, result.valid_duration, result.valid_use_count) == (code, duration, uses)


def test_denier_without_status_is_a_400_with_its_handler():
    result = Denier("handler.denier.default").check()
    assert result.reply().status == 400
    assert result.body == "FAILED_PRECONDITION:handler.denier.default:"


def test_denier_grants_no_quota():
    denier = Denier("d.denier.ns")
    assert denier.quota() == QuotaResult(0)
    assert denier.quota("q.quota.ns", {"a": "b"}, QuotaArgs(3), 1.0) == QuotaResult(0)
    assert denier.check("v3", 1.0) is denier.check()  # a listentry value changes nothing


def test_denier_refuses_a_negative_use_count():
    with pytest.raises(ConfigError) as err:
        Denier("d.denier.ns", DenierParams(valid_use_count=-1))
    assert err.value.path == "$.spec.validUseCount"


# --- listchecker: the docs' whitelist -------------------------------------------------------------


def whitelist(**changes) -> ListChecker:
    params = spec_of(fixture("whitelist-handler.yaml"))
    if changes:
        params = msgspec.structs.replace(params, **changes)
    return ListChecker("whitelist.listchecker.default", params)


@pytest.mark.parametrize("version, status, body", [
    ("v1", 200, "OK"),
    ("v2", 200, "OK"),
    ("v3", 404, "NOT_FOUND:whitelist.listchecker.default:v3 is not whitelisted"),
    ("V1", 404, "NOT_FOUND:whitelist.listchecker.default:V1 is not whitelisted"),  # STRINGS: exact
])
def test_docs_whitelist(version, status, body):
    result = whitelist().check(version, 0.0)
    assert (result.http_status, result.body) == (status, body)
    assert (result.valid_duration, result.valid_use_count) == (300.0, 10000)  # cachingInterval


@pytest.mark.parametrize("version, status, body", [
    ("v3", 403, "PERMISSION_DENIED:whitelist.listchecker.default:v3 is blacklisted"),
    ("v1", 200, "OK"),
])
def test_docs_whitelist_turned_blacklist(version, status, body):
    result = whitelist(blacklist=True, overrides=["v3"]).check(version, 0.0)
    assert (result.http_status, result.body) == (status, body)


def test_listchecker_statistics_and_repr():
    lc = whitelist()
    lc.check("v1", 0.0)
    lc.check("v3", 0.0)
    s = lc.statistics()
    assert (s["checks"], s["denied"], s["entries"], s["mode"]) == (2, 1, 2, "whitelist")
    assert repr(lc) == "<ListChecker whitelist.listchecker.default whitelist STRINGS 2 entries>"


# --- entry types ----------------------------------------------------------------------------------


@pytest.mark.parametrize("entry_type, entries, value, found", [
    ("STRINGS", ["v1"], "v1", True),
    ("STRINGS", ["v1"], "V1", False),
    ("CASE_INSENSITIVE_STRINGS", ["Reviews"], "rEVIEWS", True),
    ("CASE_INSENSITIVE_STRINGS", ["Straße"], "STRASSE", True),
    ("IP_ADDRESSES", ["10.0.0.0/8"], "10.1.2.3", True),
    ("IP_ADDRESSES", ["10.0.0.0/8"], "11.0.0.1", False),
    ("IP_ADDRESSES", ["10.1.2.3"], "10.1.2.3", True),          # a bare address is /32
    ("IP_ADDRESSES", ["10.1.2.3"], "10.1.2.4", False),
    ("IP_ADDRESSES", ["10.1.2.0/24"], ipaddress.ip_address("10.1.2.200"), True),
    ("IP_ADDRESSES", ["10.1.2.0/24"], bytes([10, 1, 2, 9]), True),      # raw IP_ADDRESS bytes
    ("IP_ADDRESSES", ["10.1.2.0/24"], "::ffff:10.1.2.9", True),        # IPv4-mapped
    ("IP_ADDRESSES", ["2001:db8::/32"], "2001:db8::1", True),
    ("IP_ADDRESSES", ["2001:db8::1"], "2001:db8::2", False),            # bare v6 is /128
    ("IP_ADDRESSES", ["10.0.0.0/8"], "2001:db8::1", False),
    ("REGEX", ["^v[12]$"], "v2", True),
    ("REGEX", ["^v[12]$"], "v3", False),
    ("REGEX", ["view"], "reviews", True),                      # unanchored, as Go's MatchString
])
def test_entry_types(entry_type, entries, value, found):
    assert EntryList.compile(entries, entry_type).contains(value) is found


def test_a_non_ip_value_is_invalid_argument():
    lc = ListChecker("ips.listchecker.default",
                     ListCheckerParams(entry_type="IP_ADDRESSES", overrides=["10.0.0.0/8"]))
    result = lc.check("not-an-ip", 0.0)
    assert result.code == RpcCode.INVALID_ARGUMENT and result.http_status == 400
    assert result.body == ("INVALID_ARGUMENT:ips.listchecker.default:"
                           "not-an-ip is not a valid IP address")


@pytest.mark.parametrize("params, path", [
    (ListCheckerParams(entry_type="IP_ADDRESSES", overrides=["10.0.0.1", "300.1.1.1"]),
     "$.spec.overrides[1]"),
    (ListCheckerParams(entry_type="REGEX", overrides=["("]), "$.spec.overrides[0]"),
    (ListCheckerParams(provider_url="not a url"), "$.spec.providerUrl"),
    (ListCheckerParams(provider_url="http://lists", refresh_interval=0.5),
     "$.spec.refreshInterval"),
    (ListCheckerParams(provider_url="http://lists", refresh_interval=60.0, ttl=60.0), "$.spec.ttl"),
    (ListCheckerParams(caching_use_count=-1), "$.spec.cachingUseCount"),
])
def test_bad_listchecker_config_names_the_field(params, path):
    with pytest.raises(ConfigError) as err:
        ListChecker("x.listchecker.default", params)
    assert err.value.path == path


@settings(max_examples=100, deadline=None)
@given(entries=st.lists(st.text(min_size=1, max_size=8), max_size=10), value=st.text(max_size=8),
       blacklist=st.booleans())
def test_whitelist_and_blacklist_are_complements(entries, value, blacklist):
    params = ListCheckerParams(overrides=entries, blacklist=blacklist)
    result = ListChecker("l.listchecker.ns", params).check(value, 0.0)
    listed = value in entries
    if blacklist:
        assert result.code == (RpcCode.PERMISSION_DENIED if listed else RpcCode.OK)
    else:
        assert result.code == (RpcCode.OK if listed else RpcCode.NOT_FOUND)


# --- the provider's list: refresh, ttl, replacement -----------------------------------------------


def provider_checker() -> ListChecker:
    params = spec_of(fixture("listchecker-staticversion.yaml"))  # providerUrl, whitelist
    return ListChecker("staticversion.listchecker.istio-system", params)


def test_provider_list_refresh_schedule_and_purge():
    lc = provider_checker()
    assert lc.refresh_due(0.0)                         # fetched at start
    before = lc.check("v1", 0.0)
    assert before.code == RpcCode.UNAVAILABLE and before.http_status == 503
    assert (before.valid_duration, before.valid_use_count) == (0.0, 0)
    lc.install(parse_list("v1\nv2\n"), 0.0)
    assert not lc.refresh_due(59.9) and lc.refresh_due(60.0)   # refreshInterval 60s
    assert lc.check("v2", 10.0).ok and not lc.check("v3", 10.0).ok
    lc.fetch_failed("connection refused", 60.0)
    assert lc.next_refresh_at() == 120.0                # retried a full interval later
    assert lc.check("v2", 299.9).ok                      # the old list holds until ttl (300s)
    assert lc.purge_at() == 300.0
    purged = lc.check("v2", 300.0)
    assert purged.code == RpcCode.UNAVAILABLE
    assert purged.body == ("UNAVAILABLE:staticversion.listchecker.istio-system:list from "
                           "http://white_list_registry/ is not available: connection refused")
    lc.install(["v3"], 301.0)                           # a later fetch brings it back
    assert lc.check("v3", 301.0).ok and lc.purge_at() == 601.0
    s = lc.statistics()
    assert (s["fetches"], s["fetch_failures"], s["unavailable"]) == (2, 1, 2)


def test_overrides_stay_on_top_of_the_fetched_list():
    params = ListCheckerParams(provider_url="http://lists", overrides=["static"])
    lc = ListChecker("l.listchecker.ns", params)
    lc.install(EntryList.compile(["fetched"]), 0.0)
    assert lc.check("static", 1.0).ok and lc.check("fetched", 1.0).ok
    lc.install(["other"], 2.0)                            # replaced whole
    assert not lc.check("fetched", 3.0).ok and lc.check("static", 3.0).ok


def test_without_provider_nothing_is_ever_due():
    lc = whitelist()
    assert not lc.refresh_due(1e9) and lc.next_refresh_at() is None and lc.purge_at() is None


@pytest.mark.parametrize("text, entries", [
    ("v1\nv2\n\n  v3  \n", ["v1", "v2", "v3"]),
    ("whitelist:\n- 10.0.0.0/8\n- 192.168.1.1\n", ["10.0.0.0/8", "192.168.1.1"]),
    ("- a\n- b\n", ["a", "b"]),
    ("", []),
])
def test_parse_list(text, entries):
    assert parse_list(text) == entries


@pytest.mark.parametrize("text", ["whitelist: {a: b}", "whitelist: [unclosed"])
def test_parse_list_refuses_other_yaml(text):
    with pytest.raises(ConfigError):
        parse_list(text)


# --- memquota glue --------------------------------------------------------------------------------

Q = "requestcount.quota.istio-system"
V2_TO_RATINGS = {"source": "reviews", "sourceVersion": "v2", "destination": "ratings",
                 "destinationVersion": "v1"}


def docs_memquota(**kw) -> MemQuotaHandler:
    spec = spec_of(fixture("ratelimit-handler.yaml"))
    return MemQuotaHandler("handler.memquota.istio-system", spec, **kw)


def test_memquota_glue_grants_and_the_caller_makes_429():
    h = docs_memquota()
    first = h.quota(Q, V2_TO_RATINGS, QuotaArgs(), 0.0)
    assert first == QuotaResult(1, 1.0)
    second = h.quota(Q, V2_TO_RATINGS, QuotaArgs(), 0.5)
    assert second.granted == 0
    refusal = quota_exhausted(["requestcount"])
    assert refusal.reply()[:3] == (429, "text/plain",
                                   b"RESOURCE_EXHAUSTED:Quota is exhausted for: requestcount")
    assert h.quota(Q, V2_TO_RATINGS, QuotaArgs(), 1.0).granted == 1


def test_memquota_glue_dedup_best_effort_and_release():
    h = docs_memquota()
    other = dict(V2_TO_RATINGS, sourceVersion="v3")      # the 5000/s default
    assert h.quota(Q, other, QuotaArgs(4990, dedup_id="a"), 0.0).granted == 4990
    assert h.quota(Q, other, QuotaArgs(4990, dedup_id="a"), 0.1).deduplicated
    assert h.quota(Q, other, QuotaArgs(20), 0.2).granted == 0                 # all or nothing
    assert h.quota(Q, other, QuotaArgs(20, best_effort=True), 0.3).granted == 10
    assert h.quota(Q, other, QuotaArgs(-15), 0.4).granted == 15               # released
    assert h.quota(Q, other, QuotaArgs(15), 0.5).granted == 15
    assert h.statistics()["dedup_hits"] == 1
    assert "handler.memquota.istio-system" in repr(h)


def test_memquota_glue_reconfigure_and_local_share():
    h = docs_memquota()
    h.quota(Q, V2_TO_RATINGS, QuotaArgs(), 0.0)
    h.reconfigure(spec_of(fixture("ratelimit-handler.yaml")))
    assert h.quota(Q, V2_TO_RATINGS, QuotaArgs(), 0.5).granted == 0   # same limits: still held
    assert h.expire(2.0) == 1
    local = docs_memquota(share=0.5)
    assert local.quotas.limit_for(Q, dict(V2_TO_RATINGS, sourceVersion="v3")).max_amount == 2500
