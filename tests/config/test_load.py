"""What the loader accepts: spellings, the docs' shortcuts and repairs, JSON, files, stdin."""

import io

import pytest

from trimesh.config import (DestinationPolicy, EgressRule, MeshConfig, RouteRule, infer_kind,
                            load_file, load_mesh_config, load_text, lookup_kind)
from trimesh.errors import ConfigError

REVIEWS = """apiVersion: config.istio.io/v1alpha2
kind: RouteRule
metadata:
  name: reviews-default
spec:
  destination:
    name: reviews
  route:
  - labels:
      version: v1
    weight: 100
"""


def test_two_documents_load_in_order():
    text = REVIEWS.replace("reviews-default", "a") + "---\n" + REVIEWS.replace("reviews-default", "b")
    assert [o.name for o in load_text(text)] == ["a", "b"]


def test_empty_documents_are_skipped():
    assert [o.name for o in load_text("---\n" + REVIEWS + "---\n---\n# just a comment\n")] == [
        "reviews-default"]
    assert load_text("") == [] and load_text("# nothing\n") == []


def test_namespace_defaults():
    (obj,) = load_text(REVIEWS)
    assert obj.namespace == "default"
    (obj,) = load_text(REVIEWS, default_namespace="prod")
    assert obj.namespace == "prod"
    (obj,) = load_text(REVIEWS.replace("  name: reviews-default\n",
                                       "  name: reviews-default\n  namespace: qa\n"),
                       default_namespace="prod")
    assert obj.namespace == "qa"


def test_snake_case_struct_fields_camel_case_output_map_keys_untouched():
    text = """kind: RouteRule
metadata: {name: x}
spec:
  destination: {name: httpbin}
  http_req_retries: {simple_retry: {attempts: 2, per_try_timeout: 1s}}
  append_headers: {x_snake_key: a, X-Camel: b}
  route:
  - labels: {app_version: v1_x}
"""
    (obj,) = load_text(text)
    assert obj.spec.http_req_retries.simple_retry.per_try_timeout == 1.0
    assert obj.spec.append_headers == {"x_snake_key": "a", "X-Camel": "b"}
    assert obj.spec.route[0].labels == {"app_version": "v1_x"}
    spec = obj.to_dict()["spec"]
    assert "httpReqRetries" in spec and "appendHeaders" in spec


def test_mixer_dimension_keys_are_not_renamed():
    text = """kind: metric
metadata: {name: m, namespace: istio-system}
spec:
  value: "1"
  dimensions:
    destination_service: destination.service
    response_code: response.code | 200
  monitored_resource_type: '"UNSPECIFIED"'
"""
    (obj,) = load_text(text)
    assert obj.spec.dimensions == {"destination_service": "destination.service",
                                   "response_code": "response.code | 200"}
    assert obj.to_dict()["spec"]["monitoredResourceType"] == '"UNSPECIFIED"'


def test_numbers_and_booleans_in_expression_fields_become_text():
    text = "kind: metric\nmetadata: {name: m}\nspec:\n  value: 2\n  dimensions: {code: 200, ok: true}\n"
    (obj,) = load_text(text)
    assert obj.spec.value == "2" and obj.spec.dimensions == {"code": "200", "ok": "true"}
    (rule,) = load_text("kind: rule\nmetadata: {name: r}\nspec:\n  match: true\n")
    assert rule.spec.match == "true"


def test_header_names_lower_cased_and_bare_strings_mean_exact():
    text = REVIEWS + "  match:\n    request:\n      headers:\n        Foo: bar\n        X-User: {prefix: ja}\n"
    (obj,) = load_text(text)
    headers = obj.spec.match.request.headers
    assert set(headers) == {"foo", "x-user"}
    assert headers["foo"].exact == "bar" and headers["foo"].regex is None
    assert headers["x-user"].prefix == "ja"


def test_header_names_differing_only_in_case_are_refused():
    text = REVIEWS + "  match:\n    request:\n      headers:\n        Foo: a\n        foo: b\n"
    with pytest.raises(ConfigError, match="given twice") as info:
        load_text(text)
    assert info.value.path == "$.spec.match.request.headers.foo"


