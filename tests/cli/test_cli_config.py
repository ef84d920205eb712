"""istioctl's verbs against a real control process (one per module), through click's CliRunner."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import click
import msgspec
import pytest
from click.testing import CliRunner

from trimesh.cli._main import cli
from trimesh.config import (all_kinds, check_references, dump_yaml, load_text, lookup_kind,
                            resolve_mixer_reference)
from trimesh.control import ControlClient
from trimesh.errors import ConfigError

SAMPLES = {
    "RouteRule": """\
apiVersion: config.istio.io/v1alpha2
kind: RouteRule
metadata:
  name: reviews-test-v2
spec:
  destination:
    name: reviews
  precedence: 2
  match:
    request:
      headers:
        cookie:
          regex: "^(.*?;)?(user=jason)(;.*)?$"
  route:
  - labels:
      version: v2
  httpReqTimeout:
    simpleTimeout:
      timeout: 1.5s
  httpFault:
    delay:
      percent: 10
      fixedDelay: 5s
""",
    "DestinationPolicy": """\
apiVersion: config.istio.io/v1alpha2
kind: DestinationPolicy
metadata:
  name: httpbin-circuit-breaker
  namespace: istio-samples
spec:
  destination:
    name: httpbin
    labels:
      version: v1
  circuitBreaker:
    simpleCb:
      maxConnections: 1
      httpMaxPendingRequests: 1
      sleepWindow: 3m
      httpDetectionInterval: 1s
      httpMaxEjectionPercent: 100
      httpConsecutiveErrors: 1
      httpMaxRequestsPerConnection: 1
""",
    "EgressRule": """\
apiVersion: config.istio.io/v1alpha2
kind: EgressRule
metadata:
  name: googleapis
spec:
  destination:
    service: "*.googleapis.com"
  ports:
  - port: 443
    protocol: https
""",
    "Ingress": """\
apiVersion: extensions/v1beta1
kind: Ingress
metadata:
  name: gateway
  annotations:
    kubernetes.io/ingress.class: istio
spec:
  rules:
  - http:
      paths:
      - path: /productpage
        backend:
          serviceName: productpage
          servicePort: 9080
""",
}


@pytest.fixture
def run(control, tmp_path):
    runner = CliRunner()

    def invoke(*args, input=None):
        result = runner.invoke(cli, [*args, "--control", control.url] if args[0] not in
                               ("validate", "completion") else list(args), input=input,
                               catch_exceptions=False)
        return result

    return invoke


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text) if isinstance(text, str) else path.write_bytes(text)
    return str(path)


def everything(control):
    """Every stored object with its revision, and the store's revision."""
    with ControlClient(control.url) as client:
        listing = client.list()
        version = client.version()
    return version["revision"], sorted((o["kind"], o["metadata"]["namespace"], o["metadata"]["name"],
                                        o["metadata"]["resourceVersion"]) for o in listing["objects"])


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_create_then_get_yaml_round_trips(run, tmp_path, kind):
    path = write(tmp_path, "in.yaml", SAMPLES[kind])
    (original,) = load_text(SAMPLES[kind])
    result = run("create", "-f", path)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Created config {original.ref} at revision ")
    revision = int(result.stdout.split()[-1])
    got = run("get", lookup_kind(kind).plural, original.name, "-n", original.namespace, "-o", "yaml")
    assert got.exit_code == 0, got.output
    assert got.stdout.endswith("---\n")
    (back,) = load_text(got.stdout)
    assert back.spec == original.spec and back.key == original.key
    assert back.labels == original.labels and back.annotations == original.annotations
    assert back.revision == revision
    # get -o yaml | replace -f - is accepted and bumps the revision only.
    again = run("replace", "-f", "-", input=got.stdout)
    assert again.exit_code == 0, again.output
    assert again.stdout == f"Updated config {original.ref} at revision {revision + 1}\n"
    as_json = run("get", kind, original.name, "-n", original.namespace, "-o", "json")
    assert json.loads(as_json.stdout)["spec"] == original.to_dict()["spec"]


