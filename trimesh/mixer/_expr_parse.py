"""The attribute expression language, part 1: tokens, the syntax tree, the parser and the printer.
PURE.

Istio 0.x's language (CEXL, concepts.md §12.11) is "a subset of Go expression syntax": Mixer fed
the text to Go's ``go/parser.ParseExpr`` and walked the tree (``mixer/pkg/expr/expr.go``). trimesh
writes its own parser for the same subset, so precedence and literals are Go's:

=====  ===========================  ==============================================
level  operators                    notes
=====  ===========================  ==============================================
1      ``||``                       logical or (left-assoc)
2      ``&&``                       logical and
3      ``==`` ``!=``                Go's ``< <= > >=`` are refused (Istio 0.x had none)
4      ``|``                        default: ``a | b | "c"``; binds tighter than ``==``,
                                    so ``a | "x" == "y"`` is ``(a | "x") == "y"`` (Go)
unary  ``!``, ``-`` before a number
post   ``x.y`` ``m["k"]`` ``f(a)`` ``s.startsWith(p)``
=====  ===========================  ==============================================

Literals (Go's, as Istio read them): double-quoted strings with Go escapes (``\\n``, ``\\"``,
``\\xNN``, ``\\uNNNN`` …), back-quoted raw strings, a single-quoted *one character* (a Go rune
literal; Istio typed it STRING), decimal integers (``010`` is ten: Istio used ``ParseInt(v, 10)``),
floats (``1.5``, ``.5``, ``1e3``), ``true``/``false`` in any case. There is no duration or IP
literal syntax in Go: a duration is a string that reads as one (``"10ms"``), an IP address is
``ip("10.0.0.1")``, a timestamp ``timestamp("2015-01-02T15:04:35Z")`` (the type checker handles
both). A ``-`` directly before a number makes a negative literal (a trimesh addition).

Every node carries the 1-based ``column`` of its first character (not part of equality), so the
type checker can say where a problem is. :func:`format_expression` prints a tree back as text
that parses to an equal tree (the property tests check this).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import TrimeshError

__all__ = ["ExpressionError", "Node", "Literal", "Attribute", "Index", "Call", "Unary", "Binary",
           "parse_expression", "format_expression", "MAX_DEPTH", "MAX_LENGTH"]

MAX_LENGTH = 16_384  # characters; the docs' longest match is ~130
MAX_DEPTH = 100  # tree depth (a chain `a && b && c` is 2 deep); Python's parser allows 200 parens


class ExpressionError(TrimeshError):
    """An expression that does not parse or type-check: ``message`` and the 1-based ``column``."""

    def __init__(self, message: str, column: int, text: str = "") -> None:
        self.message = message
        self.column = column
        self.text = text
        super().__init__(f"column {column}: {message}")


# --- the tree -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    column: int = field(default=0, compare=False, kw_only=True)


@dataclass(frozen=True)
class Literal(Node):
    """A constant: ``value`` is ``str``, ``int``, ``float`` or ``bool``."""

    value: Any


@dataclass(frozen=True)
class Attribute(Node):
    name: str


@dataclass(frozen=True)
class Index(Node):
    """``target[key]``: a STRING_MAP looked up by a STRING."""

    target: Node
    key: Node


@dataclass(frozen=True)
class Call(Node):
    """``name(args)``, or the method ``target.name(args)`` when ``target`` is set."""

    name: str
    args: tuple[Node, ...]
    target: Node | None = None


@dataclass(frozen=True)
class Unary(Node):
    op: str  # "!"
    operand: Node


@dataclass(frozen=True)
class Binary(Node):
    op: str  # "||", "&&", "==", "!=", "|"
    left: Node
    right: Node


PRECEDENCE = {"||": 1, "&&": 2, "==": 3, "!=": 3, "|": 4}
# Go operators Istio 0.x did not have: named in the error instead of "unexpected character"
_UNSUPPORTED = {"<": 3, "<=": 3, ">": 3, ">=": 3, "+": 4, "-": 4, "^": 4, "*": 5, "/": 5, "%": 5,
                "&": 5, "<<": 5, ">>": 5, "&^": 5}

# --- tokens ---------------------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<ws>[ \t\r\n]+)
  | (?P<float>(?:\d+\.\d*|\.\d+)(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+)
  | (?P<int>\d+)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<dq>")
  | (?P<raw>`)
  | (?P<sq>')
  | (?P<op>==|!=|&&|\|\||<=|>=|<<|>>|&\^|[!|()\[\].,<>+\-*/%&^=])
""", re.VERBOSE)