def test_enum_values_are_case_insensitive():
    text = "kind: prometheus\nmetadata: {name: h}\nspec:\n  metrics:\n  - instance_name: a.metric.ns\n    kind: counter\n"
    (obj,) = load_text(text)
    assert obj.spec.metrics[0].kind == "COUNTER"


@pytest.mark.parametrize("value", ["*.foo.com", "*-bar.foo.com", "*"])
def test_unquoted_wildcards_are_quoted_and_noted(value):
    notes = []
    text = (f"kind: EgressRule\nmetadata: {{name: e}}\nspec:\n  destination:\n    service: {value}   # all of them\n"
            "  ports:\n    - port: 80\n")
    if value == "*":
        with pytest.raises(ConfigError, match="wildcard"):  # loads as YAML, refused as a host
            load_text(text, notes=notes)
    else:
        (obj,) = load_text(text, source="egress.yaml", notes=notes)
        assert obj.spec.destination.service == value
    assert notes == [f"egress.yaml:5: quoted {value} (an unquoted '*' starts a YAML alias)"
                     if value != "*" else f"<stdin>:5: quoted * (an unquoted '*' starts a YAML alias)"]


def test_real_aliases_are_left_alone():
    text = ("kind: RouteRule\nmetadata: {name: x}\nspec:\n  destination: &d {name: reviews}\n"
            "  mirror: *d\n")
    notes = []
    (obj,) = load_text(text, notes=notes)
    assert obj.spec.mirror.name == "reviews" and notes == []


def test_documents_indented_as_the_docs_render_them():
    text = "".join(" " + ln + "\n" for ln in REVIEWS.splitlines()) + " ---\n" + "".join(
        " " + ln + "\n" for ln in REVIEWS.replace("reviews-default", "second").splitlines())
    notes = []
    objects = load_text(text, source="t.yaml", notes=notes)
    assert [o.name for o in objects] == ["reviews-default", "second"]
    assert notes[0].startswith("t.yaml:1: removed the indentation of 1 space(s)")
    # line numbers still point into the original text
    with pytest.raises(ConfigError) as info:
        load_text(text.replace("weight: 100", "weight: 101"), source="t.yaml")
    assert info.value.line == 11


def test_api_versions():
    for api in ("config.istio.io/v1alpha2", "config.istio.io/v1alpha1", "config.istio.io/v1beta1"):
        (obj,) = load_text(REVIEWS.replace("config.istio.io/v1alpha2", api))
        assert obj.api_version == "config.istio.io/v1alpha2"
    (obj,) = load_text(REVIEWS.replace("apiVersion: config.istio.io/v1alpha2\n", ""))
    assert obj.api_version == "config.istio.io/v1alpha2"


def test_json_object_array_and_api_list():
    obj = '{"apiVersion": "config.istio.io/v1alpha2", "kind": "RouteRule", "metadata": {"name": "%s"}, "spec": {"destination": {"name": "reviews"}}}'
    assert [o.name for o in load_text(obj % "a")] == ["a"]
    assert [o.name for o in load_text("[" + obj % "a" + ", " + obj % "b" + "]")] == ["a", "b"]
    assert [o.name for o in load_text('{"revision": 3, "objects": [' + obj % "c" + "]}")] == ["c"]
    with pytest.raises(ConfigError) as info:
        load_text("[" + obj % "a" + ",\n" + (obj % "b").replace('"reviews"', '""') + "]")
    assert info.value.document == 1 and info.value.line == 2


def test_bytes_with_bom():
    (obj,) = load_text("\ufeff".encode() + REVIEWS.encode())
    assert obj.name == "reviews-default"


