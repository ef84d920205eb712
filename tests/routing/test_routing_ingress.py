"""Ingress objects compiled into an IngressTable (trimesh/routing/_ingress.py): the docs' path
semantics (traffic-tasks.md IN2–IN6), pure."""

from __future__ import annotations

from pathlib import Path

import pytest

from trimesh.config import Snapshot, load_text, make_instance
from trimesh.errors import ConfigError
from trimesh.routing import compile_ingress

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
HTTPBIN = [make_instance("httpbin", "127.0.0.5", 8000, labels={"version": "v1"})]


def table(text: str, instances=HTTPBIN):
    return compile_ingress(Snapshot(load_text(text), instances))


def ingress(name: str, paths: str, annotations: str = "kubernetes.io/ingress.class: istio",
            extra: str = "") -> str:
    notes = f"\n  annotations:\n    {annotations}" if annotations else ""
    return (f"apiVersion: extensions/v1beta1\nkind: Ingress\nmetadata:\n  name: {name}{notes}\n"
            f"spec:\n{extra}  rules:\n  - http:\n      paths:\n{paths}")


def path(p: str | None, port="8000", service="httpbin") -> str:
    line = f"      - path: {p}\n" if p is not None else "      - backend:\n"
    if p is not None:
        line += "        backend:\n"
    return line + f"          serviceName: {service}\n          servicePort: {port}\n"


SIMPLE = (FIXTURES / "simple-ingress.yaml").read_text()


@pytest.mark.parametrize("target,backend", [
    ("/status/200", "httpbin:8000"),   # IN1
    ("/status/418", "httpbin:8000"),   # IN3: /status/.* is the prefix /status/
    ("/delay/1?x=1", "httpbin:8000"),  # the query string is not matched
    ("/status", None),                 # no trailing slash: not the prefix
    ("/headers", None),                # IN2: not exposed
    ("/", None),
])
def test_the_docs_simple_ingress(target, backend):
    assert table(SIMPLE).match("ingress.example:80", target) == backend


def test_an_exact_path_and_no_regex():
    t = table(ingress("x", path("/ip")))
    assert t.match("h", "/ip") == "httpbin:8000" and t.match("h", "/ip/x") is None  # IN3
    # IN4: a regex is never a regex — refused when written, with the field path
    with pytest.raises(ConfigError, match=r"paths\[0\].path: path '/sta\[t\]us/\.\*'"):
        table(ingress("x", path("/sta[t]us/.*")))


@pytest.mark.parametrize("annotations,served", [
    ("kubernetes.io/ingress.class: istio", True),
    ("kubernetes.io/ingress.class: nginx", False),  # IN5: another controller's
    ("", True),                                     # no class: served
    ("ingress.kubernetes.io/rewrite-target: /", True),  # other annotations ignored
])
def test_the_class_annotation(annotations, served):
    t = table(ingress("x", path("/status/.*"), annotations))
    assert (t.match("h", "/status/1") is not None) is served
    assert t.statistics()["ingresses"] == int(served)


def test_a_named_service_port_resolves_against_the_instances_protocol_names():
    insts = [make_instance("httpbin", "127.0.0.5", 8000, protocol="http")]
    assert table(ingress("x", path("/status/.*", port="http")), insts).match(
        "h", "/status/1") == "httpbin:8000"  # IN6
    assert table(ingress("x", path("/status/.*", port="grpc")), insts).match(
        "h", "/status/1") is None  # a name no instance has: 404


def test_hosts_order_and_the_default_backend():
    text = ("apiVersion: extensions/v1beta1\nkind: Ingress\nmetadata: {name: y}\nspec:\n"
            "  backend: {serviceName: details, servicePort: 9080}\n"
            "  rules:\n  - host: api.example\n    http:\n      paths:\n"
            "      - path: /.*\n        backend: {serviceName: ratings, servicePort: 9080}\n"
            "  - http:\n      paths:\n"
            "      - path: /.*\n        backend: {serviceName: httpbin, servicePort: 8000}\n")
    t = table(text)
    assert t.match("API.example:443", "/x") == "ratings:9080"
    assert t.match("other", "/x") == "httpbin:8000"
    no_rules = table("apiVersion: extensions/v1beta1\nkind: Ingress\nmetadata: {name: z}\n"
                     "spec:\n  backend: {serviceName: details, servicePort: 9080}\n")
    assert no_rules.match("any", "/anything") == "details:9080"
    assert repr(no_rules).startswith("<IngressTable ingresses=1")


def test_backends_that_reach_nothing_are_problems_with_their_field_paths():
    """An unknown backend service or a port name no instance registers is listed (the ingress
    logs it) with the field path; the Ingress is still served — instances may yet register."""
    t = table(ingress("gateway", path("/status/.*") + path("/nope/.*", service="nosuch")
                      + path("/named/.*", port="grpc")))
    assert t.objects == 1 and t.match("", "/status/1") == "httpbin:8000"
    assert t.match("", "/nope/1") == "nosuch:8000"  # the route stage answers it (404 NR)
    assert len(t.problems) == 2, t.problems
    assert t.problems[0].startswith(
        "Ingress default/gateway: spec.rules[0].http.paths[1].backend.serviceName: ")
    assert "'nosuch'" in t.problems[0] and "nosuch.default.svc.cluster.local" in t.problems[0]
    assert t.problems[1].startswith(
        "Ingress default/gateway: spec.rules[0].http.paths[2].backend.servicePort: ")
    assert "'grpc'" in t.problems[1]
    assert table(SIMPLE).problems == []
    assert t.statistics()["problems"] == 2