_DURATION_WORD = re.compile(r"(\d+(\.\d*)?(ns|us|µs|ms|s|m|h))+\Z")
_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
            "\\": "\\"}
_HEX = {"x": 2, "u": 4, "U": 8}


@dataclass
class _Tok:
    kind: str  # "int" "float" "ident" "str" "op" "end"
    value: Any
    pos: int  # 0-based offset


def _read_quoted(text: str, start: int, quote: str) -> tuple[str, int]:
    """The value of the Go string (``"``) or rune (``'``) literal at ``start``, and the offset after
    it."""
    out: list[str] = []
    i = start + 1
    n = len(text)
    while True:
        if i >= n or text[i] == "\n":
            raise ExpressionError("string literal not terminated" if quote == '"' else
                                  "character literal not terminated", start + 1)
        c = text[i]
        if c == quote:
            return "".join(out), i + 1
        if c != "\\":
            out.append(c)
            i += 1
            continue
        if i + 1 >= n:
            raise ExpressionError("string literal not terminated", start + 1)
        e = text[i + 1]
        if e in _ESCAPES:
            out.append(_ESCAPES[e])
            i += 2
        elif e == quote:
            out.append(quote)
            i += 2
        elif e in _HEX:
            digits = text[i + 2:i + 2 + _HEX[e]]
            if len(digits) != _HEX[e] or not all(d in "0123456789abcdefABCDEF" for d in digits):
                raise ExpressionError(f"escape \\{e} needs {_HEX[e]} hexadecimal digits", i + 1)
            code = int(digits, 16)
            if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise ExpressionError(f"escape \\{e}{digits} is not a valid Unicode code point",
                                      i + 1)
            out.append(chr(code))
            i += 2 + _HEX[e]
        elif e in "01234567":
            digits = text[i + 1:i + 4]
            if len(digits) != 3 or not all(d in "01234567" for d in digits) or int(digits, 8) > 255:
                raise ExpressionError("an octal escape is \\ and three octal digits, at most \\377",
                                      i + 1)
            out.append(chr(int(digits, 8)))
            i += 4
        else:
            raise ExpressionError(f"unknown escape sequence \\{e}", i + 1)


