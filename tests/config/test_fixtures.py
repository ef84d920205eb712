"""Every YAML example of the docs (tests/fixtures/, see SOURCES.md) either loads as the docs describe,
or fails with the clear error its known doc bug deserves."""

from pathlib import Path

import pytest

from trimesh.config import Duration, load_text
from trimesh.errors import ConfigError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

# fixture -> the objects it must load as ("type/namespace/name", in order)
LOADS = {
    "appversion-instance.yaml": ["listentry/default/appversion"],
    "checkversion-rule.yaml": ["rule/default/checkversion"],
    "fluentd-istio.yaml": ["logentry/istio-system/newlog", "fluentd/istio-system/handler",
                           "rule/istio-system/newlogtofluentd"],
    "foo-egress-rule.yaml": ["egress-rule/default/foo-egress-rule"],
    "foo-timeout-rule.yaml": ["route-rule/default/foo-timeout-rule"],
    "google-egress-rule.yaml": ["egress-rule/default/google-egress-rule"],
    "httpbin-circuit-breaker.yaml": ["destination-policy/default/httpbin-circuit-breaker"],
    "httpbin-default-v1.yaml": ["route-rule/default/httpbin-default-v1"],
    "httpbin-egress-rule.yaml": ["egress-rule/default/httpbin-egress-rule"],
    "httpbin-timeout-rule.yaml": ["route-rule/default/httpbin-timeout-rule"],
    "ingress-status-route.yaml": ["route-rule/default/status-route"],
    "listchecker-staticversion.yaml": ["listchecker/istio-system/staticversion"],
    "metric-requestduration.yaml": ["metric/istio-system/requestduration"],
    "mirror-traffic-to-httbin-v2.yaml": ["route-rule/default/mirror-traffic-to-httbin-v2"],
    "mixer-rule-ratings-ratelimit-quotaspec.yaml": ["quota-spec/istio-system/requestcount",
                                                    "quota-spec-binding/istio-system/requestcount"],
    "new_telemetry-rendering-duplicate.yaml": [
        "rule/istio-system/doubleprom", "logentry/istio-system/newlog",
        "stdio/istio-system/newhandler", "rule/istio-system/newlogstdio"],
    "new_telemetry.yaml": [
        "metric/istio-system/doublerequestcount", "prometheus/istio-system/doublehandler",
        "rule/istio-system/doubleprom", "logentry/istio-system/newlog",
        "stdio/istio-system/newhandler", "rule/istio-system/newlogstdio"],
    "prometheus-handler.yaml": ["prometheus/istio-system/handler"],
    "ratelimit-handler.yaml": ["memquota/istio-system/handler"],
    "ratelimit-rule-conditional.yaml": ["rule/istio-system/quota"],
    "ratelimit-rule.yaml": ["quota/istio-system/requestcount", "rule/istio-system/quota"],
    "ratings-abort.yaml": ["route-rule/default/ratings-abort"],
    "ratings-delay-abort.yaml": ["route-rule/default/ratings-delay-abort"],
    "ratings-delay.yaml": ["route-rule/default/ratings-delay"],
    "ratings-retry.yaml": ["route-rule/default/ratings-retry"],
    "ratings-timeout.yaml": ["route-rule/default/ratings-timeout"],
    "reviews-default-no-weight.yaml": ["route-rule/default/reviews-default"],
    "reviews-default.yaml": ["route-rule/default/reviews-default"],
    "reviews-foo-bar.yaml": ["route-rule/default/reviews-foo-bar", "route-rule/default/reviews-default"],
    "reviews-v2-rollout.yaml": ["route-rule/default/reviews-v2-rollout"],
    "route-rule-reviews-50-v3.yaml": ["route-rule/default/reviews-default"],
    "rule-promhttp.yaml": ["rule/istio-system/promhttp"],
    "secure-ingress.yaml": ["ingress/default/secure-ingress"],
    "simple-ingress.yaml": ["ingress/default/simple-ingress"],
    "tcp_telemetry.yaml": ["metric/default/mongosentbytes", "metric/default/mongoreceivedbytes",
                           "prometheus/default/mongohandler", "rule/default/mongoprom"],
    "timeouts-ratings-delay-2s.yaml": ["route-rule/default/ratings-default"],
    "timeouts-reviews-timeout-1s.yaml": ["route-rule/default/reviews-default"],
    "timeouts-reviews-v2.yaml": ["route-rule/default/reviews-default"],
    "whitelist-handler.yaml": ["listchecker/default/whitelist"],
}

