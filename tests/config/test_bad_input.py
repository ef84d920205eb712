"""Bad input → ConfigError naming what is wrong, the field path and the line."""

import time

import pytest

from trimesh.config import MAX_INPUT_BYTES, load_file, load_text, object_from_dict
from trimesh.errors import ConfigError

RR = """apiVersion: config.istio.io/v1alpha2
kind: RouteRule
metadata:
  name: reviews-rule
spec:
  destination:
    name: reviews
"""


def rr(spec_tail: str) -> str:
    """A RouteRule whose spec continues (at 2 spaces) with ``spec_tail``; spec_tail starts on line 8."""
    return RR + spec_tail


# (id, text, path, line, message fragment)
CASES = [
    ("unknown kind", "kind: RouteRul\nmetadata: {name: x}\n", "$.kind", 1,
     "unknown kind 'RouteRul' (did you mean 'RouteRule'?)"),
    ("kubernetes kind", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\n", "$.kind", 2,
     "Service is a Kubernetes kind"),
    ("kind alias is not a YAML kind", "kind: routerules\nmetadata: {name: x}\nspec: {destination: {name: a}}\n",
     "$.kind", 1, "write the kind as 'RouteRule'"),
    ("istio's experimental IngressRule kind", "kind: IngressRule\nmetadata: {name: x}\n"
     "spec: {destination: {name: productpage}, port: 80}\n", "$.kind", 1,
     "is not supported: write a Kubernetes Ingress"),
    ("missing kind, looks like a policy",
     "apiVersion: config.istio.io/v1alpha2\nmetadata:\n  name: cb\nspec:\n  destination:\n    name: reviews\n"
     "  circuitBreaker:\n    simpleCb:\n      maxConnections: 100\n", "$.kind", 1,
     "missing 'kind': the spec looks like a DestinationPolicy (has circuitBreaker)"),
    ("missing kind, no idea", "metadata: {name: x}\nspec: {}\n", "$.kind", 1, "missing 'kind'"),
    ("weight above 100", rr("  route:\n  - labels: {version: v1}\n    weight: 120\n"),
     "$.spec.route[0].weight", 10, "weight 120 is outside 0–100"),
    ("negative weight", rr("  route:\n  - weight: -5\n  - weight: 105\n"),
     "$.spec.route[0].weight", 9, "weight -5 is outside 0–100"),
    ("weights not summing to 100",
     rr("  route:\n  - labels: {version: v1}\n    weight: 50\n  - labels: {version: v2}\n    weight: 40\n"),
     "$.spec.route", 8, "add up to 90, not 100"),
    ("two routes, no weights", rr("  route:\n  - labels: {version: v1}\n  - labels: {version: v2}\n"),
     "$.spec.route", 8, "add up to 0, not 100"),
    ("regex that does not compile",
     rr("  match:\n    request:\n      headers:\n        cookie:\n          regex: '^(user=jason'\n"),
     "$.spec.match.request.headers.cookie.regex", 12, "does not compile"),
    ("two string matchers", rr("  match:\n    request:\n      headers:\n        uri: {prefix: /a, exact: /a}\n"),
     "$.spec.match.request.headers.uri", 11, "not exact and prefix"),
    ("bad duration", rr("  httpReqTimeout:\n    simpleTimeout:\n      timeout: 10 seconds\n"),
     "$.spec.httpReqTimeout.simpleTimeout.timeout", 10, "invalid duration '10 seconds'"),
    ("duration without unit", rr("  httpReqTimeout:\n    simpleTimeout:\n      timeout: 10\n"),
     "$.spec.httpReqTimeout.simpleTimeout.timeout", 10, "expected a duration string"),
    ("duration below 1ms", rr("  httpFault:\n    delay:\n      fixedDelay: 500us\n"),
     "$.spec.httpFault.delay.fixedDelay", 10, "shorter than the minimum of 1ms"),
    ("unknown field", rr("  route:\n  - labels: {version: v1}\n    wieght: 100\n"),
     "$.spec.route[0].wieght", 10, "unknown field 'wieght' (did you mean 'weight'?)"),
    ("unknown spec field", rr("  timeout: 10s\n"), "$.spec.timeout", 8, "unknown field 'timeout'"),
    ("field given in both spellings",
     rr("  httpReqTimeout: {simpleTimeout: {timeout: 1s}}\n  http_req_timeout: {simple_timeout: {timeout: 2s}}\n"),
     "$.spec.http_req_timeout", 9, "given twice"),
    ("rule with no destination",
     "kind: RouteRule\nmetadata:\n  name: x\nspec:\n  route:\n  - labels: {version: v1}\n",
     "$.spec.destination", 4, "a destination is required"),
    ("destination without a name", rr("").replace("    name: reviews\n", "    namespace: prod\n"),
     "$.spec.destination", 6, "names no service"),
    ("labels on a rule's destination", rr("    labels: {version: v1}\n"), "$.spec.destination.labels", 8,
     "may not have labels"),
    ("redirect with route", rr("  redirect: {uri: /v1/bookRatings}\n  route:\n  - weight: 100\n"),
     "$.spec.redirect", 8, "either redirects or routes"),
    ("fault with neither delay nor abort", rr("  httpFault: {}\n"), "$.spec.httpFault", 8,
     "needs a delay, an abort, or both"),
    ("delay without fixedDelay", rr("  httpFault:\n    delay:\n      percent: 10\n"),
     "$.spec.httpFault.delay.fixedDelay", 9, "needs a fixedDelay"),
    ("delay percent above 100", rr("  httpFault:\n    delay:\n      percent: 100.5\n      fixedDelay: 5s\n"),
     "$.spec.httpFault.delay.percent", 10, "percent 100.5 is outside 0–100"),
    ("abort percent below 0", rr("  httpFault:\n    abort:\n      percent: -1\n      httpStatus: 500\n"),
     "$.spec.httpFault.abort.percent", 10, "percent -1 is outside 0–100"),
    ("http status 600", rr("  httpFault:\n    abort:\n      httpStatus: 600\n"),
     "$.spec.httpFault.abort.httpStatus", 10, "httpStatus 600 is outside 200–599"),
    ("http status 100", rr("  httpFault:\n    abort:\n      httpStatus: 100\n"),
     "$.spec.httpFault.abort.httpStatus", 10, "outside 200–599"),
    ("empty match", rr("  match: {}\n"), "$.spec.match", 8, "empty match"),
    ("string where a number goes", rr("  precedence: high\n"), "$.spec.precedence", 8,
     "expected an integer, got the string 'high'"),
    ("list where a mapping goes", rr("  match: [a, b]\n"), "$.spec.match", 8, "expected a mapping"),
    ("versioned route to an external service (EG7)",
     "kind: RouteRule\nmetadata: {name: x}\nspec:\n  destination:\n    service: httpbin.org\n"
     "  route:\n  - labels: {version: v1}\n",
     "$.spec.route[0].labels", 7, "httpbin.org is an external service"),
    ("bad CIDR", rr("  match:\n    tcp:\n      sourceSubnet: [10.0.0.0/33]\n"),
     "$.spec.match.tcp.sourceSubnet[0]", 10, "not an IP address or CIDR"),
    ("circuit breaker ejection percent", "kind: DestinationPolicy\nmetadata: {name: p}\nspec:\n"
     "  destination: {name: reviews}\n  circuitBreaker:\n    simpleCb:\n      httpMaxEjectionPercent: 101\n",
     "$.spec.circuitBreaker.simpleCb.httpMaxEjectionPercent", 7, "outside 0–100"),
    ("unknown load balancer", "kind: DestinationPolicy\nmetadata: {name: p}\nspec:\n"
     "  destination: {name: reviews}\n  loadBalancing: {name: FASTEST}\n",
     "$.spec.loadBalancing.name", 5, "unknown load balancer 'FASTEST'"),
    ("egress without service", "kind: EgressRule\nmetadata: {name: e}\nspec:\n  destination: {name: x}\n"
     "  ports: [{port: 80, protocol: http}]\n", "$.spec.destination.service", 4, "needs destination.service"),
    ("egress bad wildcard", "kind: EgressRule\nmetadata: {name: e}\nspec:\n  destination:\n"
     "    service: foo.*.com\n  ports: [{port: 80}]\n", "$.spec.destination.service", 5, "'*' may only start"),
    ("egress port out of range", "kind: EgressRule\nmetadata: {name: e}\nspec:\n  destination:\n"
     "    service: httpbin.org\n  ports:\n  - port: 70000\n", "$.spec.ports[0].port", 7, "outside 1–65535"),
    ("ingress regex path", "apiVersion: extensions/v1beta1\nkind: Ingress\nmetadata: {name: i}\nspec:\n"
     "  rules:\n  - http:\n      paths:\n      - path: /status/[0-9]+\n        backend: {serviceName: h, servicePort: 8000}\n",
     "$.spec.rules[0].http.paths[0].path", 8, "not supported"),
    ("mixer rule bad handler reference", "kind: rule\nmetadata: {name: r}\nspec:\n  actions:\n  - handler: prometheus\n"
     "    instances: [requestcount.metric]\n", "$.spec.actions[0].handler", 5, "must be written <name>.<kind>"),
    ("prometheus enum", "kind: prometheus\nmetadata: {name: h}\nspec:\n  metrics:\n  - instance_name: a.metric.ns\n"
     "    kind: HISTOGRAM\n", "$.spec.metrics[0].kind", 6, "'HISTOGRAM' is not one of"),
    ("attribute name with upper case", "kind: attributemanifest\nmetadata: {name: m}\nspec:\n  attributes:\n"
     "    Source.IP: {valueType: IP_ADDRESS}\n", '$.spec.attributes["Source.IP"]', 5, "may only use lower-case"),
    ("empty expression", "kind: metric\nmetadata: {name: m}\nspec:\n  value:\n", "$.spec.value", 4,
     "expected a string, got nothing"),
    ("missing required field", "kind: memquota\nmetadata: {name: h}\nspec:\n  quotas:\n  - name: q.quota.ns\n",
     "$.spec.quotas[0].maxAmount", 5, "missing required field 'maxAmount'"),
    ("wrong apiVersion", RR.replace("v1alpha2", "v9"), "$.apiVersion", 1, "does not serve kind RouteRule"),
    ("missing metadata.name", "kind: RouteRule\nmetadata:\n  namespace: x\nspec: {destination: {name: a}}\n",
     "$.metadata.name", 2, "missing 'metadata.name'"),
    ("upper-case name", RR.replace("reviews-rule", "Reviews"), "$.metadata.name", 4, "lower case"),
    ("dotted mixer name", "kind: denier\nmetadata: {name: a.b}\nspec: {}\n", "$.metadata.name", 2,
     "may not contain '.'"),
    ("unknown metadata field", RR.replace("  name: reviews-rule\n", "  name: reviews-rule\n  nmespace: x\n"),
     "$.metadata.nmespace", 5, "unknown metadata field 'nmespace' (did you mean 'namespace'?)"),
    ("unknown top-level field", RR + "specs: {}\n", "$.specs", 8, "unknown top-level field 'specs'"),
    ("spec is not a mapping", "kind: RouteRule\nmetadata: {name: x}\nspec: [1]\n", "$.spec", 3,
     "'spec' must be a mapping"),
    ("non-mapping document", "- kind: RouteRule\n", "$", 1, "must be a mapping"),
    ("scalar document", "just some text\n", "$", 1, "must be a mapping"),
    ("fragment", "destination:\n  name: reviews\nprecedence: 1\n", "$", 1, "not a config object"),
    ("JSON with a bad weight",
     '{"kind": "RouteRule",\n "metadata": {"name": "x"},\n "spec": {"destination": {"name": "a"},\n'
     '  "route": [{"weight": 300}]}}\n', "$.spec.route[0].weight", 4, "weight 300"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_document(case):
    _id, text, path, line, fragment = case
    with pytest.raises(ConfigError) as info:
        load_text(text, source="rules.yaml")
    err = info.value
    assert fragment in err.message
    assert err.path == path
    assert err.line == line
    assert err.source == "rules.yaml"
    assert str(err).startswith(f"rules.yaml:{line}")


def test_message_names_file_line_document_and_path():
    good = rr("  route:\n  - weight: 100\n")
    bad = rr("  route:\n  - labels: {version: v1}\n    weight: 20\n  - labels: {version: v2}\n    weight: 120\n")
    with pytest.raises(ConfigError) as info:
        load_text(good + "---\n" + bad, source="rules.yaml")
    err = info.value
    assert (err.document, err.line, err.path) == (1, 22, "$.spec.route[1].weight")
    assert str(err) == "rules.yaml:22, document 2, $.spec.route[1].weight: weight 120 is outside 0–100"


# (id, text, line, message fragment): errors before any object is built
TEXT_CASES = [
    ("malformed YAML", "kind: RouteRule\nmetadata:\n  name: x\n spec: {\n", 4, "invalid YAML"),
    ("unclosed flow", "kind: RouteRule\nspec: {destination: [\n", 3, "invalid YAML"),
    ("tab indentation", "kind: RouteRule\nmetadata:\n\tname: x\n", 3, "invalid YAML"),
    ("duplicate key", RR + "  destination:\n    name: ratings\n", 8, "key 'destination' appears twice"),
    ("not UTF-8", b"kind: RouteRule\nmetadata: {name: \xe9t\xe9}\n", 2, "not UTF-8"),
    ("binary garbage", bytes(range(256)) * 4, 2, "not UTF-8"),  # 0x0a comes before 0x80
    ("NUL bytes", "kind: RouteRule\n\x00\x00\x00\n", 2, "binary data"),
    ("wildcard in a flow mapping", "kind: EgressRule\nmetadata: {name: e}\nspec:\n"
     "  destination: {service: *.foo.com}\n", 4, "quote values that start with '*'"),
    ("bad JSON", '{"kind": "RouteRule",\n "metadata": }\n', 2, "invalid JSON"),
    ("docs elision", rr("  ...\n"), 8, "'...' is how the docs mark fields they left out"),
    ("same object twice", RR + "---\n" + RR, 12, "route-rule/default/reviews-rule is defined twice"),
]


@pytest.mark.parametrize("case", TEXT_CASES, ids=[c[0] for c in TEXT_CASES])
def test_bad_text(case):
    _id, text, line, fragment = case
    with pytest.raises(ConfigError) as info:
        load_text(text, source="rules.yaml")
    assert fragment in info.value.message
    assert info.value.line == line


def test_oversized_input_is_refused_before_parsing():
    big = ("kind: RouteRule\n" + "# " + "x" * 97 + "\n" * 1) * (10 * 1024 * 1024 // 100)
    assert len(big) > 10 * 1024 * 1024
    for payload in (big, big.encode()):
        started = time.perf_counter()
        with pytest.raises(ConfigError, match=r"more than the limit of 2097152 bytes"):
            load_text(payload, source="big.yaml")
        assert time.perf_counter() - started < 0.5


def test_input_at_the_limit_is_still_read():
    doc = RR + "  route:\n  - weight: 100\n"
    padded = doc + "#" * (MAX_INPUT_BYTES - len(doc) - 1) + "\n"
    assert len(padded.encode()) == MAX_INPUT_BYTES
    assert len(load_text(padded)) == 1


def test_oversized_file_and_stdin_are_refused_without_reading_everything(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_bytes(b"#" * (10 * 1024 * 1024))
    with pytest.raises(ConfigError, match="larger than the limit") as info:
        load_file(path)
    assert info.value.source == str(path)

    class Stream:
        asked = []

        def read(self, n=-1):
            self.asked.append(n)
            return b"#" * n

    with pytest.raises(ConfigError, match="larger than the limit"):
        load_file("-", stdin=Stream())
    assert Stream.asked == [MAX_INPUT_BYTES + 1]


def test_missing_file():
    with pytest.raises(ConfigError, match="cannot read") as info:
        load_file("/nonexistent/rules.yaml")
    assert info.value.source == "/nonexistent/rules.yaml"


def test_alias_bomb_is_refused():
    # 5000 routes that all alias one 5000-label mapping: 25 million values once expanded
    labels = "{" + ", ".join(f"k{i}: v" for i in range(5000)) + "}"
    head = "kind: RouteRule\nmetadata: {name: x}\nspec:\n  destination: {name: a}\n"
    text = (head + f"  appendHeaders: &l {labels}\n  route: ["
            + ", ".join("{labels: *l}" for _ in range(5000)) + "]\n")
    # The same mapping and 5000 routes written out without aliases (a larger text): the time to
    # read it is the baseline, measured in this run, so a loaded machine slows both alike.
    plain = (head + f"  appendHeaders: {labels}\n  route: ["
             + ", ".join("{labels: {version: v1}}" for _ in range(5000)) + "]\n")
    started = time.perf_counter()
    with pytest.raises(ConfigError):  # (its weights do not add up: read, then refused)
        load_text(plain)
    baseline = time.perf_counter() - started
    started = time.perf_counter()
    with pytest.raises(ConfigError, match="more than 200000 values") as info:
        load_text(text)
    took = time.perf_counter() - started
    assert info.value.path.startswith("$.spec.route[")
    # Refused after 200000 values: expanding all 25 million would be 125 times that work.
    assert took < 10 * baseline, (took, baseline)


def test_deep_nesting_is_refused():
    text = "kind: RouteRule\nmetadata: {name: x}\nspec: " + "[" * 50000 + "]" * 50000 + "\n"
    with pytest.raises(ConfigError, match="nest"):
        load_text(text)


def test_object_from_dict_errors_have_paths_but_no_line():
    with pytest.raises(ConfigError) as info:
        object_from_dict({"kind": "RouteRule", "metadata": {"name": "x"},
                          "spec": {"destination": {"name": "a"}, "route": [{"weight": 101}]}})
    assert info.value.path == "$.spec.route[0].weight" and info.value.line is None
    with pytest.raises(ConfigError, match="must be a mapping"):
        object_from_dict(["not", "a", "mapping"])