def test_replace_bumps_revision_and_changes_spec(run, tmp_path):
    text = SAMPLES["RouteRule"].replace("reviews-test-v2", "bump")
    path = write(tmp_path, "a.yaml", text)
    first = int(run("create", "-f", path).stdout.split()[-1])
    write(tmp_path, "a.yaml", text.replace("version: v2", "version: v3"))
    result = run("replace", "-f", path)
    assert result.exit_code == 0
    assert result.stdout == f"Updated config route-rule/default/bump at revision {first + 1}\n"
    (back,) = load_text(run("get", "routerule", "bump", "-o", "yaml").stdout)
    assert back.spec.route[0].labels == {"version": "v3"}


def test_create_existing_and_replace_missing_fail(run, tmp_path, control):
    path = write(tmp_path, "a.yaml", SAMPLES["RouteRule"].replace("reviews-test-v2", "twice"))
    assert run("create", "-f", path).exit_code == 0
    before = everything(control)
    result = run("create", "-f", path)
    assert result.exit_code == 1
    assert "route-rule/default/twice already exists" in result.stderr and path in result.stderr
    missing = write(tmp_path, "m.yaml", SAMPLES["RouteRule"].replace("reviews-test-v2", "never"))
    result = run("replace", "-f", missing)
    assert result.exit_code == 1 and "route-rule/default/never" in result.stderr
    assert everything(control) == before


def test_delete_by_name_and_by_file(run, tmp_path, control):
    docs = "---\n".join(SAMPLES["RouteRule"].replace("reviews-test-v2", f"d{i}") for i in range(3))
    path = write(tmp_path, "d.yaml", docs)
    created = run("create", "-f", path)
    assert created.exit_code == 0 and created.stdout.count("Created config") == 3
    result = run("delete", "routerules", "d0", "d1")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert [line.rsplit(" ", 1)[0] for line in lines] == [
        "Deleted config route-rule/default/d0 at revision", "Deleted config route-rule/default/d1 at revision"]
    assert int(lines[1].split()[-1]) == int(lines[0].split()[-1]) + 1
    result = run("delete", "-f", path)  # d0 and d1 are gone: d2 is deleted, exit 1 names the others
    assert result.exit_code == 1
    assert "Deleted config route-rule/default/d2" in result.stdout
    assert "route-rule/default/d0 not found" in result.stderr
    assert not any(name.startswith("d") and len(name) == 2 for _, _, name, _ in everything(control)[1])


def test_get_missing_object_exits_1_naming_it(run):
    result = run("get", "routerule", "no-such-rule")
    assert result.exit_code == 1 and "route-rule/default/no-such-rule not found" in result.stderr


def test_get_short_table_namespaces_and_aliases(run, tmp_path):
    base = SAMPLES["RouteRule"].replace("reviews-test-v2", "ns-rule")
    assert run("create", "-n", "bookinfo", "-f", write(tmp_path, "n.yaml", base)).exit_code == 0
    other = base.replace("ns-rule", "a-ns-rule")
    assert run("create", "-n", "bookinfo-2", "-f", write(tmp_path, "o.yaml", other)).exit_code == 0
    default = run("get", "routerules")
    assert default.stdout.splitlines()[0].split() == ["NAME", "KIND", "NAMESPACE"]
    assert "ns-rule" not in default.stdout
    for alias in ("routerule", "routerules", "route-rule", "RouteRule", "ROUTERULES"):
        result = run("get", alias, "-n", "bookinfo")
        assert result.exit_code == 0
        assert result.stdout == ("NAME      KIND                                 NAMESPACE\n"
                                 "ns-rule   RouteRule.v1alpha2.config.istio.io   bookinfo\n")
    rows = [line.split() for line in run("get", "rr", "--all-namespaces").stdout.splitlines()[1:]]
    assert ["ns-rule", "RouteRule.v1alpha2.config.istio.io", "bookinfo"] in rows
    assert ["a-ns-rule", "RouteRule.v1alpha2.config.istio.io", "bookinfo-2"] in rows
    assert rows == sorted(rows, key=lambda r: (r[0], r[2]))  # by name, then namespace