def _tokens(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos, n = 0, len(text)
    while pos < n:
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ExpressionError(f"unexpected character {text[pos]!r}", pos + 1)
        kind = m.lastgroup
        if kind == "ws":
            pos = m.end()
        elif kind == "dq":
            value, pos = _read_quoted(text, pos, '"')
            toks.append(_Tok("str", value, m.start()))
        elif kind == "sq":
            value, end = _read_quoted(text, pos, "'")
            if len(value) != 1:
                raise ExpressionError(
                    "single quotes hold one character (a Go rune literal); write strings in "
                    'double quotes: "…"', pos + 1)
            toks.append(_Tok("str", value, pos))
            pos = end
        elif kind == "raw":
            end = text.find("`", pos + 1)
            if end < 0:
                raise ExpressionError("raw string literal not terminated", pos + 1)
            toks.append(_Tok("str", text[pos + 1:end].replace("\r", ""), pos))  # Go drops \r
            pos = end + 1
        else:
            raw = m.group()
            if kind in ("int", "float") and pos + len(raw) < n and (
                    text[pos + len(raw)].isalpha() or text[pos + len(raw)] == "_"):
                unit = re.match(r"[A-Za-zµ_0-9.]+", text[pos + len(raw):])
                word = raw + (unit.group() if unit else "")
                hint = (f'; a duration is written as a string: "{word}"'
                        if _DURATION_WORD.match(word) else "")
                raise ExpressionError(f"{word!r} is not a number{hint}", pos + 1)
            toks.append(_Tok(kind, raw, pos))  # type: ignore[arg-type]
            pos = m.end()
    toks.append(_Tok("end", None, n))
    return toks


# --- parser ---------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0
        self.depth = 0

    def peek(self, ahead: int = 0) -> _Tok:
        return self.toks[min(self.i + ahead, len(self.toks) - 1)]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def fail(self, message: str, tok: _Tok) -> ExpressionError:
        return ExpressionError(message, tok.pos + 1, self.text)

    def expect(self, op: str, what: str) -> _Tok:
        tok = self.peek()
        if tok.kind != "op" or tok.value != op:
            raise self.fail(f"expected {op!r} {what}, found {_describe(tok)}", tok)
        return self.take()

    def enter(self, tok: _Tok) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"expression nested more than {MAX_DEPTH} levels deep", tok)

    def parse(self) -> Node:
        if self.peek().kind == "end":
            raise self.fail("empty expression", self.peek())
        node = self.binary(1)
        tok = self.peek()
        if tok.kind != "end":
            if tok.kind in ("ident", "str", "int", "float"):
                raise self.fail(f"expected an operator (==, !=, &&, ||, |) before "
                                f"{_describe(tok)}", tok)
            raise self.fail(f"{_describe(tok)} does not belong here", tok)
        return node

    def binary(self, level: int) -> Node:
        outer = self.depth
        try:
            return self._binary(level)
        finally:
            self.depth = outer

    def _binary(self, level: int) -> Node:
        left = self.unary()
        while True:
            tok = self.peek()
            if tok.kind != "op":
                return left
            op = tok.value
            if op in _UNSUPPORTED and _UNSUPPORTED[op] >= level:
                raise self.fail(f"operator {op!r} is not part of Mixer's expression language "
                                "(it has ==, !=, &&, ||, !, | and functions)", tok)
            if op == "=":
                raise self.fail("'=' is not an operator: compare with '=='", tok)
            prec = PRECEDENCE.get(op)
            if prec is None or prec < level:
                return left
            self.take()
            self.enter(tok)  # each link of a chain nests the tree one level deeper
            right = self.binary(prec + 1)
            left = Binary(op, left, right, column=tok.pos + 1)

    def unary(self) -> Node:
        tok = self.peek()
        if tok.kind == "op" and tok.value == "!":
            self.take()
            self.enter(tok)
            operand = self.unary()
            self.depth -= 1
            return Unary("!", operand, column=tok.pos + 1)
        if tok.kind == "op" and tok.value == "-":
            nxt = self.peek(1)
            if nxt.kind in ("int", "float") and nxt.pos == tok.pos + 1:
                self.take()
                lit = self.number(self.take(), negative=True)
                return self.postfix(Literal(lit.value, column=tok.pos + 1))
            raise self.fail("'-' is only allowed directly before a number (there is no "
                            "arithmetic)", tok)
        return self.postfix(self.primary())

    def number(self, tok: _Tok, *, negative: bool = False) -> Literal:
        raw = ("-" if negative else "") + tok.value
        if tok.kind == "int":
            value = int(raw)
            if not -(2 ** 63) <= value < 2 ** 63:
                raise self.fail(f"integer {raw} does not fit in 64 bits", tok)
            return Literal(value, column=tok.pos + 1)
        fvalue = float(raw)
        if fvalue in (float("inf"), float("-inf")):
            raise self.fail(f"number {raw} is out of range", tok)
        return Literal(fvalue, column=tok.pos + 1)

    def primary(self) -> Node:
        tok = self.take()
        col = tok.pos + 1
        if tok.kind == "str":
            return Literal(tok.value, column=col)
        if tok.kind in ("int", "float"):
            return self.number(tok)
        if tok.kind == "ident":
            nxt = self.peek()
            if tok.value.lower() in ("true", "false") and not (
                    nxt.kind == "op" and nxt.value in (".", "(")):
                return Literal(tok.value.lower() == "true", column=col)
            return Attribute(tok.value, column=col)
        if tok.kind == "op" and tok.value == "(":
            self.enter(tok)
            inner = self.binary(1)
            self.depth -= 1
            self.expect(")", "to close '('")
            return inner
        raise self.fail(f"expected an attribute, a literal or '(', found {_describe(tok)}", tok)

    def postfix(self, node: Node) -> Node:
        while True:
            tok = self.peek()
            if tok.kind != "op":
                return node
            if tok.value == ".":
                self.take()
                name = self.peek()
                if name.kind != "ident":
                    raise self.fail(f"expected a name after '.', found {_describe(name)}", name)
                self.take()
                after = self.peek()
                if after.kind == "op" and after.value == "(":
                    node = Call(name.value, self.arguments(), target=node, column=node.column)
                elif isinstance(node, Attribute):
                    node = Attribute(f"{node.name}.{name.value}", column=node.column)
                else:
                    raise self.fail(f"'.{name.value}' must be a method call, as in "
                                    f".{name.value}(…)", name)
            elif tok.value == "[":
                self.take()
                self.enter(tok)
                key = self.binary(1)
                self.depth -= 1
                self.expect("]", "to close '['")
                node = Index(node, key, column=node.column)
            elif tok.value == "(":
                if not isinstance(node, Attribute) or "." in node.name:
                    raise self.fail("only a function name can be called", tok)
                node = Call(node.name, self.arguments(), column=node.column)
            else:
                return node

    def arguments(self) -> tuple[Node, ...]:
        open_tok = self.expect("(", "")
        self.enter(open_tok)
        args: list[Node] = []
        if not (self.peek().kind == "op" and self.peek().value == ")"):
            while True:
                args.append(self.binary(1))
                tok = self.peek()
                if tok.kind == "op" and tok.value == ",":
                    self.take()
                    continue
                break
        self.expect(")", "to close the argument list")
        self.depth -= 1
        return tuple(args)