def test_load_file_and_stdin(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(REVIEWS)
    (obj,) = load_file(path)
    assert isinstance(obj.spec, RouteRule)
    (obj2,) = load_file("-", stdin=io.BytesIO(REVIEWS.encode()), default_namespace="prod")
    assert obj2.namespace == "prod"
    with pytest.raises(ConfigError) as info:
        load_file(str(path).replace("rules", "missing"))
    assert "cannot read" in info.value.message
    bad = tmp_path / "bad.yaml"
    bad.write_text(REVIEWS.replace("weight: 100", "weight: 200"))
    with pytest.raises(ConfigError) as info:
        load_file(bad)
    assert str(info.value).startswith(f"{bad}:11, $.spec.route[0].weight")
    with pytest.raises(ConfigError, match="<stdin>:11"):
        load_file("-", stdin=io.BytesIO(bad.read_bytes()))


def test_kind_inference_and_default_kind():
    text = "metadata: {name: p}\nspec:\n  destination: {name: reviews}\n  loadBalancing: {name: RANDOM}\n"
    with pytest.raises(ConfigError, match="looks like a DestinationPolicy"):
        load_text(text)
    (obj,) = load_text(text, infer_kind=True)
    assert isinstance(obj.spec, DestinationPolicy)
    (obj,) = load_text(text, default_kind="destinationpolicy")
    assert isinstance(obj.spec, DestinationPolicy)
    # a spec every traffic kind accepts cannot be inferred
    with pytest.raises(ConfigError, match="missing 'kind'"):
        load_text("metadata: {name: p}\nspec:\n  destination: {name: reviews}\n", infer_kind=True)


@pytest.mark.parametrize("spec,kind", [
    ({"circuitBreaker": {}}, "DestinationPolicy"),
    ({"destination": {}, "ports": []}, "EgressRule"),
    ({"route": [], "httpFault": {}}, "RouteRule"),
    ({"quotas": [], "minDeduplicationDuration": "1s"}, "memquota"),
    ({"quota_specs": []}, "QuotaSpecBinding"),
    ({"destination": {}}, None),
    ({}, None),
])
def test_infer_kind(spec, kind):
    info, why = infer_kind(spec)
    assert (info.kind if info else None) == kind
    if kind:
        assert why.startswith("has ")


def test_egress_rule_fields():
    (obj,) = load_text("kind: EgressRule\nmetadata: {name: e}\nspec:\n  destination: {service: httpbin.org}\n"
                       "  ports: [{port: 80}]\n")
    assert isinstance(obj.spec, EgressRule)
    assert obj.spec.ports[0].protocol == "http" and obj.spec.use_egress_proxy is False


def test_kubernetes_output_fields_are_dropped():
    text = REVIEWS.replace("  name: reviews-default\n", "  name: reviews-default\n  uid: abc\n"
                           "  creationTimestamp: 2018-01-01T00:00:00Z\n  resourceVersion: '7'\n") + "status: {}\n"
    (obj,) = load_text(text)
    assert obj.revision == 7 and obj.to_dict()["metadata"] == {
        "name": "reviews-default", "namespace": "default", "resourceVersion": "7"}


def test_mesh_config_defaults_and_docs_fields():
    mesh = load_mesh_config("")
    assert mesh == MeshConfig()
    assert (mesh.auth_policy, mesh.mtls_excluded_services) == ("NONE", ["kubernetes.default.svc.cluster.local"])
    assert (mesh.default_config.connect_timeout, mesh.default_config.drain_duration,
            mesh.default_config.parent_shutdown_duration, mesh.rds_refresh_delay) == (10, 45, 60, 30)
    assert mesh.mixer_address == "127.0.0.1:9091" and mesh.enable_tracing is True
    mesh = load_mesh_config("authPolicy: MUTUAL_TLS\nmtls_excluded_services: []\n"
                            "defaultConfig:\n  connectTimeout: 1s\n  drainDuration: 2s\n"
                            "  parentShutdownDuration: 1m0s\n  configPath: /etc/istio/proxy\n")
    assert mesh.auth_policy == "MUTUAL_TLS" and mesh.mtls_excluded_services == []
    assert mesh.default_config.parent_shutdown_duration == 60
    with pytest.raises(ConfigError) as info:
        load_mesh_config("authPolicy: SOMETIMES\n", source="mesh.yaml")
    assert (info.value.path, info.value.line) == ("$.authPolicy", 1)
    with pytest.raises(ConfigError, match="host:port"):
        load_mesh_config("mixerAddress: nowhere\n")
    obj_form = "kind: MeshConfig\nmetadata: {name: mesh}\nspec: {authPolicy: MUTUAL_TLS}\n"
    assert load_mesh_config(obj_form).auth_policy == "MUTUAL_TLS"
    assert lookup_kind("mesh").kind == "MeshConfig"
