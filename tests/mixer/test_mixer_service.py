"""The Mixer service and the sidecar's policy stage, in one process (addresses in 127.0.170.0/24):
the wire, the check cache and its invalidation, quotas, fail open / closed, the local quota
fallback, the off switches, and the stage on a real InboundProxy with the source header."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import trio

import trimesh.mixer  # noqa: F401
from trimesh.config import Snapshot, load_text, make_instance
from trimesh.mixer import (FrameReader, MixerClient, MixerService, MixerUnavailable, PolicyCheck,
                           SOURCE_HEADER, encode_frame, parse_source_header, source_header_value)
from trimesh.errors import ProtocolError
from trimesh.proxy import HttpServer, InboundProxy, UpstreamPool
from trimesh.routing import MeshReply
from trimesh.service import http_request
from trimesh.telemetry import AccessLog
from trimesh.testing import FakeUpstream, serve_upstream

from test_runtime import DENY_LABEL, RATE, docs  # noqa: E402  (same directory)

HOST = "127.0.170.1"
PEER = "127.0.170.9"  # the calling sidecar's address (a known mesh instance)
DEAD = ("127.0.170.250", 1)  # nothing listens: connect refused
RATINGS = {"destination.service": "ratings.default.svc.cluster.local",
           "destination.namespace": "default",
           "destination.labels": {"app": "ratings", "version": "v1"}}


class _Head:
    def __init__(self, headers):
        self.method = "GET"
        self.headers = list(headers)
        self.content_length = None


class _Down:
    def __init__(self, client):
        self.client = client


class FakeExchange:
    def __init__(self, version="v1", client=PEER, path="/ratings/0", request_id="r"):
        src = source_header_value("reviews", "default", {"app": "reviews", "version": version})
        self.head = _Head([("host", "ratings:9080"), (SOURCE_HEADER, src),
                           ("x-request-id", request_id)])
        self.path, self.authority, self.scheme = path, "ratings:9080", "http"
        self.down = _Down(client)


class Snap:
    """The sidecar's current snapshot, swappable."""

    def __init__(self, objects=(), version=1, mesh=""):
        self.snap = None
        self.set(objects, version, mesh)

    def set(self, objects, version, mesh=""):
        objs = list(objects) + (load_text(mesh) if mesh else [])
        self.snap = Snapshot(objs, [make_instance("reviews", PEER, 9080)], version=version)

    def __call__(self):
        return self.snap


async def start(nursery, objects=(), revision=1):
    svc = MixerService(objects, revision=revision)
    await nursery.start(svc.serve, HOST, 0)
    return svc


def test_the_source_header_round_trips():
    v = source_header_value("reviews", "default", {"app": "reviews", "version": "v3"})
    assert parse_source_header(v) == {"source.service": "reviews", "source.namespace": "default",
                                      "source.labels": {"app": "reviews", "version": "v3"}}


def test_frames_split_anywhere_decode_the_same():
    data = encode_frame({"op": "check", "attrs": {"a": 1}}) + encode_frame({"op": "stats"})
    r = FrameReader()
    got = []
    for b in data:
        r.feed(bytes([b]))
        while (m := r.next()) is not None:
            got.append(m)
    assert got == [{"op": "check", "attrs": {"a": 1}}, {"op": "stats"}]
    bad = FrameReader()
    bad.feed(b"\xff\xff\xff\xff")
    with pytest.raises(ProtocolError):
        bad.next()


async def test_the_service_answers_check_quota_report_and_errors(nursery):
    svc = await start(nursery, docs(*RATE, text=DENY_LABEL), revision=7)
    client = MixerClient([svc.address])
    v3 = {**RATINGS, "source.labels": {"app": "reviews", "version": "v3"}}
    a = await client.check(v3)
    assert a["rev"] == 7 and a["quotas"] is True and "source.labels" in a["keys"]
    assert a["result"][0] == 7 and a["result"][4] == "denyreviewsv3handler.denier.default"
    v2 = {**RATINGS, "source.labels": {"app": "reviews", "version": "v2"}}
    q = [await client.quota(v2, "requestcount", dedup=f"d{i}") for i in range(2)]
    assert [x["granted"] for x in q] == [1, 0]
    assert await client.report([{"request.path": "/"}] * 3) == 3
    with pytest.raises(ProtocolError, match="unknown op"):
        await client.call({"op": "nope"})
    stats = svc.statistics()
    assert (stats["checks"], stats["quotas"], stats["records"], stats["errors"]) == (1, 2, 3, 1)
    assert stats["connections"] == 1  # one kept-alive connection for every call
    await client.aclose()


