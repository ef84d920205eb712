"""Snapshot indexes, diff_snapshots, and Mixer cross-references."""

import msgspec

from trimesh.config import (Snapshot, check_references, diff_snapshots, load_text, make_instance)

RULES = """kind: RouteRule
metadata: {name: reviews-default}
spec:
  destination: {name: reviews}
  precedence: 1
  route: [{labels: {version: v1}}]
---
kind: RouteRule
metadata: {name: reviews-jason}
spec:
  destination: {name: reviews}
  precedence: 2
  match: {request: {headers: {cookie: {regex: "^(.*?;)?(user=jason)(;.*)?$"}}}}
  route: [{labels: {version: v2}}]
---
kind: RouteRule
metadata: {name: a-same-precedence, namespace: default}
spec:
  destination: {service: reviews.default.svc.cluster.local}
  precedence: 1
  route: [{labels: {version: v3}}]
---
kind: RouteRule
metadata: {name: prod-reviews, namespace: prod}
spec:
  destination: {name: reviews}
  route: [{labels: {version: v1}}]
---
kind: DestinationPolicy
metadata: {name: reviews-cb}
spec:
  destination: {name: reviews, labels: {version: v1}}
  circuitBreaker: {simpleCb: {maxConnections: 100}}
---
kind: EgressRule
metadata: {name: foo}
spec:
  destination: {service: "*.foo.com"}
  ports: [{port: 80}]
"""

MIXER = """kind: metric
metadata: {name: requestcount, namespace: istio-system}
spec:
  value: "1"
  dimensions: {destination_service: destination.service, response_code: response.code}
---
kind: prometheus
metadata: {name: handler, namespace: istio-system}
spec:
  metrics:
  - {name: request_count, instance_name: requestcount.metric.istio-system, kind: COUNTER,
     label_names: [destination_service, response_code]}
---
kind: rule
metadata: {name: promhttp, namespace: istio-system}
spec:
  actions:
  - handler: handler.prometheus
    instances: [requestcount.metric]
"""


def test_rules_indexed_by_destination_in_precedence_order():
    snap = Snapshot(load_text(RULES), version=3)
    fqdn = "reviews.default.svc.cluster.local"
    assert [o.name for o in snap.route_rules_for(fqdn)] == [
        "reviews-jason", "a-same-precedence", "reviews-default"]
    assert [o.name for o in snap.route_rules_for("reviews.prod.svc.cluster.local")] == ["prod-reviews"]
    assert [o.name for o in snap.destination_policies_for(fqdn)] == ["reviews-cb"]
    assert [o.name for o in snap.of_kind("EgressRule")] == ["foo"]
    assert snap.get("routerule", "prod", "prod-reviews").namespace == "prod"
    assert snap.get("RouteRule", "prod", "missing") is None
    stats = snap.statistics()
    assert stats["objects"] == 6 and stats["kinds"] == {"DestinationPolicy": 1, "EgressRule": 1,
                                                        "RouteRule": 4}
    assert repr(snap) == "<Snapshot v3 objects=6 instances=0>"


def test_instances_indexed_by_service():
    insts = [make_instance("reviews", "127.0.0.2", 9080, labels={"version": v}) for v in ("v1", "v2")]
    insts.append(make_instance("ratings", "127.0.0.3", 9080))
    snap = Snapshot((), insts)
    assert snap.services() == ["ratings.default.svc.cluster.local", "reviews.default.svc.cluster.local"]
    assert [i.labels["version"] for i in snap.instances_of("reviews.default.svc.cluster.local")] == [
        "v1", "v2"]
    assert snap.replace(instances=insts[:1]).version == 1


def test_mixer_objects_by_fully_qualified_name_and_mesh_config():
    snap = Snapshot(load_text(MIXER))
    assert snap.mixer_object("handler.prometheus.istio-system").name == "handler"
    assert snap.mixer_object("requestcount.metric", "istio-system").kind == "metric"
    assert snap.mixer_object("requestcount.metric", "default") is None
    assert snap.mesh_config.auth_policy == "NONE"
    mesh = load_text("kind: MeshConfig\nmetadata: {name: mesh, namespace: istio-system}\n"
                     "spec: {authPolicy: MUTUAL_TLS}\n")
    assert snap.replace(objects=[*snap.objects.values(), *mesh]).mesh_config.auth_policy == "MUTUAL_TLS"


def test_diff_snapshots():
    objects = load_text(RULES)
    old = Snapshot(objects, version=1)
    assert not diff_snapshots(old, old)
    changed_rule = load_text(RULES.replace("precedence: 2", "precedence: 5"))[1]
    bumped_only = msgspec.structs.replace(objects[0], revision=9)  # same content, new revision
    added = load_text("kind: RouteRule\nmetadata: {name: new}\nspec: {destination: {name: ratings}}\n")[0]
    new_objects = [bumped_only, changed_rule, *objects[2:5], added]  # EgressRule foo removed
    new = Snapshot(new_objects, version=2)
    diff = diff_snapshots(old, new)
    assert diff.added == (("RouteRule", "default", "new"),)
    assert diff.changed == (("RouteRule", "default", "reviews-jason"),)
    assert diff.removed == (("EgressRule", "default", "foo"),)
    assert diff.kinds() == {"RouteRule", "EgressRule"}
    assert diff.keys == tuple(sorted(diff.added + diff.changed + diff.removed))
    assert repr(diff) == "<SnapshotDiff +1 ~1 -1>"
    # symmetric: going back undoes it
    back = diff_snapshots(new, old)
    assert (back.added, back.changed, back.removed) == (diff.removed, diff.changed, diff.added)
    # from nothing, everything is added; mappings work too
    assert diff_snapshots(None, old).added == tuple(sorted(old.objects))
    assert diff_snapshots(old.objects, {}).removed == tuple(sorted(old.objects))


def test_diff_notices_instance_changes():
    a = Snapshot((), [make_instance("reviews", "127.0.0.2", 9080)])
    b = a.replace(instances=[make_instance("reviews", "127.0.0.2", 9080, healthy=False)])
    diff = diff_snapshots(a, b)
    assert diff and diff.instances_changed and not diff.keys
    assert not diff_snapshots(a, a.replace())


def test_check_references_accepts_the_docs_wiring():
    assert check_references(load_text(MIXER)) == []


def test_check_references_reports_missing_and_mismatched():
    text = MIXER.replace("instances: [requestcount.metric]",
                         "instances: [requestcount.metric, missing.metric, handler.prometheus]")
    text = text.replace("label_names: [destination_service, response_code]",
                        "label_names: [destination_service, source_version]")
    text += "---\nkind: rule\nmetadata: {name: other, namespace: default}\nspec:\n  actions:\n" \
            "  - {handler: handler.prometheus, instances: [requestcount.metric.istio-system]}\n"
    errors = check_references(load_text(text))
    got = sorted((e.source, e.path, e.message) for e in errors)
    assert got == [
        ("prometheus/istio-system/handler", "$.spec.metrics[0].labelNames[1]",
         "label 'source_version' is not a dimension of requestcount.metric.istio-system"),
        ("rule/default/other", "$.spec.actions[0].handler", "no handler handler.prometheus.default"),
        ("rule/istio-system/promhttp", "$.spec.actions[0].instances[1]",
         "no instance missing.metric.istio-system"),
        ("rule/istio-system/promhttp", "$.spec.actions[0].instances[2]",
         "no instance handler.prometheus.istio-system (that name is not an instance)"),
    ]
