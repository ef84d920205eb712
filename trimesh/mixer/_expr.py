"""The attribute expression language, part 2: the type checker, the compiler and evaluation. PURE.

**Types** (Istio 0.x ``mixer/pkg/expr`` and the ``il`` compiler; facts, not code): an attribute has
its manifest type; a literal is STRING, INT64, DOUBLE or BOOL; ``ip(STRING)`` is IP_ADDRESS,
``timestamp(STRING)`` (RFC 3339) is TIMESTAMP; ``m[k]`` needs a STRING_MAP and a STRING and is
STRING; ``==``/``!=`` need two operands of one type (not STRING_MAP) and are BOOL; ``&&``, ``||``
and ``!`` take BOOL; ``a | b`` needs one type on both sides and has it; ``match(STRING, STRING)``,
``STRING.startsWith(STRING)``, ``STRING.endsWith(STRING)`` and ``STRING.matches(STRING)`` are BOOL.
There are no implicit conversions (``request.size == "200"`` is refused), with one exception that
Istio had too: a string literal that reads as a Go duration (``"0ms"``, ``"1.5s"``) is a DURATION
where the other side of ``==``, ``!=`` or ``|`` is one (``response.duration | "0ms"``). (Istio typed
every such literal DURATION, so ``request.headers["t"] == "10s"`` failed there; here it compares
strings.)

**Functions.** ``match(s, pattern)``: a trailing ``*`` matches a prefix, a leading ``*`` a suffix,
anything else is equality (Istio's ``externMatch``). ``.matches``: a regular-expression *search*
(Go's ``regexp.MatchString``, unanchored). Istio's receiver is the pattern,
``"svc.*".matches(destination.service)``; trimesh also reads ``destination.service.matches("svc.*")``
the way it is meant: when exactly one side is a string literal, the literal is the pattern.
Patterns are Python ``re`` syntax (RE2's common subset behaves the same).

**Missing attributes.** An attribute that the bag lacks, or a key a map lacks, makes the expression
*missing*, unless it is on the left of a ``|``, which then yields its right side (an attribute
present with the empty string is a value, as in Istio's ``il`` interpreter). The outcome of a
missing evaluation is :data:`~trimesh.mixer.MISSING`, not an exception: a rule's ``match`` that is
missing does not match (Istio logged the error and skipped the rule), and a bag value of the wrong
Python type raises :class:`EvaluationError` and nothing else.

**Compilation.** The checked tree becomes the source of one small Python function (attribute reads
are ``d["name"]``, a missing one is a ``KeyError``; the left side of ``|`` reads with
``d.get(name, MISSING)`` when it is an attribute or ``m["literal"]``, and catches ``KeyError``
otherwise), compiled once with
``compile()``; constant patterns, IP addresses and timestamps are computed at compile time. The
docs' deny rule evaluates in a few hundred nanoseconds (``bench/mixer_expr_bench.py``). Generated
code only ever contains names the compiler chose and literals written with ``repr``.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Callable

from ..errors import TrimeshError
from ._attributes import MISSING, Bag, Manifest, ValueType
from ._expr_parse import (Attribute, Binary, Call, ExpressionError, Index, Literal, Node, Unary,
                          format_expression, parse_expression)

__all__ = ["Expression", "EvaluationError", "Compiler", "compile_expression", "parse_go_duration",
           "parse_timestamp", "FUNCTIONS", "METHODS"]

T = ValueType

# name -> (argument types, result type)
FUNCTIONS: dict[str, tuple[tuple[ValueType, ...], ValueType]] = {
    "match": ((T.STRING, T.STRING), T.BOOL),
    "ip": ((T.STRING,), T.IP_ADDRESS),
    "timestamp": ((T.STRING,), T.TIMESTAMP),
}
# name -> (receiver type, argument types, result type)
METHODS: dict[str, tuple[ValueType, tuple[ValueType, ...], ValueType]] = {
    "matches": (T.STRING, (T.STRING,), T.BOOL),
    "startsWith": (T.STRING, (T.STRING,), T.BOOL),
    "endsWith": (T.STRING, (T.STRING,), T.BOOL),
}

# What a bag value of the wrong Python type can raise inside generated code.
_EVAL_ERRORS = (TypeError, AttributeError, ValueError, re.error, OverflowError, IndexError,
                UnicodeError)


class EvaluationError(TrimeshError):
    """A bag value did not have its attribute's type (``request.size`` held a list, …)."""


