"""Mixer's telemetry adapters (trimesh/mixer/_telemetry.py) and the report path of MixerConfig —
pure: the docs' YAML as written, attribute bags in, metric families and log lines out."""

from __future__ import annotations

import json
import math

import pytest
from test_runtime import docs

from trimesh.config import load_text
from trimesh.mixer import MixerConfig
from trimesh.mixer._telemetry import go_duration, prometheus_name


def _bag(source="productpage.default.svc.cluster.local", dest="details.default.svc.cluster.local",
         **extra):
    b = {"source.service": source, "destination.service": dest,
         "source.labels": {"app": source.split(".")[0], "version": "v1"},
         "destination.labels": {"app": dest.split(".")[0], "version": "v1"},
         "response.code": 200, "response.size": 178, "response.duration": 0.006848,
         "request.time": 1505968411.249}
    b.update(extra)
    return b


def _samples(handler) -> dict[tuple, float]:
    out = {}
    for fam in handler.families():
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_new_telemetry_double_request_count_counts_twice_per_request():
    cfg = MixerConfig.compile(docs("new_telemetry.yaml"))
    for _ in range(3):
        cfg.report(_bag(), 0.0)
    cfg.report({"destination.service": "reviews.default.svc.cluster.local"}, 0.0)
    handler = cfg.handlers["doublehandler.prometheus.istio-system"]
    samples = _samples(handler)
    key = ("istio_double_request_count_total", (
        ("destination", "details.default.svc.cluster.local"), ("message", "twice the fun!"),
        ("source", "productpage.default.svc.cluster.local")))
    assert samples[key] == 6
    # a request from outside the mesh: source "unknown" (the docs' ingress traffic)
    unknown = ("istio_double_request_count_total", (
        ("destination", "reviews.default.svc.cluster.local"), ("message", "twice the fun!"),
        ("source", "unknown")))
    assert samples[unknown] == 2


def test_new_telemetry_newlog_lines_have_the_docs_fields_and_order():
    cfg = MixerConfig.compile(docs("new_telemetry.yaml"))
    cfg.report(_bag(), 0.0)
    stdio = cfg.handlers["newhandler.stdio.istio-system"]
    (line,) = stdio.lines
    assert line.startswith('{"level":"warn","ts":"2017-09-21T04:33:31.249Z",'
                           '"instance":"newlog.logentry.istio-system",')
    doc = json.loads(line)
    assert list(doc) == ["level", "ts", "instance", "destination", "latency", "responseCode",
                         "responseSize", "source", "user"]
    assert doc == {"level": "warn", "ts": "2017-09-21T04:33:31.249Z",
                        "instance": "newlog.logentry.istio-system", "destination": "details",
                        "latency": "6.848ms", "responseCode": 200, "responseSize": 178,
                        "source": "productpage", "user": "unknown"}
    # with mutual TLS the caller's identity is source.user
    cfg.report(_bag(**{"source.user": "cluster.local/ns/default/sa/bookinfo-productpage"}), 0.0)
    assert json.loads(stdio.lines[-1])["user"] == "cluster.local/ns/default/sa/bookinfo-productpage"


def test_distributions_observe_seconds_into_the_docs_buckets():
    text = (docs("metric-requestduration.yaml") + load_text("""
apiVersion: config.istio.io/v1alpha2
kind: prometheus
metadata: {name: handler, namespace: istio-system}
spec:
  metrics:
  - name: request_duration
    instance_name: requestduration.metric.istio-system
    kind: DISTRIBUTION
    label_names: [destination_service, destination_version, response_code]
    buckets:
      explicit_buckets:
        bounds: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
---
apiVersion: config.istio.io/v1alpha2
kind: rule
metadata: {name: promhttp, namespace: istio-system}
spec:
  actions:
  - handler: handler.prometheus
    instances: [requestduration.metric]
"""))
    cfg = MixerConfig.compile(text)
    for seconds in (0.003, 0.007, 0.2, 20.0):
        cfg.report(_bag(**{"response.duration": seconds}), 0.0)
    samples = _samples(cfg.handlers["handler.prometheus.istio-system"])
    labels = (("destination_service", "details.default.svc.cluster.local"),
              ("destination_version", "v1"), ("response_code", "200"))

    def bucket(le):
        return samples[("istio_request_duration_bucket", tuple(sorted((*labels, ("le", le)))))]

    assert bucket("0.005") == 1 and bucket("0.01") == 2 and bucket("0.25") == 3
    assert bucket("10.0") == 3 and bucket("+Inf") == 4  # cumulative; 20 s only in +Inf
    assert samples[("istio_request_duration_count", labels)] == 4
    assert math.isclose(samples[("istio_request_duration_sum", labels)], 20.21)


def test_a_value_that_is_not_a_number_is_counted_not_recorded():
    cfg = MixerConfig.compile(load_text("""
apiVersion: config.istio.io/v1alpha2
kind: metric
metadata: {name: weird, namespace: istio-system}
spec:
  value: request.path | "none"
  dimensions: {}
---
apiVersion: config.istio.io/v1alpha2
kind: prometheus
metadata: {name: h, namespace: istio-system}
spec:
  metrics:
  - {name: weird, instance_name: weird.metric.istio-system, kind: GAUGE}
---
apiVersion: config.istio.io/v1alpha2
kind: rule
metadata: {name: r, namespace: istio-system}
spec:
  actions:
  - {handler: h.prometheus, instances: [weird.metric]}
"""))
    cfg.report({"request.path": "/not-a-number"}, 0.0)
    cfg.report({"request.path": "42"}, 0.0)
    h = cfg.handlers["h.prometheus.istio-system"]
    assert h.statistics()["value_errors"] == 1
    assert _samples(h) == {("istio_weird", ()): 42.0}


@pytest.mark.parametrize("seconds, text", [
    (0, "0s"), (850e-9, "850ns"), (12.5e-6, "12.5µs"), (0.006848, "6.848ms"),
    (0.07447, "74.47ms"), (1.5, "1.5s"), (123.5, "2m3.5s"), (3600, "1h0m0s"),
])
def test_go_duration_text(seconds, text):
    assert go_duration(seconds) == text


def test_metric_names_are_sanitised_as_upstream():
    assert prometheus_name("istio_double_request.count") == "istio_double_request_count"
    assert prometheus_name("/a-b c/d") == "ab_c_d"


def test_tcp_telemetry_counts_bytes_only_for_tcp_connections():
    cfg = MixerConfig.compile(docs("tcp_telemetry.yaml"))
    tcp = {"context.protocol": "tcp", "destination.service": "mongodb.default.svc.cluster.local",
           "destination.labels": {"version": "v1"}, "source.service":
           "ratings.default.svc.cluster.local", "source.labels": {"version": "v2"},
           "connection.received.bytes": 1200, "connection.sent.bytes": 34000}
    cfg.report(tcp, 0.0)
    cfg.report({**tcp, "context.protocol": "http"}, 0.0)  # not TCP: the rule does not match
    handler = next(h for h in cfg.handlers.values() if hasattr(h, "families"))
    values = {name: v for (name, _), v in _samples(handler).items()}
    assert values == {"istio_mongo_received_bytes_total": 1200.0,
                      "istio_mongo_sent_bytes_total": 34000.0}


def test_telemetry_rules_stay_out_of_the_checks_cache_key():
    plain = MixerConfig.compile(docs(text=""))
    cfg = MixerConfig.compile(docs("tcp_telemetry.yaml"))
    assert cfg.check_attributes == plain.check_attributes  # context.protocol is not in it
    assert cfg.check(_bag(), 0.0).ok
