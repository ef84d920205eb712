"""The expression language: parsing, type checking, evaluation (the docs' expressions as written)."""

import datetime as dt
import ipaddress

import pytest

from trimesh.mixer import (MISSING, Bag, Compiler, EvaluationError, ExpressionError, Manifest,
                           ValueType, compile_expression, format_expression, parse_expression,
                           parse_go_duration, parse_timestamp)
from trimesh.mixer._expr_parse import Attribute, Binary, Call, Index, Literal, Unary

RATINGS = "ratings.default.svc.cluster.local"


def ev(text, bag, **kw):
    return compile_expression(text, **kw).evaluate(Bag(bag))


# --- parsing --------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, tree", [
    ('a.b == "x"', Binary("==", Attribute("a.b"), Literal("x"))),
    # Go precedence: | above ==, == above &&, && above ||
    ('a | "x" == "y"', Binary("==", Binary("|", Attribute("a"), Literal("x")), Literal("y"))),
    ("a || b && c", Binary("||", Attribute("a"), Binary("&&", Attribute("b"), Attribute("c")))),
    ("a | b | c", Binary("|", Binary("|", Attribute("a"), Attribute("b")), Attribute("c"))),
    ("!a && b", Binary("&&", Unary("!", Attribute("a")), Attribute("b"))),
    ('m["k"]', Index(Attribute("m"), Literal("k"))),
    ('x.y.startsWith("p")', Call("startsWith", (Literal("p"),), target=Attribute("x.y"))),
    ('"re".matches(s)', Call("matches", (Attribute("s"),), target=Literal("re"))),
    ('match(a, "b*")', Call("match", (Attribute("a"), Literal("b*")))),
    ('m["k"].endsWith("s")', Call("endsWith", (Literal("s"),),
                                  target=Index(Attribute("m"), Literal("k")))),
    ("True == FALSE", Binary("==", Literal(True), Literal(False))),  # Istio lower-cases them
    ("010", Literal(10)),  # Istio: ParseInt(v, 10)
    ("-5 == .5e1", Binary("==", Literal(-5), Literal(5.0))),
    ("'a'", Literal("a")),  # a Go rune literal is a one-character STRING
    (r'"\x41\u00e9\U0001F600\101\t\"\\"', Literal('Aé\U0001F600A\t"\\')),
    ("`raw \\n`", Literal("raw \\n")),
    ("((a))", Attribute("a")),
    ("source.labels[\"app\"]==\"reviews\"", Binary("==", Index(Attribute("source.labels"),
                                                              Literal("app")), Literal("reviews"))),
])
def test_parse(text, tree):
    assert parse_expression(text) == tree


def test_long_chains_and_deep_nesting_compile_within_the_limit():
    chain = " && ".join(['destination.service == "x"'] * 99)
    assert compile_expression(chain).evaluate({"destination.service": "x"}) is True
    nested = "!" * 99 + "connection.mtls"
    assert compile_expression(nested).evaluate({"connection.mtls": False}) is True
    defaults = " | ".join(['request.headers["x"]'] * 99)
    assert compile_expression(defaults).evaluate({}) is MISSING


def test_columns_are_one_based_and_binary_nodes_point_at_their_operator():
    tree = parse_expression('a  ==  "x"')
    assert (tree.column, tree.left.column, tree.right.column) == (4, 1, 8)


