"""Config validation type-checks the Mixer kinds' expressions (the hook trimesh.mixer installs)."""

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import trimesh.mixer  # noqa: F401  (installs the checker)
from trimesh.cli._main import cli
from trimesh.config import load_text, set_expression_checker
from trimesh.errors import ConfigError
from trimesh.mixer import check_config_expression
from trimesh.mixer._expr_config import install_expression_checker

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
sys.path.insert(0, str(FIXTURES.parent / "config"))
from test_fixtures import LOADS  # noqa: E402  (the docs' files that must load)

RULE = """apiVersion: config.istio.io/v1alpha2
kind: rule
metadata:
  name: denyreviewsv3
spec:
  match: {match}
  actions:
  - handler: denyreviewsv3handler.denier
    instances: [denyreviewsv3request.checknothing]
"""


def template(kind, body):
    return f"apiVersion: config.istio.io/v1alpha2\nkind: {kind}\nmetadata:\n  name: x\nspec:\n{body}"


@pytest.mark.parametrize("fixture", sorted(LOADS))
def test_the_docs_files_type_check(fixture):
    assert load_text((FIXTURES / fixture).read_text(), source=fixture)


@pytest.mark.parametrize("match, path, message", [
    ('destination.labels["app"] == "ratings" && source.lables["app"]=="reviews"', "$.spec.match",
     "column 43: unknown attribute 'source.lables' (did you mean 'source.labels'?)"),
    ('request.size == "x"', "$.spec.match",
     "column 14: '==' needs operands of one type: request.size is INT64, \"x\" is STRING"),
    ("destination.service", "$.spec.match", "column 1: the expression is STRING, BOOL is needed here"),
    ('"source.user = \\"x\\""', "$.spec.match", "column 13: '=' is not an operator: compare with '=='"),
])
def test_a_bad_match_is_refused_with_path_line_and_column(match, path, message):
    with pytest.raises(ConfigError) as info:
        load_text(RULE.format(match=match), source="rule.yaml")
    err = info.value
    assert (err.path, err.line, err.source) == (path, 6, "rule.yaml")
    assert err.message == message
    assert str(err) == f"rule.yaml:6, {path}: {message}"


@pytest.mark.parametrize("match", ['"true"', '""', "true", 'source.namespace != destination.namespace'])
def test_good_matches_load(match):
    (obj,) = load_text(RULE.format(match=match))
    assert obj.kind == "rule"


@pytest.mark.parametrize("kind, body, path, message", [
    ("metric", '  value: "2"\n  dimensions:\n    code: response.code | "200"\n',
     '$.spec.dimensions.code',
     "column 15: '|' needs operands of one type: response.code is INT64, \"200\" is STRING"),
    ("metric", "  value: response.duraton | \"0ms\"\n", "$.spec.value",
     "column 1: unknown attribute 'response.duraton' (did you mean 'response.duration'?)"),
    ("metric", '  value: "1"\n  monitored_resource_type: UNSPECIFIED\n', "$.spec.monitoredResourceType",
     "column 1: unknown attribute 'UNSPECIFIED'"),
    ("listentry", "  value: source.labels\n", "$.spec.value",
     "column 1: the expression is STRING_MAP, STRING is needed here"),
    ("quota", '  dimensions:\n    source: source.labels["app"] || "x"\n', "$.spec.dimensions.source",
     "column 1: '||' needs BOOL operands; source.labels[\"app\"] is STRING"),
    ("logentry", "  timestamp: request.size\n", "$.spec.timestamp",
     "column 1: the expression is INT64, TIMESTAMP is needed here"),
    ("logentry", "  severity: warning\n", "$.spec.severity", "column 1: unknown attribute 'warning'"),
    ("logentry", '  variables:\n    "a b": request.path ==\n', '$.spec.variables["a b"]',
     "column 16: expected an attribute, a literal or '(', found the end of the expression"),
])
def test_bad_instance_expressions_are_refused(kind, body, path, message):
    with pytest.raises(ConfigError) as info:
        load_text(template(kind, body))
    assert (info.value.path, info.value.message) == (path, message)


def test_the_checker_is_a_hook_config_calls():
    bad = RULE.format(match="nope == 1")
    set_expression_checker(None)
    try:
        assert load_text(bad)  # without trimesh.mixer's checker only the structure is checked
    finally:
        install_expression_checker()
    with pytest.raises(ConfigError, match="unknown attribute 'nope'"):
        load_text(bad)
    assert check_config_expression("a.b", None) == (1, "unknown attribute 'a.b'")
    assert check_config_expression('request.path == "/"', "BOOL") is None


def test_trimesh_validate_refuses_a_bad_match(tmp_path):
    path = tmp_path / "rule.yaml"
    path.write_text(RULE.format(match='destination.labels["app"] == 7'))
    result = CliRunner().invoke(cli, ["validate", "-f", str(path)],
                                env={"TRIMESH_CONTROL": "http://127.0.0.1:9"})
    assert result.exit_code != 0
    assert (f"{path}:6, $.spec.match: column 27: '==' needs operands of one type: "
            'destination.labels["app"] is STRING, 7 is INT64') in result.output


def test_the_control_api_refuses_a_bad_match():
    from trimesh.control import _api

    with pytest.raises(_api.HTTPError) as info:
        _api._parse_object(RULE.format(match="source.user == 1").encode())
    assert info.value.status == 400
    assert ("$.spec.match: column 13: '==' needs operands of one type: source.user is STRING, "
            "1 is INT64") in info.value.message