ELIDED = "'...' is how the docs mark fields they left out"
FRAGMENT = "not a config object: expected apiVersion, kind, metadata and spec"
# fixture -> (doc bug, the error's line, text the message must contain)
DOC_BUGS = {
    # `...` elides fields (concepts.md §8.4/§8.5; `istioctl get` output in traffic-tasks.md)
    "reviews-to-ratings.yaml": ("'...' elision", 11, ELIDED),
    "reviews-v2-to-ratings.yaml": ("'...' elision", 13, ELIDED),
    "ratings-jason.yaml": ("'...' elision", 13, ELIDED),
    "ratings-reviews-jason.yaml": ("'...' elision", 17, ELIDED),
    "route-rule-all-v1.yaml": ("'...' elision in get output", 6, ELIDED),
    "route-rule-reviews-test-v2.yaml": ("'...' elision in get output", 6, ELIDED),
    "route-rule-ratings-test-delay.yaml": ("'...' elision in get output", 6, ELIDED),
    # DestinationPolicy examples without `kind` (concepts.md §16.1)
    "ratings-lb-policy.yaml": ("no kind", 1, "missing 'kind': the spec looks like a DestinationPolicy"),
    "reviews-v1-cb.yaml": ("no kind", 1,
                           "missing 'kind': the spec looks like a DestinationPolicy (has circuitBreaker)"),
    "reviews-v1-cb-evaluation.yaml": ("no kind", 1, "the spec looks like a DestinationPolicy"),
    # pieces of a document shown on their own
    "destination-name-fragment.yaml": ("fragment", 1, FRAGMENT),
    "destination-explicit-fragment.yaml": ("fragment", 1, FRAGMENT),
    "destination-service-fragment.yaml": ("fragment", 1, FRAGMENT),
    "precedence-fragment.yaml": ("fragment", 1, FRAGMENT),
    "httpbin-service-auth-annotation-fragment.yaml": ("fragment of a Kubernetes Service", 1, FRAGMENT),
    "attribute-manifest-istio-proxy.yaml": ("0.1-era 'manifests:' list, not an attributemanifest",
                                            1, FRAGMENT),
    "kube-inject-sidecar-template.yaml": ("pod template, not mesh config", 1, FRAGMENT),
    "istio-inject-initializer-config.yaml": ("initializer ConfigMap data, not mesh config", 1,
                                             FRAGMENT),
    # a schema shown with a placeholder kind
    "mixer-resource-syntax.yaml": ("placeholder kind", 2,
                                   "unknown kind 'rule, adapter kind, or template kind'"),
    # Kubernetes objects (logging stack for the Fluentd task)
    "logging-stack.yaml": ("Kubernetes kinds", 3, "unknown kind 'Namespace': Namespace is a Kubernetes kind"),
}


def test_every_fixture_is_in_a_table():
    on_disk = {p.name for p in FIXTURES.glob("*.yaml")}
    assert on_disk == set(LOADS) | set(DOC_BUGS)
    assert not set(LOADS) & set(DOC_BUGS)


def _load(name, **kw):
    return load_text((FIXTURES / name).read_bytes(), source=name, **kw)


@pytest.mark.parametrize("name", sorted(LOADS))
def test_fixture_loads(name):
    assert [o.ref for o in _load(name)] == LOADS[name]


@pytest.mark.parametrize("name", sorted(DOC_BUGS))
def test_fixture_with_doc_bug_fails_clearly(name):
    _bug, line, text = DOC_BUGS[name]
    with pytest.raises(ConfigError) as info:
        _load(name)
    err = info.value
    assert text in err.message
    assert err.line == line
    assert err.source == name
    assert str(err).startswith(f"{name}:{line}")


@pytest.mark.parametrize("name", sorted(n for n, bug in DOC_BUGS.items() if "elision" in bug[0]))
def test_elided_fixtures_load_once_the_elision_lines_are_deleted(name):
    text = (FIXTURES / name).read_text()
    kept = "\n".join(ln for ln in text.split("\n") if ln.strip() != "...")
    objects = load_text(kept, source=name)
    assert objects and all(o.kind == "RouteRule" for o in objects)


def test_kindless_policies_load_when_asked_to_infer_or_given_a_kind():
    for name in ("ratings-lb-policy.yaml", "reviews-v1-cb.yaml", "reviews-v1-cb-evaluation.yaml"):
        (inferred,) = _load(name, infer_kind=True)
        (given,) = _load(name, default_kind="DestinationPolicy")
        assert inferred == given and inferred.kind == "DestinationPolicy"
    (cb,) = _load("reviews-v1-cb.yaml", infer_kind=True)
    assert cb.spec.circuit_breaker.simple_cb.max_connections == 100
    assert cb.spec.destination.labels == {"version": "v1"}
    (lb,) = _load("ratings-lb-policy.yaml", infer_kind=True)
    assert lb.spec.load_balancing.name == "ROUND_ROBIN" and lb.spec.source.labels == {"version": "v2"}