def test_multi_document_create_validates_all_first(run, tmp_path, control):
    good = SAMPLES["RouteRule"].replace("reviews-test-v2", "m-good")
    bad = SAMPLES["RouteRule"].replace("reviews-test-v2", "m-bad").replace("timeout: 1.5s", "timeout: soon")
    before = everything(control)
    result = run("create", "-f", write(tmp_path, "m.yaml", "---\n".join([good, good.replace("m-good", "m2"), bad])))
    assert result.exit_code == 1
    assert "document 3" in result.stderr and "$.spec.httpReqTimeout.simpleTimeout.timeout" in result.stderr
    assert everything(control) == before  # nothing was sent


def test_multi_document_create_stops_at_first_refused_write(run, tmp_path, control):
    docs = [SAMPLES["RouteRule"].replace("reviews-test-v2", n) for n in ("s1", "s2", "s3")]
    assert run("create", "-f", write(tmp_path, "s2.yaml", docs[1])).exit_code == 0
    result = run("create", "-f", write(tmp_path, "s.yaml", "---\n".join(docs)))
    assert result.exit_code == 1
    assert result.stdout.startswith("Created config route-rule/default/s1 ")
    assert "route-rule/default/s2 already exists" in result.stderr
    assert "document 2 of 3" in result.stderr and "1 of 3 objects created before it, 1 not attempted" in result.stderr
    names = {name for _, _, name, _ in everything(control)[1]}
    assert {"s1", "s2"} <= names and "s3" not in names


BIG = ("kind: RouteRule\nmetadata:\n  name: big\n  annotations:\n    blob: " + "x" * (10 * 1024 * 1024)
       + "\nspec:\n  destination: {name: reviews}\n")
H = "apiVersion: config.istio.io/v1alpha2\nkind: RouteRule\nmetadata:\n  name: bad\nspec:\n"
# (id, text, what the message says, where: ":LINE, FIELD PATH: " or ":LINE: " after the file name)
BAD_INPUTS = [
    ("malformed-yaml", "kind: RouteRule\nmetadata: {name: x\nspec: {}\n", "invalid YAML", ":3: "),
    ("non-mapping", "- a\n- b\n", "a config document must be a mapping", ":1, $: "),
    ("unknown-kind", "kind: Frobnicator\nmetadata: {name: x}\n", "unknown kind 'Frobnicator'", ":1, $.kind: "),
    ("missing-kind", "metadata: {name: x}\nspec: {}\n", "missing 'kind'", ":1, $.kind: "),
    ("missing-kind-looks-like", "apiVersion: config.istio.io/v1alpha2\nmetadata:\n  name: bad\nspec:\n"
     "  destination: {name: reviews}\n  circuitBreaker:\n    simpleCb: {maxConnections: 100}\n",
     "the spec looks like a DestinationPolicy (has circuitBreaker); add 'kind: DestinationPolicy'",
     ":1, $.kind: "),
    ("weight-above-100", H + "  destination: {name: reviews}\n  route:\n  - labels: {version: v1}\n"
                             "    weight: 120\n", "weight 120 is outside 0–100", ":9, $.spec.route[0].weight: "),
    ("negative-weight", H + "  destination: {name: reviews}\n  route:\n  - weight: -10\n  - weight: 110\n",
     "weight -10 is outside 0–100", ":8, $.spec.route[0].weight: "),
    ("weights-not-100", H + "  destination: {name: reviews}\n  route:\n  - labels: {version: v1}\n    weight: 50\n"
                            "  - labels: {version: v2}\n    weight: 20\n", "add up to 70, not 100",
     ":7, $.spec.route: "),
    ("bad-regex", H + "  destination: {name: reviews}\n  match:\n    request:\n      headers:\n"
                      "        uri:\n          regex: '(['\n", "does not compile",
     ":11, $.spec.match.request.headers.uri.regex: "),
    ("bad-duration", H + "  destination: {name: reviews}\n  httpReqTimeout:\n    simpleTimeout:\n"
                         "      timeout: 10x\n", "invalid duration '10x'",
     ":9, $.spec.httpReqTimeout.simpleTimeout.timeout: "),
    ("unknown-field", H + "  destination: {name: reviews}\n  bogusField: 1\n", "unknown field 'bogusField'",
     ":7, $.spec.bogusField: "),
    ("no-destination", H + "  route:\n  - labels: {version: v1}\n", "a destination is required",
     ":5, $.spec.destination: "),
    ("10MB", BIG, "larger than the limit of 2097152 bytes", ": "),  # refused unparsed: names the file
    ("binary", bytes(range(256)) * 64, "not UTF-8", ":2: "),
]