# --- literal readers (compile time, and ip()/timestamp() of non-constant strings) -----------------

# Go's time.ParseDuration: [-+]?(number unit)+ or "0"; units ns us µs μs ms s m h
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
             "h": 3600.0}
_GO_DURATION = re.compile(r"[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+\Z")
_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
MAX_GO_DURATION = 9223372036.854775807  # seconds: Go's time.Duration holds 2^63-1 ns


def parse_go_duration(text: str) -> float | None:
    """Seconds of a Go duration string (``"0ms"``, ``"1h30m"``, ``"-1.5s"``, ``"0"``), or ``None``
    when ``text`` is not one."""
    if text in ("0", "+0", "-0"):
        return 0.0
    if not _GO_DURATION.match(text):
        return None
    total = sum(float(n) * _GO_UNITS[u] for n, u in _GO_PART.findall(text))
    if total > MAX_GO_DURATION:
        return None
    return -total if text.startswith("-") else total


_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)\Z")


def parse_timestamp(text: str) -> _dt.datetime:
    """An RFC 3339 timestamp (Go's ``time.RFC3339`` layout, fractional seconds allowed) as an aware
    datetime; ``ValueError`` otherwise."""
    if not isinstance(text, str) or not _RFC3339.match(text):
        raise ValueError(f"could not convert {text!r} to TIMESTAMP: expected RFC 3339, "
                         "e.g. 2015-01-02T15:04:35Z")
    m = _RFC3339.match(text)
    assert m is not None
    frac = m.group(1) or ""
    # Python keeps microseconds: cut longer fractions (Go keeps nanoseconds)
    fixed = text[:19] + (frac[:7] if frac else "") + text[19 + len(frac):]
    return _dt.datetime.fromisoformat(fixed.replace("z", "Z").replace("t", "T", 1))


def _as_ip(value: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An IP attribute's value as an address; IPv4-mapped IPv6 reads as IPv4 (Go's ``net.IP.Equal``
    treats them as one address)."""
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        ip = value
    elif isinstance(value, (bytes, bytearray)):
        ip = ipaddress.ip_address(bytes(value))
    elif isinstance(value, str):
        ip = ipaddress.ip_address(value)
    else:
        raise TypeError(f"not an IP address: {type(value).__name__}")
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _ip_eq(a: Any, b: Any) -> bool:
    return _as_ip(a) == _as_ip(b)


def _glob(s: str, pattern: str) -> bool:
    if not isinstance(s, str) or not isinstance(pattern, str):
        raise TypeError("match() takes strings")
    if pattern.endswith("*"):
        return s.startswith(pattern[:-1])
    if pattern.startswith("*"):
        return s.endswith(pattern[1:])
    return s == pattern


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _search(pattern: str, s: str) -> bool:
    if not isinstance(s, str):
        raise TypeError("matches() takes strings")
    return _regex(pattern).search(s) is not None


def _timestamp(text: str) -> _dt.datetime:
    return parse_timestamp(text)


_HELPERS = {"_as_ip": _as_ip, "_ip_eq": _ip_eq, "_glob": _glob, "_search": _search,
            "_timestamp": _timestamp, "_MISSING": MISSING}


# --- the compiled expression ----------------------------------------------------------------------


class Expression:
    """A type-checked, compiled expression. ``evaluate(bag)`` returns the value, or
    :data:`~trimesh.mixer.MISSING`; ``matches(bag)`` is the rule-match reading of a BOOL expression
    (``True`` only for a present true value)."""

    __slots__ = ("text", "type", "tree", "attributes", "_fn")

    def __init__(self, text: str, type_: ValueType, tree: Node, attributes: frozenset[str],
                 fn: Callable[[Mapping[str, Any]], Any]) -> None:
        self.text = text
        self.type = type_
        self.tree = tree
        self.attributes = attributes  # every attribute the expression reads (a check-cache key)
        self._fn = fn

    def evaluate(self, bag: Mapping[str, Any]) -> Any:
        values = bag._values if type(bag) is Bag else bag
        try:
            return self._fn(values)
        except KeyError:
            return MISSING
        except _EVAL_ERRORS as exc:
            raise EvaluationError(f"{self.text!r}: an attribute has a value of the wrong type "
                                  f"({type(exc).__name__}: {exc})") from None

    def matches(self, bag: Mapping[str, Any]) -> bool:
        """For a rule's ``match``: ``False`` when missing or when a value has the wrong type."""
        values = bag._values if type(bag) is Bag else bag
        try:
            return self._fn(values) is True
        except KeyError:
            return False
        except _EVAL_ERRORS:
            return False

    def __repr__(self) -> str:
        return f"Expression({self.text!r}, {self.type})"