async def test_the_policy_stage_denies_with_the_docs_body_and_caches(nursery):
    svc = await start(nursery, docs(text=DENY_LABEL))
    snap = Snap(docs(text=DENY_LABEL))
    policy = PolicyCheck(MixerClient([svc.address]), RATINGS, snapshot=snap)
    want = MeshReply(403, "UAEX", "PERMISSION_DENIED:denyreviewsv3handler.denier.default:Not allowed")
    assert await policy.check(FakeExchange("v3")) == want
    assert await policy.check(FakeExchange("v1")) is None
    for _ in range(5):  # cached: no more calls
        assert await policy.check(FakeExchange("v3")) == want
        assert await policy.check(FakeExchange("v1")) is None
    assert svc.statistics()["checks"] == 2 and policy.statistics()["cache_hits"] == 10
    # the rule deleted: the sidecar's snapshot changes, the cache goes, access is back at once
    svc.set_objects([], 2)
    snap.set([], 2)
    assert await policy.check(FakeExchange("v3")) is None
    assert policy.statistics()["invalidations"] == 1


async def test_source_attributes_are_believed_only_from_mesh_peers(nursery):
    svc = await start(nursery, docs(text=DENY_LABEL))
    policy = PolicyCheck(MixerClient([svc.address]), RATINGS, snapshot=Snap())
    assert await policy.check(FakeExchange("v3", client="10.1.2.3")) is None
    assert (await policy.check(FakeExchange("v3"))).status == 403


@pytest.mark.parametrize("fail_open, reply", [
    (True, None),
    (False, MeshReply(503, "UAEX", "UNAVAILABLE:mixer unreachable")),
])
async def test_mixer_unreachable_follows_the_fail_policy(fail_open, reply):
    policy = PolicyCheck(MixerClient([DEAD], timeout=0.5), RATINGS, snapshot=Snap(),
                         fail_open=fail_open)
    got = await policy.check(FakeExchange("v3"))
    if reply is None:
        assert got is None and policy.statistics()["fail_open"] == 1
    else:
        assert (got.status, got.flag) == (reply.status, reply.flag)
        assert got.body.startswith("UNAVAILABLE:mixer unreachable")


async def test_cached_checks_keep_answering_while_mixer_is_down_and_it_resumes(nursery):
    svc = MixerService(docs(text=DENY_LABEL))
    async with trio.open_nursery() as inner:
        await inner.start(svc.serve, HOST, 0)
        addr = svc.address
        policy = PolicyCheck(MixerClient([addr], timeout=0.5), RATINGS, snapshot=Snap(),
                             fail_open=False)
        assert (await policy.check(FakeExchange("v3"))).status == 403
        assert await policy.check(FakeExchange("v1")) is None
        await policy.client.aclose()
        inner.cancel_scope.cancel()
    assert (await policy.check(FakeExchange("v3"))).status == 403  # cached, Mixer down
    assert await policy.check(FakeExchange("v1")) is None
    assert (await policy.check(FakeExchange("v2"))).status == 503  # not cached: fail closed
    back = MixerService(docs(text=DENY_LABEL))
    await nursery.start(back.serve, *addr)
    policy.client._down_until.clear()  # skip the retry pause
    assert await policy.check(FakeExchange("v2")) is None


async def test_a_second_mixer_address_takes_over():
    svc = MixerService(docs(text=DENY_LABEL))
    async with trio.open_nursery() as n:
        await n.start(svc.serve, HOST, 0)
        client = MixerClient([DEAD, svc.address], timeout=0.5)
        answer = await client.check({**RATINGS, "source.labels": {"app": "reviews",
                                                                  "version": "v3"}})
        assert answer["result"][0] == 7 and client.statistics()["failures"] == 1
        await client.aclose()
        n.cancel_scope.cancel()
    with pytest.raises(MixerUnavailable):
        await MixerClient([DEAD], timeout=0.5).check({})