@pytest.mark.parametrize("text, column, message", [
    ("", 1, "empty expression"),
    ("a ==", 5, "expected an attribute, a literal or '(', found the end of the expression"),
    ("a < b", 3, "operator '<' is not part of Mixer's expression language"),
    ("a + b", 3, "operator '+' is not part of"),
    ("a = b", 3, "'=' is not an operator: compare with '=='"),
    ('a == "x', 6, "string literal not terminated"),
    ("'ab'", 1, "single quotes hold one character"),
    ("a b", 3, "expected an operator (==, !=, &&, ||, |) before the name 'b'"),
    ("(a", 3, "expected ')' to close '('"),
    ('m["k"', 6, "expected ']' to close '['"),
    ("10s", 1, "'10s' is not a number; a duration is written as a string: \"10s\""),
    ("a.", 3, "expected a name after '.'"),
    ('"x".y', 5, "'.y' must be a method call"),
    ("a.b(1)(2)", 7, "only a function name can be called"),
    ("- a", 1, "'-' is only allowed directly before a number"),
    (r'"\q"', 2, "unknown escape sequence \\q"),
    (r'"\ud800"', 2, "not a valid Unicode code point"),
    ("9223372036854775808", 1, "does not fit in 64 bits"),
    ("1e999", 1, "out of range"),
    ("#", 1, "unexpected character '#'"),
    ("(" * 110 + "a" + ")" * 110, 101, "nested more than 100 levels deep"),
    (" && ".join(["connection.mtls"] * 120), 1917, "nested more than 100 levels deep"),
])
def test_parse_errors(text, column, message):
    with pytest.raises(ExpressionError) as info:
        parse_expression(text)
    assert info.value.column == column
    assert message in info.value.message
    assert str(info.value) == f"column {column}: {info.value.message}"


@pytest.mark.parametrize("text", [
    'destination.service == "service1.ns.svc.cluster.local" && request.headers["x-user"] == "user1"',
    'a | b | "c"', "(a || b) && c", "!(a == b)", "a == (b == c)", 'x.startsWith("\\n\\"")',
    '"a\\x00b"', "1.5 == 2.0", "-3", "(-3).x()", 'm["k"]["j"]',
])
def test_print_round_trips(text):
    tree = parse_expression(text)
    assert parse_expression(format_expression(tree)) == tree


def test_print_is_minimal():
    assert format_expression(parse_expression("((a == b)) && (c)")) == "a == b && c"
    assert format_expression(parse_expression("a == b == c")) == "a == b == c"
    assert format_expression(parse_expression("a == (b == c)")) == "a == (b == c)"


# --- type checking --------------------------------------------------------------------------------


@pytest.mark.parametrize("text, vtype", [
    ('destination.service == "x"', "BOOL"),
    ("request.size | 0", "INT64"),
    ('response.duration | "0ms"', "DURATION"),  # the docs' duration default
    ('"0ms" | response.duration', "DURATION"),
    ('response.duration == "1.5s"', "BOOL"),
    ('request.headers["t"] == "10s"', "BOOL"),  # a STRING next to a STRING stays one
    ('destination.labels["version"] | "unknown"', "STRING"),
    ('source.ip | ip("0.0.0.0")', "IP_ADDRESS"),
    ('timestamp("2015-01-02T15:04:35Z")', "TIMESTAMP"),
    ("2", "INT64"), ("2.5", "DOUBLE"), ('"UNSPECIFIED"', "STRING"), ("true", "BOOL"),
    ("source.labels", "STRING_MAP"),
    ("connection.mtls && !connection.mtls", "BOOL"),
])
def test_types(text, vtype):
    assert compile_expression(text).type is ValueType(vtype)