def test_rendered_new_telemetry_with_its_duplicate_block_is_refused():
    text = (FIXTURES / "new_telemetry.yaml").read_text() + (
        FIXTURES / "new_telemetry-rendering-duplicate.yaml").read_text()
    with pytest.raises(ConfigError, match=r"rule/istio-system/doubleprom is defined twice"):
        load_text(text, source="new_telemetry.yaml")
    assert len(load_text(text, allow_duplicates=True)) == 10


# --- what the loaded fixtures say (spot checks against the docs) ------------------------------------


def test_wildcard_egress_quoted_or_not_gives_the_same_rule():
    notes = []
    (raw,) = _load("foo-egress-rule.yaml", notes=notes)
    quoted = (FIXTURES / "foo-egress-rule.yaml").read_text().replace("*.foo.com", '"*.foo.com"')
    assert load_text(quoted) == [raw]
    assert raw.spec.destination.service == "*.foo.com"
    assert [(p.port, p.protocol) for p in raw.spec.ports] == [(80, "http"), (443, "https")]
    assert notes == ["foo-egress-rule.yaml:7: quoted *.foo.com (an unquoted '*' starts a YAML alias)"]


def test_snake_case_timeout_rule_equals_camel_case():
    (snake,) = _load("httpbin-timeout-rule.yaml")
    assert snake.spec.http_req_timeout.simple_timeout.timeout == 3.0
    camel = (FIXTURES / "httpbin-timeout-rule.yaml").read_text().replace(
        "http_req_timeout", "httpReqTimeout").replace("simple_timeout", "simpleTimeout")
    assert load_text(camel) == [snake]


def test_foo_bar_header_rule():
    foo, default = _load("reviews-foo-bar.yaml")
    assert foo.spec.precedence == 2 and default.spec.precedence == 1
    assert foo.spec.match.request.headers == {"foo": foo.spec.match.request.headers["foo"]}
    assert foo.spec.match.request.headers["foo"].exact == "bar"


def test_fault_fixtures():
    (delay,) = _load("ratings-delay.yaml")
    assert delay.spec.http_fault.delay.percent == 10
    assert delay.spec.http_fault.delay.fixed_delay == Duration(5.0)
    (both,) = _load("ratings-delay-abort.yaml")
    assert both.spec.http_fault.delay.percent is None  # every request
    assert both.spec.http_fault.abort.http_status == 400


def test_ratelimit_fixtures():
    (handler,) = _load("ratelimit-handler.yaml")
    (quota,) = handler.spec.quotas
    assert (quota.name, quota.max_amount, quota.valid_duration) == (
        "requestcount.quota.istio-system", 5000, 1.0)
    assert quota.overrides[0].dimensions == {"destination": "ratings", "source": "reviews",
                                             "sourceVersion": "v2"}
    instance, rule = _load("ratelimit-rule.yaml")
    assert instance.spec.dimensions["source"] == 'source.labels["app"] | source.service | "unknown"'
    assert rule.spec.match == "" and rule.spec.actions[0].handler == "handler.memquota"


def test_telemetry_fixtures_accept_both_spellings():
    objects = {o.ref: o for o in _load("new_telemetry.yaml")}
    metric = objects["metric/istio-system/doublerequestcount"].spec
    assert metric.value == "2" and metric.monitored_resource_type == '"UNSPECIFIED"'
    assert metric.dimensions["message"] == '"twice the fun!"'
    stdio = objects["stdio/istio-system/newhandler"].spec
    assert stdio.severity_levels == {"warning": 1} and stdio.output_as_json is True
    tcp = {o.ref: o for o in _load("tcp_telemetry.yaml")}
    assert tcp["metric/default/mongosentbytes"].spec.monitored_resource_type == '"UNSPECIFIED"'
    # the two-line plain scalar folds into one expression (telemetry-security.md §16.1.5)
    assert tcp["rule/default/mongoprom"].spec.match == (
        'context.protocol == "tcp" && destination.service == "mongodb.default.svc.cluster.local"')


def test_prometheus_handler_fixture():
    (prom,) = _load("prometheus-handler.yaml")
    count, duration = prom.spec.metrics
    assert (count.name, count.kind) == ("request_count", "COUNTER")
    assert duration.kind == "DISTRIBUTION"
    assert duration.buckets.explicit_buckets.bounds == [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                                        2.5, 5, 10]


def test_circuit_breaker_task_fixture_v1beta1():
    (dp,) = _load("httpbin-circuit-breaker.yaml")
    cb = dp.spec.circuit_breaker.simple_cb
    assert dp.api_version == "config.istio.io/v1alpha2"  # stored with the canonical version
    assert (cb.max_connections, cb.http_max_pending_requests, cb.sleep_window) == (1, 1, 180.0)
    assert cb.http_max_requests == 1024 and cb.http_max_retries == 3  # defaults (CB9)