async def test_quotas_are_charged_per_request_and_fall_back_to_local_buckets(nursery):
    objs = docs(*RATE)
    svc = MixerService(objs)
    async with trio.open_nursery() as inner:
        await inner.start(svc.serve, HOST, 0)
        policy = PolicyCheck(MixerClient([svc.address], timeout=0.5), RATINGS,
                             snapshot=Snap(objs), instances_of_destination=lambda: 1)
        got = [await policy.check(FakeExchange("v2", request_id=f"a{i}")) for i in range(4)]
        assert got[0] is None
        assert {(r.status, r.flag, r.body) for r in got[1:]} == {
            (429, "RL", "RESOURCE_EXHAUSTED:Quota is exhausted for: requestcount")}
        others = [await policy.check(FakeExchange("v3", request_id=f"b{i}")) for i in range(4)]
        assert others == [None] * 4
        await policy.client.aclose()
        inner.cancel_scope.cancel()
    # Mixer down: this sidecar's own buckets, its share of the limits
    got = [await policy.check(FakeExchange("v2", request_id=f"c{i}")) for i in range(3)]
    assert got[0] is None and all(r.status == 429 for r in got[1:])
    assert policy.statistics()["fallback_quotas"] == 3


@pytest.mark.parametrize("mesh", [
    "apiVersion: config.istio.io/v1alpha2\nkind: MeshConfig\nmetadata: {name: mesh}\n"
    "spec:\n  disablePolicyChecks: true\n",
    "apiVersion: config.istio.io/v1alpha2\nkind: MeshConfig\nmetadata: {name: mesh}\n"
    "spec:\n  mixerAddress: null\n",
])
async def test_disable_policy_checks_and_an_empty_mixer_address_turn_the_stage_off(mesh):
    policy = PolicyCheck(MixerClient([DEAD], timeout=0.5), RATINGS,
                         snapshot=Snap(mesh=mesh), fail_open=False)
    assert await policy.check(FakeExchange("v3")) is None
    assert policy.statistics()["checks"] == 0 and not policy.enabled


async def test_the_stage_on_an_inbound_proxy(nursery):
    svc = await start(nursery, docs(text=DENY_LABEL))
    up = FakeUpstream(name="ratings-v1", service="ratings", version="v1")
    app_port = await nursery.start(serve_upstream, up, "127.0.170.2", 0)
    log: list = []
    proxy = InboundProxy(("127.0.170.2", app_port), rng=random.Random(3), pool=UpstreamPool(),
                         access_log=AccessLog(sink=log.append), service="ratings")
    proxy.policy = PolicyCheck(MixerClient([svc.address]), RATINGS, snapshot=Snap())
    addr = await nursery.start(HttpServer("inbound", proxy).serve, "127.0.170.3", 0)

    async def get(version):
        stream = await trio.open_tcp_stream(*addr, local_address=PEER)
        async with stream:
            src = source_header_value("reviews", "default", {"app": "reviews", "version": version})
            return await http_request(stream, "GET", "/ratings/0", host="ratings:9080",
                                      headers=[(SOURCE_HEADER, src)])

    r = await get("v3")
    assert (r.status, r.body) == (
        403, b"PERMISSION_DENIED:denyreviewsv3handler.denier.default:Not allowed")
    assert r.header("content-type", "").startswith("text/plain")
    assert (await get("v2")).status == 200
    assert [e["status"] for e in log] == [403, 200] and log[0]["flags"] == "UAEX"
    assert SOURCE_HEADER in up.requests[-1]["headers"]  # without private_headers: passed on
    proxy.private_headers = frozenset({SOURCE_HEADER})  # as trimesh.sidecar.install_mixer sets
    assert (await get("v2")).status == 200  # the check still reads it from the request...
    assert SOURCE_HEADER not in up.requests[-1]["headers"]  # ...and the app never sees it
    assert (await get("v3")).status == 403


def test_fixtures_dir_exists():
    assert (Path(__file__).parent.parent / "fixtures" / "ratelimit-rule.yaml").exists()