class _Gen:
    """Type-checks a tree and writes the Python source of its evaluation."""

    def __init__(self, text: str, manifest: Manifest) -> None:
        self.text = text
        self.manifest = manifest
        self.consts: dict[str, Any] = {}
        self.defs: list[str] = []
        self.attributes: set[str] = set()
        self.names = 0  # walrus variables of `|`

    def fail(self, message: str, node: Node) -> ExpressionError:
        return ExpressionError(message, node.column or 1, self.text)

    def const(self, value: Any) -> str:
        name = f"_k{len(self.consts)}"
        self.consts[name] = value
        return name

    # Each visit returns (type, Python expression source).
    def visit(self, node: Node) -> tuple[ValueType, str]:
        if isinstance(node, Literal):
            v = node.value
            t = (T.BOOL if isinstance(v, bool) else T.INT64 if isinstance(v, int) else
                 T.DOUBLE if isinstance(v, float) else T.STRING)
            return t, repr(v)
        if isinstance(node, Attribute):
            t = self.manifest.get(node.name)
            if t is None:
                near = self.manifest.suggest(node.name)
                hint = f" (did you mean {near!r}?)" if near else ""
                raise self.fail(f"unknown attribute {node.name!r}{hint}", node)
            self.attributes.add(node.name)
            return t, f"d[{node.name!r}]"
        if isinstance(node, Index):
            tt, target = self.visit(node.target)
            if tt is not T.STRING_MAP:
                raise self.fail(f"only a STRING_MAP can be indexed; "
                                f"{format_expression(node.target)} is {tt}", node)
            kt, key = self.visit(node.key)
            if kt is not T.STRING:
                raise self.fail(f"a map key must be a STRING, not {kt}", node.key)
            return T.STRING, f"{target}[{key}]"
        if isinstance(node, Unary):
            t, src = self.visit(node.operand)
            if t is not T.BOOL:
                raise self.fail(f"'!' needs a BOOL, not {t}", node)
            return T.BOOL, f"(not {src})"
        if isinstance(node, Binary):
            return self.binary(node)
        if isinstance(node, Call):
            return self.call(node)
        raise self.fail(f"not an expression node: {node!r}", node)  # pragma: no cover

    def operands(self, node: Binary) -> tuple[ValueType, str, ValueType, str]:
        lt, ls = self.visit(node.left)
        rt, rs = self.visit(node.right)
        if lt is not rt:
            # a duration-looking string literal next to a DURATION is a DURATION
            for lit, other in ((node.right, lt), (node.left, rt)):
                if other is T.DURATION and isinstance(lit, Literal) and isinstance(lit.value, str):
                    seconds = parse_go_duration(lit.value)
                    if seconds is not None:
                        if lit is node.right:
                            rt, rs = T.DURATION, repr(seconds)
                        else:
                            lt, ls = T.DURATION, repr(seconds)
        if lt is not rt:
            raise self.fail(f"{node.op!r} needs operands of one type: "
                            f"{format_expression(node.left)} is {lt}, "
                            f"{format_expression(node.right)} is {rt}", node)
        return lt, ls, rt, rs

    def binary(self, node: Binary) -> tuple[ValueType, str]:
        op = node.op
        if op in ("&&", "||"):
            lt, ls = self.visit(node.left)
            rt, rs = self.visit(node.right)
            for t, side in ((lt, node.left), (rt, node.right)):
                if t is not T.BOOL:
                    raise self.fail(f"{op!r} needs BOOL operands; {format_expression(side)} "
                                    f"is {t}", side)
            return T.BOOL, f"({ls} {'and' if op == '&&' else 'or'} {rs})"
        t, ls, _, rs = self.operands(node)
        if op == "|":
            var = f"_v{self.names}"
            self.names += 1
            present = self.present(node.left, var)
            if present is not None:  # no exception on the way: `_v if <present> else right`
                return t, f"({var} if {present} else {rs})"
            name = f"_or{len(self.defs)}"
            self.defs.append(f"def {name}(d):\n    try:\n        return {ls}\n"
                             f"    except KeyError:\n        return {rs}\n")
            return t, f"{name}(d)"
        if t is T.STRING_MAP:
            raise self.fail(f"{op!r} cannot compare STRING_MAP values", node)
        if t is T.IP_ADDRESS:
            src = f"_ip_eq({ls}, {rs})"
            return T.BOOL, src if op == "==" else f"(not {src})"
        return T.BOOL, f"({ls} {op} {rs})"

    def present(self, node: Node, var: str) -> str | None:
        """For the left side of ``|``: a Python condition that is true when ``node`` is present and
        binds its value to ``var``, for attributes, literal-key lookups of attributes and ``|``
        chains of those; ``None`` for anything else (compiled with try/except KeyError)."""
        if isinstance(node, Attribute):
            return f"(({var} := d.get({node.name!r}, _MISSING)) is not _MISSING)"
        if isinstance(node, Index) and isinstance(node.target, Attribute) and isinstance(
                node.key, Literal):
            m = f"_m{self.names}"
            self.names += 1
            return (f"(({m} := d.get({node.target.name!r}, _MISSING)) is not _MISSING and "
                    f"({var} := {m}.get({node.key.value!r}, _MISSING)) is not _MISSING)")
        if isinstance(node, Binary) and node.op == "|":
            left = self.present(node.left, var)
            right = self.present(node.right, var)
            if left is not None and right is not None:
                return f"({left} or {right})"
            if left is not None and isinstance(node.right, Literal):
                return f"({left} or (({var} := {node.right.value!r}) is not _MISSING))"
        return None

    def call(self, node: Call) -> tuple[ValueType, str]:
        if node.target is None:
            if node.name in METHODS:
                raise self.fail(f"{node.name} is a method: write x.{node.name}(…)", node)
            sig = FUNCTIONS.get(node.name)
            if sig is None:
                raise self.fail(f"unknown function {node.name!r} (functions: "
                                f"{', '.join(FUNCTIONS)}; methods: "
                                f"{', '.join('.' + m for m in METHODS)})", node)
            want, result = sig
            args = self.arguments(node, want)
            if node.name == "match":
                return result, self.glob(node, args)
            lit = node.args[0]
            if isinstance(lit, Literal):  # a constant: convert (and check) now
                try:
                    value = (_as_ip(lit.value) if node.name == "ip" else
                             parse_timestamp(lit.value))
                except ValueError as exc:
                    raise self.fail(f"{node.name}(): {exc}", lit) from None
                return result, self.const(value)
            return result, (f"_as_ip({args[0]})" if node.name == "ip" else f"_timestamp({args[0]})")
        sig3 = METHODS.get(node.name)
        if sig3 is None:
            if node.name in FUNCTIONS:
                raise self.fail(f"{node.name} is a function: write {node.name}(…)", node)
            raise self.fail(f"unknown method {node.name!r} (methods: "
                            f"{', '.join('.' + m for m in METHODS)})", node)
        recv, want, result = sig3
        tt, target = self.visit(node.target)
        if tt is not recv:
            raise self.fail(f".{node.name}() needs a {recv} receiver; "
                            f"{format_expression(node.target)} is {tt}", node)
        (arg,) = self.arguments(node, want)
        if node.name == "startsWith":
            return result, f"{target}.startswith({arg})"
        if node.name == "endsWith":
            return result, f"{target}.endswith({arg})"
        # matches: the literal side is the pattern (Istio: the receiver)
        pattern_node, subject = node.target, arg
        if not isinstance(node.target, Literal) and isinstance(node.args[0], Literal):
            pattern_node, subject = node.args[0], target
        if isinstance(pattern_node, Literal):
            try:
                compiled = re.compile(pattern_node.value)
            except re.error as exc:
                raise self.fail(f"regular expression {pattern_node.value!r} does not compile: "
                                f"{exc}", pattern_node) from None
            return result, f"({self.const(compiled)}.search({subject}) is not None)"
        return result, f"_search({target}, {arg})"

    def arguments(self, node: Call, want: tuple[ValueType, ...]) -> list[str]:
        if len(node.args) != len(want):
            raise self.fail(f"{node.name}() takes {len(want)} argument"
                            f"{'s' if len(want) != 1 else ''}, got {len(node.args)}", node)
        out = []
        for i, (arg, t) in enumerate(zip(node.args, want)):
            at, src = self.visit(arg)
            if at is not t:
                raise self.fail(f"argument {i + 1} of {node.name}() must be {t}; "
                                f"{format_expression(arg)} is {at}", arg)
            out.append(src)
        return out

    def glob(self, node: Call, args: list[str]) -> str:
        pat = node.args[1]
        if isinstance(pat, Literal):
            p = pat.value
            if p.endswith("*"):
                return f"{args[0]}.startswith({p[:-1]!r})"
            if p.startswith("*"):
                return f"{args[0]}.endswith({p[1:]!r})"
            return f"({args[0]} == {p!r})"
        return f"_glob({args[0]}, {args[1]})"


