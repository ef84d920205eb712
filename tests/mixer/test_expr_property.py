"""Properties of the expression language: printing round-trips, evaluation only ever fails with
EvaluationError, whatever the bag holds."""

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from trimesh.mixer import (MISSING, EvaluationError, ExpressionError, Manifest, ValueType,
                           compile_expression, format_expression, parse_expression)
from trimesh.mixer._expr_parse import PRECEDENCE, Attribute, Binary, Call, Index, Literal, Unary

_ident = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True)
_name = st.lists(_ident, min_size=1, max_size=3).map(".".join).filter(
    lambda n: n.lower() not in ("true", "false"))
_literal = st.one_of(
    st.text(max_size=8), st.integers(-(2 ** 63), 2 ** 63 - 1), st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False)).map(Literal)
_leaf = st.one_of(_literal, _name.map(Attribute))


def _extend(inner):
    return st.one_of(
        st.builds(Binary, st.sampled_from(sorted(PRECEDENCE)), inner, inner),
        st.builds(Unary, st.just("!"), inner),
        st.builds(Index, inner, inner),
        st.builds(Call, _ident, st.lists(inner, max_size=2).map(tuple)),
        st.builds(Call, _ident, st.lists(inner, max_size=2).map(tuple), inner),
    )


_tree = st.recursive(_leaf, _extend, max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(_tree)
def test_printing_a_tree_and_reparsing_gives_the_same_tree(tree):
    text = format_expression(tree)
    assert parse_expression(text) == tree


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='ab.|&=!()[]"\' \\x1-e`,s', max_size=30))
def test_parser_answers_with_a_tree_or_an_expression_error(text):
    try:
        tree = parse_expression(text)
    except ExpressionError as exc:
        assert 1 <= exc.column <= len(text) + 1 and exc.message
        return
    assert parse_expression(format_expression(tree)) == tree


# --- typed expressions over the vocabulary, and bags of anything ----------------------------------

_M = Manifest.default()
_by_type = {t: sorted(n for n in _M if _M[n] is t) for t in ValueType}


def _attr(t):
    return st.sampled_from(_by_type[t])


_str = st.recursive(
    st.one_of(_attr(ValueType.STRING), st.text(max_size=5).map(lambda s: format_expression(Literal(s)))),
    lambda inner: st.one_of(
        st.builds(lambda m, k: f"{m}[{k}]", _attr(ValueType.STRING_MAP), inner),
        st.builds(lambda a, b: f"({a} | {b})", inner, inner)),
    max_leaves=4)
_int = st.one_of(_attr(ValueType.INT64), st.integers(-5, 5).map(str)).flatmap(
    lambda a: st.one_of(st.just(a), _attr(ValueType.INT64).map(lambda b: f"({b} | {a})")))
_ip = st.one_of(_attr(ValueType.IP_ADDRESS), st.just('ip("10.0.0.1")'),
                _str.map(lambda s: f"ip({s})"))
_bool = st.recursive(
    st.one_of(
        st.builds(lambda a, op, b: f"{a} {op} {b}", _str, st.sampled_from(["==", "!="]), _str),
        st.builds(lambda a, b: f"{a} == {b}", _int, _int),
        st.builds(lambda a, b: f"{a} == {b}", _ip, _ip),
        st.builds(lambda a, b: f"match({a}, {b})", _str, _str),
        st.builds(lambda a, m, b: f"{a}.{m}({b})", _str,
                  st.sampled_from(["startsWith", "endsWith", "matches"]), _str),
        st.builds(lambda a: f'response.duration == "{a}ms"', st.integers(0, 9)),
        _attr(ValueType.BOOL)),
    lambda inner: st.one_of(
        st.builds(lambda a, op, b: f"({a}) {op} ({b})", inner, st.sampled_from(["&&", "||"]), inner),
        inner.map(lambda a: f"!({a})")),
    max_leaves=6)

_value = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=6), st.binary(max_size=17),
    st.lists(st.text(max_size=3), max_size=2),
    st.dictionaries(st.text(max_size=3), st.one_of(st.text(max_size=3), st.integers()), max_size=3),
    st.datetimes(timezones=st.just(dt.timezone.utc)),
    st.sampled_from(["10.0.0.1", "::1", "a*", "(", "[", "*x"]))
_bag = st.dictionaries(st.sampled_from(sorted(_M)), _value, max_size=12)


@settings(max_examples=400, deadline=None)
@given(_bool, _bag)
def test_evaluation_raises_only_evaluation_error(text, bag):
    try:
        expr = compile_expression(text, expected="BOOL")
    except ExpressionError:
        return  # e.g. a literal regex that does not compile
    try:
        result, raised = expr.evaluate(bag), False  # anything but EvaluationError fails the test
    except EvaluationError:
        result, raised = None, True
    assert expr.matches(bag) is (not raised and result is True)
    if result is MISSING:
        assert not expr.attributes <= bag.keys() or any(
            isinstance(bag[a], dict) for a in expr.attributes)  # an attribute or a map key lacked