async def test_reports_are_batched_to_mixer_and_dropped_when_it_is_down(nursery):
    from trimesh.mixer import Reporter, ReportingLog

    got: list = []
    svc = MixerService(on_report=got.extend)
    await nursery.start(svc.serve, HOST, 0)

    class Rec:
        def __init__(self, i):
            self.i = i

        def attributes(self):
            return {"request.path": f"/{self.i}", "response.code": 200}

    class Log:
        lines: list = []

        def log(self, r):
            self.lines.append(r)

        def statistics(self):
            return {"records": len(self.lines)}

    reporter = Reporter(MixerClient([svc.address]), limit=3)
    wrapped = ReportingLog(Log(), reporter)
    for i in range(4):
        wrapped.log(Rec(i))
    assert wrapped.statistics() == {"records": 4}  # the log's own, through the wrapper
    assert await reporter.flush() == 3
    assert [b["request.path"] for b in got] == ["/0", "/1", "/2"]
    assert reporter.statistics()["dropped"] == 1 and svc.statistics()["reports"] == 1
    down = Reporter(MixerClient([DEAD], timeout=0.5))
    down.add(Rec(9))
    assert await down.flush() == 0 and down.statistics()["failed_batches"] == 1


def test_install_mixer_keeps_the_source_header_from_the_app():
    """The wiring: the outbound names this workload in SOURCE_HEADER, the inbound's check reads
    the caller's, and the inbound does not pass it on to the app (Istio's mixer filter removes
    x-istio-attributes the same way)."""
    from trimesh.sidecar import MixerOptions, Sidecar, SidecarConfig, install_mixer

    sc = Sidecar(SidecarConfig(service="ratings", port=9080, app_port=1, address="127.0.0.1",
                               proxy_port=0, admin_port=0))
    assert sc.inbound.private_headers == frozenset()
    install_mixer(sc, MixerOptions(addresses=("127.0.0.1:9",)))
    assert sc.inbound.private_headers == {SOURCE_HEADER}
    assert sc.outbound.source_attributes[0] == SOURCE_HEADER


# The docs' access control by service account (telemetry-security.md §12): deny ratings to the
# productpage's identity, which only a verified client certificate can carry.
DENY_BY_ACCOUNT = DENY_LABEL.replace(
    DENY_LABEL[DENY_LABEL.index("match: "):DENY_LABEL.index("\n", DENY_LABEL.index("match: "))],
    'match: destination.service == "ratings.default.svc.cluster.local" && '
    'source.user == "cluster.local/ns/default/sa/bookinfo-productpage"')


class _Peer:
    def __init__(self, principal):
        self.principal = principal


async def test_source_user_comes_only_from_the_verified_certificate(nursery):
    assert DENY_BY_ACCOUNT != DENY_LABEL
    svc = await start(nursery, docs(text=DENY_BY_ACCOUNT))
    policy = PolicyCheck(MixerClient([svc.address]), RATINGS, snapshot=Snap())
    productpage = FakeExchange()
    productpage.down.peer = _Peer("cluster.local/ns/default/sa/bookinfo-productpage")
    assert policy.bag(productpage)["source.user"] == productpage.down.peer.principal
    assert policy.bag(productpage)["source.principal"] == productpage.down.peer.principal
    assert (await policy.check(productpage)).status == 403
    reviews = FakeExchange()
    reviews.down.peer = _Peer("cluster.local/ns/default/sa/bookinfo-reviews")
    assert await policy.check(reviews) is None  # not cached under the other identity's answer
    # a header naming the identity is just a header: no certificate, no source.user
    claimed = FakeExchange()
    claimed.head.headers.append(("x-forwarded-client-cert",
                                 "URI=spiffe://cluster.local/ns/default/sa/bookinfo-productpage"))
    assert "source.user" not in policy.bag(claimed)
    assert await policy.check(claimed) is None


# -- listchecker providerUrl: the service fetches and refreshes the list ---------------------------

