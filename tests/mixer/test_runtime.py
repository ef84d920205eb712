"""MixerConfig: the docs' Mixer YAML as written, resolved and answered over attribute bags."""

from pathlib import Path

import pytest

import trimesh.mixer  # noqa: F401  (installs the expression checker)
from trimesh.config import load_text
from trimesh.mixer import MixerConfig, RpcCode, destination_namespace

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

# samples/bookinfo/kube/mixer-rule-deny-label.yaml (telemetry-security.md §11.2)
DENY_LABEL = """apiVersion: config.istio.io/v1alpha2
kind: denier
metadata:
  name: denyreviewsv3handler
spec:
  status:
    code: 7
    message: Not allowed
---
apiVersion: config.istio.io/v1alpha2
kind: checknothing
metadata:
  name: denyreviewsv3request
spec:
---
apiVersion: config.istio.io/v1alpha2
kind: rule
metadata:
  name: denyreviewsv3
spec:
  match: destination.labels["app"] == "ratings" && source.labels["app"]=="reviews" && source.labels["version"] == "v3"
  actions:
  - handler: denyreviewsv3handler.denier.default
    instances: [ denyreviewsv3request.checknothing.default ]
"""

RATINGS = "ratings.default.svc.cluster.local"


def docs(*names, text=""):
    objs = []
    for n in names:
        objs += load_text((FIXTURES / n).read_text(), source=n)
    if text:
        objs += load_text(text)
    return objs


def bag(src_app="reviews", src_version="v1", dest_app="ratings", dest_version="v1", **extra):
    b = {"destination.service": f"{dest_app}.default.svc.cluster.local",
         "destination.labels": {"app": dest_app, "version": dest_version},
         "source.labels": {"app": src_app, "version": src_version}}
    b.update(extra)
    return b


@pytest.mark.parametrize("src_version, dest, body, status", [
    ("v3", "ratings", "PERMISSION_DENIED:denyreviewsv3handler.denier.default:Not allowed", 403),
    ("v2", "ratings", "OK", 200),
    ("v1", "ratings", "OK", 200),
    ("v3", "details", "OK", 200),
])
def test_the_denier_denies_reviews_v3_to_ratings_only(src_version, dest, body, status):
    cfg = MixerConfig.compile(docs(text=DENY_LABEL))
    r = cfg.check(bag(src_version=src_version, dest_app=dest), 0.0)
    assert (r.body, r.http_status) == (body, status)
    if not r.ok:
        assert (r.valid_duration, r.valid_use_count) == (5.0, 1000)  # denier defaults


@pytest.mark.parametrize("version, body", [
    ("v1", "OK"), ("v2", "OK"),
    ("v3", "NOT_FOUND:whitelist.listchecker.default:v3 is not whitelisted"),
])
def test_the_whitelist(version, body):
    cfg = MixerConfig.compile(docs("whitelist-handler.yaml", "appversion-instance.yaml",
                                   "checkversion-rule.yaml"))
    assert cfg.check(bag(src_version=version), 0.0).body == body


def test_the_blacklist_with_overrides_v3():
    text = (FIXTURES / "whitelist-handler.yaml").read_text().replace(
        '["v1", "v2"]', '["v3"]').replace("blacklist: false", "blacklist: true")
    objs = load_text(text) + docs("appversion-instance.yaml", "checkversion-rule.yaml")
    cfg = MixerConfig.compile(objs)
    assert cfg.check(bag(src_version="v3"), 0.0).body == (
        "PERMISSION_DENIED:whitelist.listchecker.default:v3 is blacklisted")
    assert cfg.check(bag(src_version="v2"), 0.0).ok


def test_a_missing_attribute_makes_the_rule_not_match_never_a_crash():
    cfg = MixerConfig.compile(docs(text=DENY_LABEL))
    b = {"destination.service": RATINGS, "destination.labels": {"app": "ratings"}}
    assert cfg.check(b, 0.0).ok  # source.labels unknown: no match
    b["source.labels"] = 17  # a value of the wrong type: no match either
    assert cfg.check(b, 0.0).ok


def test_a_listentry_without_its_value_refuses():
    cfg = MixerConfig.compile(docs("whitelist-handler.yaml", "appversion-instance.yaml",
                                   "checkversion-rule.yaml"))
    b = {"destination.service": RATINGS, "destination.labels": {"app": "ratings"}}
    r = cfg.check(b, 0.0)
    assert r.code == RpcCode.INVALID_ARGUMENT and "appversion.listentry.default" in r.message