@pytest.mark.parametrize(("text", "what", "where"), [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_refused_and_changes_nothing(run, tmp_path, control, text, what, where):
    # An object the bad documents name exists, so a replace that slipped through would change it.
    valid = H + "  destination: {name: reviews}\n"
    created = run("create", "-f", "-", input=valid)
    assert created.exit_code == 0 or "already exists" in created.stderr
    before = everything(control)
    path = write(tmp_path, "bad.yaml", text)
    for verb in ("create", "replace", "validate"):
        result = run(verb, "-f", path)
        assert result.exit_code == 1, (verb, result.output[:500])
        assert result.stdout == ""  # errors go to stderr, nothing is reported as done
        assert result.stderr.startswith(f"Error: {path}{where}"), result.stderr[:500]
        assert what in result.stderr, result.stderr[:500]
        assert len(result.stderr) < 2000  # the message names the problem, it does not echo the input
    assert everything(control) == before


def test_validate_is_offline(tmp_path):
    path = write(tmp_path, "v.yaml", "---\n".join(SAMPLES.values()))
    result = CliRunner().invoke(cli, ["validate", "-f", path], env={"TRIMESH_CONTROL": "http://127.0.0.1:9"})
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [f"Valid config {o.ref}" for o in load_text("---\n".join(SAMPLES.values()))]


def test_unreachable_control_exits_1(tmp_path):
    path = write(tmp_path, "u.yaml", SAMPLES["RouteRule"])
    for args in (["create", "-f", path], ["get", "rr"], ["delete", "rr", "x"]):
        result = CliRunner().invoke(cli, args, env={"TRIMESH_CONTROL": "http://127.0.0.1:9"})
        assert result.exit_code == 1
        assert "cannot reach the control at http://127.0.0.1:9" in result.stderr


def test_missing_file_exits_1(run, tmp_path):
    result = run("create", "-f", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 1 and "nope.yaml" in result.stderr


def test_version_with_and_without_a_control(run):
    result = run("version")
    assert result.exit_code == 0
    client, control_line = result.stdout.splitlines()
    assert client == "trimesh version 0.1.0"
    assert control_line.startswith("control version 0.1.0 at http://127.0.0.1:")
    alone = CliRunner().invoke(cli, ["version", "--control", "http://127.0.0.1:9"])
    assert alone.exit_code == 0 and alone.stdout == "trimesh version 0.1.0\n"
    assert "cannot reach the control" in alone.stderr


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(shell, tmp_path):
    result = CliRunner().invoke(cli, ["completion", shell])
    assert result.exit_code == 0 and "_TRIMESH_COMPLETE" in result.stdout
    if shell == "bash" and shutil.which("bash"):
        check = subprocess.run(["bash", "-n"], input=result.stdout, text=True, capture_output=True)
        assert check.returncode == 0, check.stderr
        script = tmp_path / "completion.bash"
        script.write_text(result.stdout)
        sourced = subprocess.run(["bash", "-c", f"source {script} && complete -p trimesh"],
                                 text=True, capture_output=True)
        assert "_trimesh_completion trimesh" in sourced.stdout, sourced.stderr


def test_kind_arguments_complete_with_kind_names():
    from click.shell_completion import ShellComplete

    completions = ShellComplete(cli, {}, "trimesh", "_TRIMESH_COMPLETE").get_completions(["get"], "rou")
    assert {c.value for c in completions} == {"route-rule", "routerules"}


FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def _loadable_fixtures() -> list[Path]:
    """The docs' example files that are whole, valid documents (fragments are the loader's tests)."""
    found = []
    for path in sorted(FIXTURES.glob("*.yaml")):
        try:
            if load_text(path.read_bytes(), source=str(path)):
                found.append(path)
        except ConfigError:
            pass
    return found


@pytest.mark.parametrize("path", _loadable_fixtures(), ids=lambda p: p.stem)
def test_docs_examples_round_trip_through_the_control(run, path):
    originals = load_text(path.read_bytes(), source=str(path))
    created = run("create", "-f", str(path))
    if any(e.source.startswith("rule/") for e in check_references(originals)):
        # a rule whose handler or instances are in another file: refused at create (issue 13)
        assert created.exit_code == 1 and "$.spec.actions[0]" in created.output
        run("delete", "-f", str(path))  # the documents before the rule were created
        return
    assert created.exit_code == 0, created.output
    assert len(created.stdout.splitlines()) == len(originals)
    try:
        for obj in originals:
            got = run("get", obj.kind, obj.name, "-n", obj.namespace, "-o", "yaml")
            assert got.exit_code == 0, got.output
            (back,) = load_text(got.stdout)
            assert (back.key, back.spec, back.labels, back.annotations) == (
                obj.key, obj.spec, obj.labels, obj.annotations)
    finally:
        assert run("delete", "-f", str(path)).exit_code == 0


def _config_samples() -> dict[str, str]:
    """tests/config/config_samples.py: one document per kind, setting fields beyond the defaults."""
    path = Path(__file__).resolve().parent.parent / "config" / "config_samples.py"
    spec = importlib.util.spec_from_file_location("cli_config_samples", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SAMPLES


CONFIG_SAMPLES = _config_samples()


def test_config_samples_cover_every_kind():
    assert sorted(CONFIG_SAMPLES) == sorted(k.kind for k in all_kinds())


_MINIMAL_SPECS = {"prometheus": "{}", "metric": "{value: '1'}"}  # enough to be referenced


@contextlib.contextmanager
def _rule_references(run, obj):
    """A rule is refused at create unless its handler and instances exist (issue 13): create
    minimal ones first (the samples' kinds only), delete them after."""
    made = []
    if obj.kind == "rule":
        for action in obj.spec.actions:
            for ref in (action.handler, *action.instances):
                name, kind, ns = resolve_mixer_reference(ref, obj.namespace).split(".", 2)
                text = (f"apiVersion: config.istio.io/v1alpha2\nkind: {kind}\n"
                        f"metadata: {{name: {name}, namespace: {ns}}}\nspec: {_MINIMAL_SPECS[kind]}\n")
                assert run("create", "-f", "-", input=text).exit_code == 0
                made.append((kind, name, ns))
    try:
        yield
    finally:
        for kind, name, ns in made:
            run("delete", kind, name, "-n", ns)


@pytest.mark.parametrize("kind", sorted(CONFIG_SAMPLES))
def test_every_kind_round_trips_through_the_control(run, kind):
    """create -> get -o yaml gives the same object; replace bumps the revision; delete removes it."""
    (original,) = load_text(CONFIG_SAMPLES[kind], default_namespace="every-kind")
    with _rule_references(run, original):
        _round_trip(run, kind, original)


def _round_trip(run, kind, original):
    info = lookup_kind(kind)
    ref, ns = original.ref, original.namespace
    created = run("create", "-n", "every-kind", "-f", "-", input=CONFIG_SAMPLES[kind])
    assert created.exit_code == 0, created.output
    match = re.fullmatch(rf"Created config {re.escape(ref)} at revision (\d+)\n", created.stdout)
    assert match, created.stdout
    revision = int(match.group(1))
    try:
        got = run("get", info.plural.upper(), original.name, "-n", ns, "-o", "yaml")
        assert got.exit_code == 0, got.output
        (back,) = load_text(got.stdout)
        assert (back.key, back.spec, back.labels, back.annotations, back.revision) == (
            original.key, original.spec, original.labels, original.annotations, revision)
        replaced = run("replace", "-f", "-", input=got.stdout)
        assert replaced.stdout == f"Updated config {ref} at revision {revision + 1}\n"
        (again,) = load_text(run("get", kind, original.name, "-n", ns, "-o", "yaml").stdout)
        assert again.revision == revision + 1 and again.spec == original.spec
    finally:
        deleted = run("delete", info.type_name, original.name, "-n", ns)
    assert deleted.stdout == f"Deleted config {ref} at revision {revision + 2}\n"
    gone = run("get", kind, original.name, "-n", ns, "-o", "yaml")
    assert (gone.exit_code, gone.stdout, gone.stderr) == (1, "", f"Error: {ref} not found\n")


# CLI.md: "KIND accepts the kind's name in any case, singular or plural, and the docs' short forms"
CLI_MD_KIND_NAMES = [
    ("routerule", "RouteRule"), ("routerules", "RouteRule"), ("destinationpolicy", "DestinationPolicy"),
    ("destinationpolicies", "DestinationPolicy"), ("egressrule", "EgressRule"), ("egressrules", "EgressRule"),
    ("ingress", "Ingress"), ("ingresses", "Ingress"), ("ingress-rules", "Ingress"), ("rule", "rule"),
    ("rules", "rule"), ("metric", "metric"), ("metrics", "metric"), ("quota", "quota"), ("quotas", "quota"),
    ("memquota", "memquota"), ("memquotas", "memquota"), ("denier", "denier"), ("deniers", "denier"),
]


@pytest.mark.parametrize(("name", "kind"), CLI_MD_KIND_NAMES, ids=[n for n, _ in CLI_MD_KIND_NAMES])
def test_cli_md_kind_names_in_any_case(run, name, kind):
    (obj,) = load_text(CONFIG_SAMPLES[kind])
    obj = msgspec.structs.replace(obj, namespace=f"names-{name}")
    with _rule_references(run, obj):
        _names_in_any_case(run, name, kind, obj)


def _names_in_any_case(run, name, kind, obj):
    assert run("create", "-f", "-", input=dump_yaml([obj])).exit_code == 0
    try:
        for spelling in (name, name.upper(), name.capitalize()):
            result = run("get", spelling, "-n", obj.namespace)
            assert (result.exit_code, result.stderr) == (0, ""), (spelling, result.output)
            header, *rows = result.stdout.splitlines()
            assert header.split() == ["NAME", "KIND", "NAMESPACE"]
            assert [row.split() for row in rows] == [
                [obj.name, f"{kind}.v1alpha2.config.istio.io" if kind != "Ingress"
                 else "Ingress.v1beta1.extensions", obj.namespace]]
    finally:
        assert run("delete", kind, obj.name, "-n", obj.namespace).exit_code == 0


def test_every_name_of_every_kind_is_a_kind_argument(run):
    for info in all_kinds():
        for name in sorted(info.names()):
            for spelling in (name, name.upper()):
                result = run("get", spelling, "-n", "no-objects-here")
                assert (result.exit_code, result.stdout) == (0, "NAME   KIND   NAMESPACE\n"), spelling


def _commands(group: click.Group, path: tuple[str, ...] = ()):
    for name, command in sorted(group.commands.items()):
        yield (*path, name)
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))


@pytest.mark.parametrize("path", list(_commands(cli)), ids=" ".join)
def test_help_on_every_command(path):
    for flag in ("--help", "-h"):
        result = CliRunner().invoke(cli, [*path, flag], prog_name="trimesh")
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith(f"Usage: trimesh {' '.join(path)} ")


def test_usage_errors_exit_2_on_stderr(control):
    for args in (["get"], ["get", "rr", "--no-such-flag"], ["create", "--no-such-flag"],
                 ["get", "rr", "-o", "wide"], ["get", "rr", "-A", "-n", "x"], ["get", "nonsense"],
                 ["delete", "rr"], ["delete", "rr", "x", "-f", "x.yaml"], ["nosuchverb"]):
        result = CliRunner().invoke(cli, args, prog_name="trimesh", env={"TRIMESH_CONTROL": control.url})
        assert result.exit_code == 2, args
        assert result.stdout == "" and result.stderr.startswith("Usage: trimesh"), args
    assert "unknown kind 'nonsense'; known kinds: " in CliRunner().invoke(cli, ["get", "nonsense"]).stderr


def test_delete_of_one_missing_object_names_it_once(run):
    result = run("delete", "routerule", "ghost")
    assert result.exit_code == 1
    assert result.stderr == "Error: route-rule/default/ghost not found\n"