def compile_expression(text: str, manifest: Manifest | None = None, *,
                       expected: ValueType | str | None = None) -> Expression:
    """Parse, type-check against ``manifest`` (the vocabulary when ``None``) and compile ``text``.
    ``expected`` is the type the result must have (a rule's ``match`` is BOOL); a duration-looking
    string literal is accepted where a DURATION is expected. :class:`ExpressionError` with the
    column on any problem."""
    manifest = manifest if manifest is not None else Manifest.default()
    tree = parse_expression(text)
    gen = _Gen(text, manifest)
    t, src = gen.visit(tree)
    want = ValueType(expected) if expected else None
    if want is T.DURATION and t is T.STRING and isinstance(tree, Literal):
        seconds = parse_go_duration(tree.value)
        if seconds is not None:
            t, src = T.DURATION, repr(seconds)
    if want is not None and t is not want:
        raise ExpressionError(f"the expression is {t}, {want} is needed here", 1, text)
    source = "".join(gen.defs) + f"def _eval(d):\n    return {src}\n"
    namespace: dict[str, Any] = dict(_HELPERS)
    namespace.update(gen.consts)
    namespace["__builtins__"] = {"KeyError": KeyError}
    exec(compile(source, "<mixer expression>", "exec"), namespace)  # noqa: S102 (see docstring)
    return Expression(text, t, tree, frozenset(gen.attributes), namespace["_eval"])


class Compiler:
    """Compiles expressions against one manifest, once each: build one per config snapshot."""

    def __init__(self, manifest: Manifest | None = None) -> None:
        self.manifest = manifest if manifest is not None else Manifest.default()
        self._cache: dict[tuple[str, ValueType | None], Expression] = {}
        self._hits = 0

    def compile(self, text: str, *, expected: ValueType | str | None = None) -> Expression:
        key = (text, ValueType(expected) if expected else None)
        found = self._cache.get(key)
        if found is not None:
            self._hits += 1
            return found
        expr = compile_expression(text, self.manifest, expected=expected)
        self._cache[key] = expr
        return expr

    def statistics(self) -> dict[str, int]:
        return {"compiled": len(self._cache), "hits": self._hits, "attributes": len(self.manifest)}

    def __repr__(self) -> str:
        return f"<Compiler {len(self._cache)} expressions, {len(self.manifest)} attributes>"