def test_rules_outside_istio_system_apply_to_their_namespace_only():
    cfg = MixerConfig.compile(docs(text=DENY_LABEL))
    other = bag(src_version="v3")
    other["destination.service"] = "ratings.prod.svc.cluster.local"
    assert cfg.check(other, 0.0).ok
    moved = DENY_LABEL.replace("metadata:\n", "metadata:\n  namespace: istio-system\n")
    moved = moved.replace(".default", ".istio-system")
    glob = MixerConfig.compile(load_text(moved))
    assert glob.check(other, 0.0).body == (
        "PERMISSION_DENIED:denyreviewsv3handler.denier.istio-system:Not allowed")


@pytest.mark.parametrize("b, ns", [
    ({"destination.namespace": "a", "destination.service": "x.b.svc"}, "a"),
    ({"destination.service": "x.b.svc.cluster.local"}, "b"),
    ({"destination.service": "x"}, None), ({}, None),
])
def test_destination_namespace(b, ns):
    assert destination_namespace(b) == ns


RATE = ("ratelimit-handler.yaml", "ratelimit-rule.yaml",
        "mixer-rule-ratings-ratelimit-quotaspec.yaml")


def passed(cfg, b, times):
    return [cfg.decide(b, t, dedup_id=f"r{i}").result.ok for i, t in enumerate(times)]


def test_rate_limit_reviews_v2_to_ratings_at_one_per_second():
    cfg = MixerConfig.compile(docs(*RATE))
    times = [i * 0.1 for i in range(25)]  # 10 rps for 2.5 s
    got = passed(cfg, bag(src_version="v2"), times)
    # sliding window: over any 1 s at most one passes
    ok_times = [t for t, ok in zip(times, got) if ok]
    assert ok_times and all(b - a >= 1.0 - 1e-9 for a, b in zip(ok_times, ok_times[1:]))
    assert len(ok_times) == 3
    r = cfg.decide(bag(src_version="v2"), 2.55)
    assert (r.result.body, r.result.http_status) == (
        "RESOURCE_EXHAUSTED:Quota is exhausted for: requestcount", 429)
    # other traffic keeps the 5000/s default
    later = [3.0 + t for t in times]  # the clock only moves forward
    assert all(passed(cfg, bag(src_version="v3"), later))
    assert all(passed(cfg, bag(src_app="productpage", dest_app="reviews"), later))


def test_the_conditional_rule_limits_only_requests_across_namespaces():
    objs = docs("ratelimit-handler.yaml", "mixer-rule-ratings-ratelimit-quotaspec.yaml")
    rule_doc = (FIXTURES / "ratelimit-rule.yaml").read_text().split("---")[0]
    objs += load_text(rule_doc) + docs("ratelimit-rule-conditional.yaml")
    cfg = MixerConfig.compile(objs)
    times = [i * 0.1 for i in range(10)]
    same = bag(src_version="v2", **{"source.namespace": "default",
                                    "destination.namespace": "default"})
    across = bag(src_version="v2", **{"source.namespace": "prod",
                                      "destination.namespace": "default"})
    assert all(passed(cfg, same, times))
    assert sum(passed(cfg, across, times)) == 1


def test_a_config_push_keeps_the_rate_counters():
    cfg = MixerConfig.compile(docs(*RATE), revision=1)
    assert cfg.decide(bag(src_version="v2"), 0.0).result.ok
    again = MixerConfig.compile(docs(*RATE, text=DENY_LABEL), revision=2, previous=cfg)
    assert again.handlers["handler.memquota.istio-system"] is cfg.handlers[
        "handler.memquota.istio-system"]
    assert not again.decide(bag(src_version="v2"), 0.5).result.ok


def test_check_attributes_are_what_the_rules_read():
    cfg = MixerConfig.compile(docs(text=DENY_LABEL))
    assert set(cfg.check_attributes) == {"destination.labels", "source.labels",
                                         "destination.namespace", "destination.service"}
    assert not cfg.has_quotas
    assert MixerConfig.compile(docs(*RATE)).has_quotas


def test_an_unresolvable_reference_drops_the_action_and_is_counted():
    text = DENY_LABEL.split("---")[2].replace("denyreviewsv3handler.denier.default",
                                               "nosuch.denier")
    cfg = MixerConfig.compile(load_text(text))
    assert cfg.unresolved == 1 and cfg.check(bag(src_version="v3"), 0.0).ok
    assert "unresolved" in cfg.statistics() and "rules" in repr(cfg)