@pytest.mark.parametrize("text, expected, column, message", [
    ('destination.servce == "x"', None, 1,
     "unknown attribute 'destination.servce' (did you mean 'destination.service'?)"),
    ('request.size == "x"', None, 14,
     "'==' needs operands of one type: request.size is INT64, \"x\" is STRING"),
    ("request.size == 2.0", None, 14, "request.size is INT64, 2.0 is DOUBLE"),
    ('request.size | "x"', None, 14, "'|' needs operands of one type"),
    ('response.duration | "soon"', None, 19, "response.duration is DURATION, \"soon\" is STRING"),
    ("source.labels == source.labels", None, 15, "'==' cannot compare STRING_MAP values"),
    ('destination.service["k"]', None, 1, "only a STRING_MAP can be indexed"),
    ("source.labels[1]", None, 15, "a map key must be a STRING, not INT64"),
    ('destination.service && true', None, 1, "'&&' needs BOOL operands; destination.service is STRING"),
    ("!request.size", None, 1, "'!' needs a BOOL, not INT64"),
    ("foo(1)", None, 1, "unknown function 'foo'"),
    ('startsWith("a")', None, 1, "startsWith is a method"),
    ('destination.service.ip("a")', None, 1, "ip is a function"),
    ('destination.service.lower()', None, 1, "unknown method 'lower'"),
    ('request.size.startsWith("1")', None, 1, ".startsWith() needs a STRING receiver; request.size is INT64"),
    ("match(destination.service)", None, 1, "match() takes 2 arguments, got 1"),
    ("match(destination.service, 1)", None, 28, "argument 2 of match() must be STRING; 1 is INT64"),
    ('ip("10.0.0.300")', None, 4, "ip(): '10.0.0.300' does not appear to be an IPv4 or IPv6 address"),
    ('timestamp("2015-01-02")', None, 11, "expected RFC 3339"),
    ('"(".matches(destination.service)', None, 1, "regular expression '(' does not compile"),
    ('destination.service', "BOOL", 1, "the expression is STRING, BOOL is needed here"),
    ('source.ip == "10.0.0.1"', None, 11, "source.ip is IP_ADDRESS, \"10.0.0.1\" is STRING"),
])
def test_type_errors(text, expected, column, message):
    with pytest.raises(ExpressionError) as info:
        compile_expression(text, expected=expected)
    assert (info.value.column, info.value.text) == (column, text)
    assert message in info.value.message


def test_a_user_manifest_adds_attributes():
    manifest = Manifest.default().extended({"request.tenant": "STRING"})
    assert compile_expression('request.tenant == "a"', manifest).evaluate({"request.tenant": "a"})
    with pytest.raises(ExpressionError, match="unknown attribute 'request.tenant'"):
        compile_expression('request.tenant == "a"')


# --- evaluation: the docs' behaviours -------------------------------------------------------------

DENY = ('destination.labels["app"] == "ratings" && source.labels["app"]=="reviews" && '
        'source.labels["version"] == "v3"')


@pytest.mark.parametrize("bag, result", [
    # telemetry-security.md §16.2 #9: app label, then the service, then "unknown"
    ({"source.labels": {"app": "productpage"}, "source.service": "p.default.svc.cluster.local"},
     "productpage"),
    ({"source.labels": {}, "source.service": "ingress.istio-system.svc.cluster.local"},
     "ingress.istio-system.svc.cluster.local"),
    ({"source.service": "ingress.istio-system.svc.cluster.local"},
     "ingress.istio-system.svc.cluster.local"),
    ({}, "unknown"),
    ({"source.labels": {"app": ""}}, ""),  # present and empty is a value (Istio's il)
])
def test_default_chain(bag, result):
    assert ev('source.labels["app"] | source.service | "unknown"', bag) == result


@pytest.mark.parametrize("text, bag, result", [
    # left sides of | that are not a plain attribute or a literal-key lookup
    ('source.labels[destination.service] | "x"', {"source.labels": {"a": "v"}}, "x"),
    ('source.labels[destination.service] | "x"',
     {"source.labels": {"a": "v"}, "destination.service": "a"}, "v"),
    ('(source.user | source.name) | "x"', {"source.name": "n"}, "n"),
    ('match(source.user, "a*") | false', {}, False),
    ('match(source.user, "a*") | false', {"source.user": "ab"}, True),
    ('source.labels["k"] | request.headers["k"]', {"request.headers": {"k": "h"}}, "h"),
    ('source.labels["k"] | request.headers["k"]', {}, MISSING),
])
def test_defaults_of_any_left_side(text, bag, result):
    assert ev(text, bag) == result


