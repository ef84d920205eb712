"""The attribute vocabulary, manifests and the attribute bag."""

import ast
from pathlib import Path

import pytest

import trimesh.mixer as mixer
from trimesh.config import load_text
from trimesh.errors import ConfigError
from trimesh.mixer import MISSING, VOCABULARY, Bag, Manifest, ValueType


def test_value_types_are_the_proto_enum():
    from trimesh.config import VALUE_TYPES

    assert tuple(t.value for t in ValueType) == VALUE_TYPES
    assert ValueType("INT64") is ValueType.INT64 and ValueType.INT64 == "INT64"


@pytest.mark.parametrize("name, vtype", [
    # concepts.md §11.4 and the docs' manifest example (L1791-1811)
    ("source.ip", "IP_ADDRESS"), ("source.name", "STRING"), ("target.name", "STRING"),
    ("origin.user", "STRING"), ("request.time", "TIMESTAMP"), ("request.method", "STRING"),
    ("response.code", "INT64"), ("request.size", "INT64"), ("request.headers", "STRING_MAP"),
    ("response.duration", "DURATION"), ("destination.labels", "STRING_MAP"),
    ("destination.service", "STRING"), ("source.labels", "STRING_MAP"), ("source.user", "STRING"),
    ("destination.port", "INT64"), ("connection.sent.bytes", "INT64"),
    ("connection.received.bytes_total", "INT64"), ("connection.duration", "DURATION"),
    ("connection.mtls", "BOOL"), ("context.protocol", "STRING"), ("context.time", "TIMESTAMP"),
    ("request.auth.principal", "STRING"), ("check.error_code", "INT64"),
    ("source.serviceAccount", "STRING"), ("request.api_key", "STRING"),
])
def test_vocabulary(name, vtype):
    assert Manifest.default()[name] is ValueType(vtype)
    assert VOCABULARY[name][1]  # every attribute is described


def test_every_attribute_name_is_dotted_lowercase_or_the_manifests_camelcase():
    for name in VOCABULARY:
        assert "." in name and name == name.strip()
        assert name.replace("serviceAccount", "sa").islower() or name.replace(
            "serviceAccount", "").replace(".", "").replace("_", "").isalnum()


def test_the_docs_manifest_agrees_with_the_vocabulary():
    (obj,) = _docs_manifest()
    extended = Manifest.default().with_manifests([obj.spec])
    assert extended == Manifest.default()  # nothing new, nothing in conflict


def _docs_manifest():
    return load_text("""
apiVersion: config.istio.io/v1alpha2
kind: attributemanifest
metadata: {name: istioproxy, namespace: istio-system}
spec:
  revision: "1"
  attributes:
    source.name: {valueType: STRING, description: The name of the source.}
    target.name: {valueType: STRING, description: The name of the target}
    source.ip: {valueType: IP_ADDRESS, description: Did you know that descriptions are optional?}
    origin.user: {valueType: STRING}
    request.time: {valueType: TIMESTAMP}
    request.method: {valueType: STRING}
    response.code: {valueType: INT64}
""")


def test_manifest_extension():
    base = Manifest.default()
    ext = base.extended({"my.attr": "INT64", "source.ip": ValueType.IP_ADDRESS})
    assert ext["my.attr"] is ValueType.INT64 and "my.attr" not in base
    assert len(ext) == len(base) + 1
    assert hash(ext) == hash(base.extended({"my.attr": "INT64"}))
    with pytest.raises(ConfigError, match="'source.ip' is IP_ADDRESS already; m declares it STRING"):
        base.extended({"source.ip": "STRING"}, source="m")
    with pytest.raises(ConfigError, match="unknown valueType 'TEXT'"):
        base.extended({"x.y": "TEXT"})
    assert base.suggest("destination.servce") == "destination.service"
    assert base.suggest("zzz") is None
    assert repr(base) == f"<Manifest {len(VOCABULARY)} attributes>"


def test_bag_distinguishes_missing_from_empty():
    values = {"request.path": "", "source.labels": {}}
    bag = Bag(values)
    assert "request.path" in bag and bag["request.path"] == "" and bag.get("request.path") == ""
    assert "request.host" not in bag and bag.get("request.host") is MISSING
    assert bag.get("request.host", None) is None
    assert not MISSING and repr(MISSING) == "MISSING"
    with pytest.raises(KeyError):
        bag["request.host"]
    assert len(bag) == 2 and sorted(bag) == ["request.path", "source.labels"]
    assert bag.values_mapping is values  # not copied
    more = bag.with_attributes({"request.host": "x"})
    assert more["request.host"] == "x" and "request.host" not in bag
    assert repr(Bag({"a.b": 1})) == "Bag({'a.b': 1})"
    assert len(Bag()) == 0 and "x" not in Bag()


def test_mixer_expression_modules_are_pure():
    forbidden = {"trio", "socket", "ssl", "time", "random", "asyncio"}
    root = Path(mixer.__file__).parent
    mine = [root / "_attributes.py", *root.glob("_expr*.py")]
    assert len(mine) >= 4
    for path in mine:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                mods = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                mods = [(node.module or "").split(".")[0]]
            else:
                continue
            assert not forbidden & set(mods), f"{path.name} imports {mods}"


def test_public_surface():
    for name in ("ValueType", "VOCABULARY", "Manifest", "Bag", "MISSING", "Compiler", "Expression",
                 "EvaluationError", "ExpressionError", "compile_expression", "parse_expression",
                 "format_expression", "parse_go_duration", "parse_timestamp",
                 "check_config_expression"):
        assert hasattr(mixer, name), name
    from trimesh.errors import TrimeshError

    assert issubclass(mixer.ExpressionError, TrimeshError)
    assert issubclass(mixer.EvaluationError, TrimeshError)
