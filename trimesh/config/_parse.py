"""Text → documents: input guards, the docs' copy-paste repairs, YAML/JSON parsing, line lookup.

- **Guards**, before parsing: at most :data:`MAX_INPUT_BYTES`; UTF-8 (a leading BOM is dropped); no
  NUL bytes (binary data).
- **Repairs**, keeping every line where it was so line numbers stay true: (a) the docs render several
  files with every line indented by one space, which turns their ``---`` separators into text: the
  text is split at ``---`` lines indented like the document before them and each document is dedented
  by the indentation all its lines share; (b) an unquoted scalar that starts with ``*`` followed by a
  character that cannot start an alias name (``service: *.foo.com``, docs L1045) is single-quoted —
  YAML would read it as an alias. Each repair is reported through the caller's ``notes`` list.
- **Parsing**: JSON when the text starts with ``{`` or ``[`` (an array, or the config API's
  ``{"objects": [...]}``, holds several objects), otherwise multi-document YAML with libyaml's
  ``CSafeLoader``. Each document keeps its YAML node tree (for JSON, the tree YAML builds of the same
  text) so :func:`line_of` can map a field path to the line of its key (node ``start_mark``). A key
  given twice in one mapping is refused (YAML would silently keep the last). A parse error next to a
  line that is just ``...`` is reported as the docs' elision, which is what it is.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import yaml

from ..errors import ConfigError

MAX_INPUT_BYTES = 2 * 1024 * 1024  # one config file or request body; checked before parsing

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Segment = str | int

# `key: *.foo.com` / `- *-bar.foo.com`: an unquoted scalar starting with '*' and a character that
# cannot begin an alias name (aliases in config files are written `*name`).
_STAR_SCALAR = re.compile(
    r"^(?P<lead>\s*(?:-\s+)*(?:[A-Za-z0-9_.\-/]+:\s+)?)(?P<val>\*(?:[^\sA-Za-z0-9_#][^\s#]*)?)"
    r"(?P<tail>\s+#.*|\s*)$")


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


@dataclass
class Document:
    index: int
    data: Any
    node: Any = None  # yaml node (or None: line unknown)


def decode_text(text: str | bytes, source: str) -> str:
    if isinstance(text, (bytes, bytearray, memoryview)):
        raw = bytes(text)
        if len(raw) > MAX_INPUT_BYTES:
            raise ConfigError(_too_big(len(raw)), source=source)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            raise ConfigError(f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at offset {exc.start} "
                              "(binary data, or another encoding?)", source=source,
                              line=line) from None
    elif not isinstance(text, str):
        raise ConfigError(f"expected text, got {type(text).__name__}", source=source)
    elif len(text) > MAX_INPUT_BYTES // 4 and len(text.encode("utf-8", "surrogatepass")) > MAX_INPUT_BYTES:
        raise ConfigError(_too_big(len(text.encode("utf-8", "surrogatepass"))), source=source)
    if text.startswith("\ufeff"):
        text = text[1:]
    nul = text.find("\x00")
    if nul >= 0:
        raise ConfigError("binary data (a NUL byte) is not a YAML or JSON document", source=source,
                          line=text.count("\n", 0, nul) + 1)
    return text


def _too_big(size: int) -> str:
    return (f"input is {size} bytes, more than the limit of {MAX_INPUT_BYTES} bytes "
            f"({MAX_INPUT_BYTES // (1024 * 1024)} MiB) for one config file; split it")


_SEPARATOR = re.compile(r"( *)---\s*\Z")
_UNQUOTED_STAR = re.compile(r"[:\[{,-]\s*\*[^\sA-Za-z0-9_]")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def repair_text(text: str, source: str, notes: list[str] | None) -> str:
    lines = text.split("\n")
    # Split into documents at '---' lines indented like the document before them, then dedent each
    # document by the indentation all its lines share (the docs render files indented by one space).
    chunks: list[tuple[int, int]] = []
    start, common = 0, None
    for i, ln in enumerate(lines):
        m = _SEPARATOR.match(ln)
        if m is not None and (not m.group(1) or len(m.group(1)) == common):
            chunks.append((start, i))
            if m.group(1):
                lines[i] = ln.lstrip(" ")
            start, common = i + 1, None
        elif ln.strip():
            common = _indent(ln) if common is None else min(common, _indent(ln))
    chunks.append((start, len(lines)))
    for a, b in chunks:
        body = [ln for ln in lines[a:b] if ln.strip()]
        shared = min((_indent(ln) for ln in body), default=0)
        if shared:
            lines[a:b] = [ln[shared:] if ln.strip() else ln.lstrip(" ") for ln in lines[a:b]]
            if notes is not None:
                notes.append(f"{source}:{a + 1}: removed the indentation of {shared} space(s) that "
                             f"every line of lines {a + 1}–{b} shares")
    for i, ln in enumerate(lines):
        if "*" not in ln:
            continue
        m = _STAR_SCALAR.match(ln)
        if m is None:
            continue
        val = m.group("val")
        lines[i] = f"{m.group('lead')}'{val}'{m.group('tail')}"
        if notes is not None:
            notes.append(f"{source}:{i + 1}: quoted {val} (an unquoted '*' starts a YAML alias)")
    return "\n".join(lines)


def _elision_line(text: str) -> int | None:
    for i, ln in enumerate(text.split("\n")):
        if ln.strip() == "..." and ln[:1].isspace():
            return i + 1
    return None


def parse_yaml(text: str, source: str) -> list[Document]:
    docs: list[Document] = []
    loader = _Loader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            _check_duplicate_keys(node, source, len(docs))
            docs.append(Document(len(docs), loader.construct_document(node), node))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark is not None else None
        elided = _elision_line(text)
        if elided is not None and (line is None or elided <= line + 1):
            raise ConfigError("'...' is how the docs mark fields they left out; it is not YAML: "
                              "delete the line or write the missing fields", source=source,
                              line=elided, document=len(docs)) from None
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        detail = f"{problem} ({context})" if context else str(problem)
        lines = text.split("\n")
        if line is not None and 0 < line <= len(lines) and _UNQUOTED_STAR.search(lines[line - 1]):
            detail += "; quote values that start with '*', e.g. \"*.foo.com\""
        raise ConfigError(f"invalid YAML: {detail}", source=source, line=line,
                          document=len(docs)) from None
    except RecursionError:
        raise ConfigError("invalid YAML: nested too deeply", source=source,
                          document=len(docs)) from None
    finally:
        loader.dispose()
    return docs


def _check_duplicate_keys(root: Any, source: str, index: int) -> None:
    seen_nodes: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: dict[str, int] = {}
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.tag != "tag:yaml.org,2002:merge":
                    if k.value in keys:
                        raise ConfigError(f"key {k.value!r} appears twice in one mapping (also on "
                                          f"line {keys[k.value]})", source=source,
                                          line=k.start_mark.line + 1, document=index)
                    keys[k.value] = k.start_mark.line + 1
                stack.append(v)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def parse_json(text: str, source: str) -> list[Document]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"invalid JSON: {exc.msg} (column {exc.colno})", source=source,
                          line=exc.lineno) from None
    except RecursionError:
        raise ConfigError("invalid JSON: nested too deeply", source=source) from None
    node = None
    try:  # JSON is YAML: the node tree gives line numbers for error messages
        node = yaml.compose(text, Loader=_Loader)
    except (yaml.YAMLError, RecursionError):
        node = None
    if isinstance(data, dict) and "kind" not in data and isinstance(data.get("objects"), list):
        items = data["objects"]
        sub = _child(node, "objects")
        return [Document(i, d, _child(sub, i)) for i, d in enumerate(items)]
    if isinstance(data, list):
        return [Document(i, d, _child(node, i)) for i, d in enumerate(data)]
    return [Document(0, data, node)]


def _child(node: Any, seg: Segment) -> Any:
    if node is None:
        return None
    if isinstance(seg, int) and isinstance(node, yaml.SequenceNode):
        return node.value[seg] if 0 <= seg < len(node.value) else None
    if isinstance(seg, str) and isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and _same_key(k.value, seg):
                return v
    return None


def _same_key(written: str, seg: str) -> bool:
    return written == seg or camel(written) == seg or written.lower() == seg


def line_of(node: Any, segments: list[Segment]) -> int | None:
    """The line of the deepest node along ``segments`` (the key's line for a mapping entry)."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for seg in segments:
        if isinstance(seg, int) and isinstance(node, yaml.SequenceNode):
            if not 0 <= seg < len(node.value):
                break
            node = node.value[seg]
            line = node.start_mark.line + 1
        elif isinstance(seg, str) and isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and _same_key(k.value, seg):
                    node, line = v, k.start_mark.line + 1
                    break
            else:
                break
        else:
            break
    return line