@pytest.mark.parametrize("source, dest, result", [
    # #10: only reviews v3 -> ratings
    ({"app": "reviews", "version": "v3"}, {"app": "ratings"}, True),
    ({"app": "reviews", "version": "v2"}, {"app": "ratings"}, False),
    ({"app": "productpage", "version": "v1"}, {"app": "ratings"}, False),
    ({"app": "reviews", "version": "v3"}, {"app": "details"}, False),
    ({"app": "reviews"}, {"app": "ratings"}, MISSING),  # no version label: missing, no match
])
def test_deny_rule(source, dest, result):
    expr = compile_expression(DENY, expected="BOOL")
    bag = Bag({"source.labels": source, "destination.labels": dest})
    assert expr.evaluate(bag) is result
    assert expr.matches(bag) is (result is True)
    assert expr.attributes == {"source.labels", "destination.labels"}


@pytest.mark.parametrize("protocol, service, result", [
    # #11: the TCP telemetry rule, written on two YAML lines
    ("tcp", "mongodb.default.svc.cluster.local", True),
    ("http", "mongodb.default.svc.cluster.local", False),
    ("tcp", RATINGS, False),
])
def test_tcp_rule(protocol, service, result):
    text = 'context.protocol == "tcp"\n       && destination.service == "mongodb.default.svc.cluster.local"'
    assert ev(text, {"context.protocol": protocol, "destination.service": service}) is result


@pytest.mark.parametrize("text, value", [
    # #12: literal handling
    ("2", 2), ('"UNSPECIFIED"', "UNSPECIFIED"), ('response.duration | "0ms"', 0.0),
    ('response.duration | "1.5s"', 1.5), ("response.code | 0", 0), ("response.code | 200", 200),
    ("true", True), ("'x'", "x"), ("-1", -1),
])
def test_literals_evaluate(text, value):
    result = ev(text, {})
    assert result == value and type(result) is type(value)


def test_missing_attribute_makes_a_rule_not_match():
    # concepts.md §17 #109
    plain = compile_expression('request.auth.principal == "user1"', expected="BOOL")
    assert plain.evaluate({}) is MISSING and plain.matches({}) is False
    negated = compile_expression('request.auth.principal != "user1"', expected="BOOL")
    assert negated.evaluate({}) is MISSING and negated.matches({}) is False
    defaulted = compile_expression('(request.auth.principal | "nobody") == "user1"')
    assert defaulted.evaluate({}) is False
    assert defaulted.evaluate({"request.auth.principal": "user1"}) is True


def test_short_circuit_skips_a_missing_right_side():
    assert ev('destination.service == "x" && source.user == "y"', {"destination.service": "z"}) is False
    assert ev('destination.service == "z" || source.user == "y"', {"destination.service": "z"}) is True
    assert ev('destination.service == "z" && source.user == "y"', {"destination.service": "z"}) is MISSING


@pytest.mark.parametrize("text, bag, result", [
    # concepts.md §17 #110
    ('match(destination.service, "*.ns1.svc.cluster.local")',
     {"destination.service": "a.ns1.svc.cluster.local"}, True),
    ('match(destination.service, "*.ns1.svc.cluster.local")',
     {"destination.service": "a.ns2.svc.cluster.local"}, False),
    ('match(destination.service, "ratings.*")', {"destination.service": RATINGS}, True),
    ('match(destination.service, "ratings")', {"destination.service": RATINGS}, False),
    ('match(destination.service, request.headers["p"])',
     {"destination.service": RATINGS, "request.headers": {"p": "*.cluster.local"}}, True),
    ('"svc.*".matches(destination.service)', {"destination.service": "mysvc1"}, True),  # a search
    ('"^svc".matches(destination.service)', {"destination.service": "mysvc1"}, False),
    ('destination.service.matches("^rat")', {"destination.service": RATINGS}, True),
    ('request.headers["re"].matches(destination.service)',
     {"destination.service": RATINGS, "request.headers": {"re": "default"}}, True),
    ('destination.service.startsWith("acme")', {"destination.service": "acme.x"}, True),
    ('destination.service.endsWith("acme")', {"destination.service": "acme.x"}, False),
    ('source.ip == ip("10.11.12.13")', {"source.ip": ipaddress.ip_address("10.11.12.13")}, True),
    ('source.ip == ip("10.11.12.13")', {"source.ip": "10.11.12.13"}, True),
    ('source.ip == ip("10.11.12.13")', {"source.ip": bytes([10, 11, 12, 13])}, True),
    ('source.ip == ip("10.11.12.13")', {"source.ip": "::ffff:10.11.12.13"}, True),
    ('source.ip != ip("10.11.12.13")', {"source.ip": "10.0.0.1"}, True),
    ('source.ip == ip(request.headers["ip"])',
     {"source.ip": "::1", "request.headers": {"ip": "0:0::1"}}, True),
    ('request.time == timestamp("2015-01-02T15:04:35Z")',
     {"request.time": dt.datetime(2015, 1, 2, 16, 4, 35, tzinfo=dt.timezone(dt.timedelta(hours=1)))},
     True),
    ("response.duration == \"100ms\"", {"response.duration": 0.1}, True),
    ("connection.mtls == true", {"connection.mtls": True}, True),
    ("!connection.mtls", {"connection.mtls": True}, False),
])
def test_functions(text, bag, result):
    assert ev(text, bag) is result


