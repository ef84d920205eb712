"""The kind catalogue: names, aliases, message names, API versions, categories."""

import pytest

import trimesh.config as config
from trimesh.config import ConfigObject, all_kinds, lookup_kind


@pytest.mark.parametrize("name,kind", [
    ("RouteRule", "RouteRule"), ("routerule", "RouteRule"), ("routerules", "RouteRule"),
    ("ROUTERULES", "RouteRule"), ("route-rule", "RouteRule"), (" rr ", "RouteRule"),
    ("destinationpolicy", "DestinationPolicy"), ("destinationpolicies", "DestinationPolicy"),
    ("destination-policy", "DestinationPolicy"), ("egressrule", "EgressRule"),
    ("egressrules", "EgressRule"), ("egress-rule", "EgressRule"), ("ingress", "Ingress"),
    ("ingresses", "Ingress"), ("ingress-rule", "Ingress"), ("ingressrules", "Ingress"),
    ("IngressRule", "Ingress"), ("rule", "rule"), ("rules", "rule"), ("metric", "metric"),
    ("metrics", "metric"), ("quota", "quota"), ("quotas", "quota"), ("memquota", "memquota"),
    ("memquotas", "memquota"), ("denier", "denier"), ("deniers", "denier"),
    ("listchecker", "listchecker"), ("listentries", "listentry"), ("logentries", "logentry"),
    ("prometheuses", "prometheus"), ("stdio", "stdio"), ("fluentd", "fluentd"),
    ("checknothing", "checknothing"), ("reportnothing", "reportnothing"),
    ("attributemanifests", "attributemanifest"), ("kuberneteses", "kubernetes"),
    ("kubernetesenv", "kubernetesenv"), ("QuotaSpec", "QuotaSpec"), ("quota-spec", "QuotaSpec"),
    ("quotaspecs", "QuotaSpec"), ("quotaspecbindings", "QuotaSpecBinding"),
    ("quota-spec-binding", "QuotaSpecBinding"), ("meshconfig", "MeshConfig"), ("mesh", "MeshConfig"),
])
def test_lookup(name, kind):
    assert lookup_kind(name).kind == kind


@pytest.mark.parametrize("name", ["routerulez", "", "pod", "rulee"])
def test_unknown(name):
    assert lookup_kind(name) is None


def test_every_name_means_one_kind():
    owner = {}
    for info in all_kinds():
        for name in info.names():
            assert owner.setdefault(name, info.kind) == info.kind, name
            assert lookup_kind(name) is info


def test_message_names_match_istioctl_output():
    # "Created config route-rule//ratings-test-v2", "Created config metric/istio-system/..."
    obj = ConfigObject(kind="RouteRule", name="ratings-test-v2", spec=config.RouteRule())
    assert obj.ref == "route-rule/default/ratings-test-v2"
    assert {k.kind: k.type_name for k in all_kinds() if k.category == "mixer"} == {
        "rule": "rule", "metric": "metric", "logentry": "logentry", "listentry": "listentry",
        "quota": "quota", "checknothing": "checknothing", "reportnothing": "reportnothing",
        "kubernetes": "kubernetes", "denier": "denier", "listchecker": "listchecker",
        "memquota": "memquota", "prometheus": "prometheus", "stdio": "stdio", "fluentd": "fluentd",
        "kubernetesenv": "kubernetesenv", "noop": "noop", "attributemanifest": "attributemanifest",
        "QuotaSpec": "quota-spec", "QuotaSpecBinding": "quota-spec-binding"}


def test_categories_roles_and_api_versions():
    roles = {k.kind: k.role for k in all_kinds() if k.category == "mixer"}
    assert roles["rule"] == "rule"
    assert {k for k, r in roles.items() if r == "handler"} == {
        "denier", "listchecker", "memquota", "prometheus", "stdio", "fluentd", "kubernetesenv", "noop"}
    assert {k for k, r in roles.items() if r == "instance"} == {
        "metric", "logentry", "listentry", "quota", "checknothing", "reportnothing", "kubernetes"}
    for info in all_kinds():
        assert info.category in ("traffic", "mixer", "mesh")
        if info.kind == "Ingress":
            assert info.api_version == "extensions/v1beta1"
        else:
            assert info.api_version == "config.istio.io/v1alpha2"
            assert "config.istio.io/v1beta1" in info.api_versions


def test_public_surface():
    for name in ("load_text", "load_file", "load_mesh_config", "object_from_dict", "dump_yaml",
                 "dump_json", "diff_snapshots", "SnapshotDiff", "Snapshot", "ConfigObject",
                 "lookup_kind", "all_kinds", "register_kind", "infer_kind", "check_references",
                 "MAX_INPUT_BYTES", "MixerRule", "MetricTemplate", "PrometheusParams",
                 "MemQuotaParams", "DenierParams", "ListCheckerParams", "StdioParams",
                 "FluentdParams", "QuotaSpec", "QuotaSpecBinding", "MeshConfig", "ProxyConfig",
                 "AttributeManifest", "mixer_fqn", "resolve_mixer_reference", "RouteRule"):
        assert hasattr(config, name), name
    for info in all_kinds():
        assert getattr(config, info.spec_type.__name__) is info.spec_type


def test_config_package_is_pure():
    import ast
    from pathlib import Path

    forbidden = {"trio", "socket", "ssl", "time", "random", "asyncio"}
    for path in Path(config.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                mods = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                mods = [(node.module or "").split(".")[0]]
            else:
                continue
            assert not forbidden & set(mods), f"{path.name} imports {mods}"