def _provider_docs(url: str, refresh: str = "5s", ttl: str = "12s"):
    from test_runtime import FIXTURES

    text = (FIXTURES / "whitelist-handler.yaml").read_text().replace(
        'overrides: ["v1", "v2"]', f'overrides: ["v1"]\n  providerUrl: {url}\n'
        f'  refreshInterval: {refresh}\n  ttl: {ttl}')
    return load_text(text) + docs("appversion-instance.yaml", "checkversion-rule.yaml")


def _version_check(svc, version: str):
    return svc.config.check({"destination.service": "ratings.default.svc.cluster.local",
                             "destination.labels": {"app": "ratings"},
                             "source.labels": {"app": "reviews", "version": version}},
                            trio.current_time())


async def test_provider_lists_are_fetched_refreshed_kept_and_purged(autojump_clock):
    answers = ["v2\nv3\n", OSError("connection refused"), OSError("connection refused"),
               "whitelist: [v2]\n"]
    fetched: list[tuple[float, str]] = []

    async def fetch(url):
        fetched.append((trio.current_time(), url))
        answer = answers.pop(0) if answers else OSError("gone")
        if isinstance(answer, Exception):
            raise answer
        return answer

    svc = MixerService(_provider_docs("http://lists.example/versions"))
    assert _version_check(svc, "v3").code == 14  # UNAVAILABLE before the first fetch
    async with trio.open_nursery() as nursery:
        await nursery.start(svc.refresh_lists, fetch)
        await trio.sleep(0.1)
        assert fetched == [(0.0, "http://lists.example/versions")]
        assert _version_check(svc, "v3").ok and _version_check(svc, "v1").ok  # + overrides
        assert _version_check(svc, "v4").body == (
            "NOT_FOUND:whitelist.listchecker.default:v4 is not whitelisted")
        await trio.sleep(10.5)  # two failed refreshes (at 5 and 10 s): the list is kept
        assert [t for t, _ in fetched] == [0.0, 5.0, 10.0]
        assert _version_check(svc, "v3").ok
        await trio.sleep(1.8)  # 12.4 s: past the ttl of the last success, nothing newer
        unavailable = _version_check(svc, "v3")
        assert unavailable.code == 14 and "connection refused" in unavailable.message
        await trio.sleep(3)  # the refresh at 15 s succeeds again: whitelist [v2] + overrides
        assert _version_check(svc, "v2").ok and not _version_check(svc, "v3").ok
        stats = svc.statistics()["handlers"]["whitelist.listchecker.default"]
        assert stats["fetches"] == 2 and stats["fetch_failures"] == 2
        nursery.cancel_scope.cancel()


async def test_a_new_listchecker_is_fetched_at_once_after_a_config_push(autojump_clock):
    seen = []

    async def fetch(url):
        seen.append((trio.current_time(), url))
        return "v3\n"

    svc = MixerService()
    async with trio.open_nursery() as nursery:
        await nursery.start(svc.refresh_lists, fetch)
        await trio.sleep(30)
        assert seen == []  # no listchecker: nothing to fetch, the loop sleeps
        svc.set_objects(_provider_docs("http://lists.example/a"), revision=2)
        await trio.sleep(0.01)
        assert seen == [(30.0, "http://lists.example/a")]
        assert _version_check(svc, "v3").ok
        nursery.cancel_scope.cancel()


async def test_fetch_list_over_http_and_its_failures(nursery):
    from trimesh.mixer._service import fetch_list
    from trimesh.service import HttpService, Response

    async def handle(request):
        if request.path == "/list":
            return Response(200, [("content-type", "application/yaml")],
                            b"whitelist:\n- v1\n- v2\n")
        return Response(404, [], b"no such list\n")

    http = HttpService(handle, name="list provider")
    await nursery.start(http.serve, HOST, 0)
    base = f"http://{http.host}:{http.port}"
    assert parse_list_text(await fetch_list(f"{base}/list")) == ["v1", "v2"]
    with pytest.raises(ProtocolError, match="404"):
        await fetch_list(f"{base}/missing")
    with pytest.raises(OSError):
        await fetch_list(f"http://{DEAD[0]}:{DEAD[1]}/list")
    with pytest.raises(ProtocolError, match="only http"):
        await fetch_list("ftp://lists.example/x")


def parse_list_text(text):
    from trimesh.mixer._adapters import parse_list

    return parse_list(text)