@pytest.mark.parametrize("text, bag", [
    ('source.labels["a"] == "b"', {"source.labels": "text"}),
    ('destination.service.startsWith("a")', {"destination.service": 5}),
    ('source.ip == ip("10.0.0.1")', {"source.ip": "not an ip"}),
    ('source.ip == ip(request.headers["ip"])', {"source.ip": "::1", "request.headers": {"ip": "x"}}),
    ('request.headers["x"].matches(request.path)',
     {"request.headers": {"x": "("}, "request.path": "/"}),
    ('source.labels[destination.service] == "x"', {"source.labels": {}, "destination.service": []}),
])
def test_wrong_typed_values_raise_evaluation_error_only(text, bag):
    expr = compile_expression(text)
    with pytest.raises(EvaluationError):
        expr.evaluate(bag)
    if expr.type is ValueType.BOOL:
        assert expr.matches(bag) is False


def test_plain_mappings_and_bags_evaluate_the_same():
    expr = compile_expression('destination.service == "x"')
    assert expr.evaluate({"destination.service": "x"}) is expr.evaluate(Bag({"destination.service": "x"})) is True
    assert repr(expr) == "Expression('destination.service == \"x\"', BOOL)"


def test_expected_duration_accepts_a_duration_string():
    assert compile_expression('"250ms"', expected="DURATION").evaluate({}) == 0.25
    with pytest.raises(ExpressionError, match="STRING, DURATION is needed"):
        compile_expression('"later"', expected="DURATION")


@pytest.mark.parametrize("text, seconds", [
    ("0", 0.0), ("0ms", 0.0), ("1.5s", 1.5), ("100ms", 0.1), ("1h30m", 5400.0), ("-2s", -2.0),
    ("1µs", 1e-6), ("1us", 1e-6), ("10ns", 1e-8), ("10", None), ("s", None), ("1d", None),
    ("", None), ("3000000h", None),
])
def test_go_durations(text, seconds):
    got = parse_go_duration(text)
    assert got == pytest.approx(seconds) if seconds is not None else got is None


@pytest.mark.parametrize("text, ok", [
    ("2015-01-02T15:04:35Z", True), ("2015-01-02T15:04:35.123456789+02:00", True),
    ("2015-01-02t15:04:35z", True), ("2015-01-02 15:04:35Z", False), ("2015-01-02T15:04Z", False),
    ("2015-01-02T15:04:35", False), ("2015-13-02T15:04:35Z", False),
])
def test_timestamps(text, ok):
    if ok:
        assert parse_timestamp(text).tzinfo is not None
    else:
        with pytest.raises(ValueError):
            parse_timestamp(text)


def test_compiler_caches_per_snapshot():
    compiler = Compiler()
    a = compiler.compile(DENY, expected="BOOL")
    assert compiler.compile(DENY, expected="BOOL") is a
    assert compiler.compile(DENY) is not a  # another expected type is another entry
    assert compiler.statistics() == {"compiled": 2, "hits": 1, "attributes": len(Manifest.default())}
    assert repr(compiler).startswith("<Compiler 2 expressions")