def _describe(tok: _Tok) -> str:
    if tok.kind == "end":
        return "the end of the expression"
    if tok.kind == "str":
        return f"the string {_quote(tok.value)}"
    if tok.kind == "ident":
        return f"the name {tok.value!r}"
    if tok.kind in ("int", "float"):
        return f"the number {tok.value}"
    return repr(tok.value)


def parse_expression(text: str) -> Node:
    """The syntax tree of ``text``; :class:`ExpressionError` with the column when it does not
    parse."""
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression longer than {MAX_LENGTH} characters", 1, text[:40])
    return _Parser(text).parse()


# --- printer --------------------------------------------------------------------------------------

_PRINT_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r", "\a": "\\a",
                  "\b": "\\b", "\f": "\\f", "\v": "\\v"}


def _quote(s: str) -> str:
    out = ['"']
    for c in s:
        esc = _PRINT_ESCAPES.get(c)
        if esc is not None:
            out.append(esc)
        elif c.isprintable():
            out.append(c)
        elif ord(c) < 0x100:
            out.append(f"\\x{ord(c):02x}")
        elif ord(c) < 0x10000:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(f"\\U{ord(c):08x}")
    out.append('"')
    return "".join(out)


def _literal_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, float):
        text = repr(value)
        return text if any(c in text for c in ".e") else text + ".0"
    return str(value)


def format_expression(node: Node) -> str:
    """``node`` as expression text, with the parentheses precedence needs and no others."""
    if isinstance(node, Literal):
        return _literal_text(node.value)
    if isinstance(node, Attribute):
        return node.name
    if isinstance(node, Index):
        return f"{_operand(node.target)}[{format_expression(node.key)}]"
    if isinstance(node, Call):
        args = ", ".join(format_expression(a) for a in node.args)
        if node.target is None:
            return f"{node.name}({args})"
        return f"{_operand(node.target)}.{node.name}({args})"
    if isinstance(node, Unary):
        inner = format_expression(node.operand)
        if isinstance(node.operand, Binary):
            inner = f"({inner})"
        return f"{node.op}{inner}"
    if isinstance(node, Binary):
        prec = PRECEDENCE[node.op]
        left = format_expression(node.left)
        if isinstance(node.left, Binary) and PRECEDENCE[node.left.op] < prec:
            left = f"({left})"
        right = format_expression(node.right)
        if isinstance(node.right, Binary) and PRECEDENCE[node.right.op] <= prec:
            right = f"({right})"
        return f"{left} {node.op} {right}"
    raise TypeError(f"not an expression node: {node!r}")


def _operand(node: Node) -> str:
    """A postfix target: parenthesised unless it is an attribute, a call, an index or a
    non-negative literal."""
    text = format_expression(node)
    if isinstance(node, (Binary, Unary)) or (isinstance(node, Literal) and text.startswith("-")):
        return f"({text})"
    if isinstance(node, Literal) and not isinstance(node.value, str):
        return f"({text})"  # `1.x` would lex as a float, `true.x` as an attribute
    return text
