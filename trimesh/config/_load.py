"""Loading config documents: YAML/JSON text → typed, validated :class:`ConfigObject` values.

Pipeline, for one text (``load_text``) or one already-parsed mapping (``object_from_dict``):

1. **Guard the input** before parsing: at most :data:`MAX_INPUT_BYTES`, UTF-8 (a leading BOM is
   dropped), no NUL bytes (binary data).
2. **Repair the docs' copy-paste hazards** and 3. **parse** JSON or multi-document YAML, keeping
   the node tree so a field path maps back to its line: see ``_parse.py``.
4. **Envelope**: ``apiVersion`` (checked against the kind), ``kind`` (see "missing kind" below),
   ``metadata`` (``name`` required, ``namespace`` defaulting to the caller's, ``labels``,
   ``annotations``, ``resourceVersion`` → ``revision``) and ``spec``.
5. **Normalise the spec, guided by the model's types** (``msgspec.inspect``): struct field names are
   accepted in camelCase (the proto JSON names), snake_case (the proto field names; the docs use both,
   e.g. ``http_req_timeout``) and the Python attribute names; keys of map-valued fields (``labels``,
   ``dimensions``, ``appendHeaders`` …) are never renamed. Header names in ``match.request.headers``
   are lower-cased and a bare string value there means ``exact`` (docs L932 ``Foo: bar``). Durations
   are checked, numbers and booleans where text is expected become text, enum values are matched
   case-insensitively. Unknown fields are refused with the closest known spelling.
6. **Convert** with ``msgspec.convert`` and run the kind's semantic checks (``_validate.py``).

Every failure is a :class:`~trimesh.errors.ConfigError` carrying ``path`` (``$.spec.route[1].weight``),
``line`` (1-based, when the text is known), ``source`` and ``document`` (0-based).

**Missing kind.** The docs' DestinationPolicy examples omit ``kind`` (concepts.md §16.1). By default a
document without ``kind`` is refused, naming the kind its spec looks like ("the spec looks like a
DestinationPolicy (has circuitBreaker)"), because istioctl refused too and a guess could store the
wrong kind. ``default_kind="DestinationPolicy"`` (a CLI ``--kind`` flag) or ``infer_kind=True`` (used
by tests and tools that replay the docs' samples) accept such documents.
"""

from __future__ import annotations

import difflib
import json
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import msgspec
import msgspec.inspect as mi

from ..errors import ConfigError
from ._duration import Duration, parse_duration
from ._kinds import INGRESS_RULE_NAMES, KindInfo, all_kinds, lookup_kind
from ._names import DEFAULT_NAMESPACE
from ._object import ConfigObject
from ._parse import (MAX_INPUT_BYTES, Segment, camel, decode_text, line_of, parse_json, parse_yaml,
                     repair_text)
from ._traffic import MatchRequest, StringMatch
from ._validate import validate_object_name, validate_spec

__all__ = ["MAX_INPUT_BYTES", "MAX_VALUES", "load_text", "load_file", "load_mesh_config", "object_from_dict",
           "convert_spec", "format_path", "infer_kind"]

MAX_VALUES = 200_000  # values per document after YAML alias expansion (refuses "billion laughs")

# Top-level and metadata fields. Kubernetes output fields are accepted and dropped so that
# `kubectl get -o yaml`-style documents load.
_ENVELOPE_FIELDS = ("apiVersion", "kind", "metadata", "spec")
_METADATA_FIELDS = ("name", "namespace", "labels", "annotations", "resourceVersion")
_METADATA_IGNORED = ("creationTimestamp", "uid", "generation", "selfLink", "clusterName",
                     "managedFields", "finalizers", "ownerReferences", "generateName")
_KUBERNETES_KINDS = ("Namespace", "Service", "Deployment", "ConfigMap", "Pod", "Secret",
                     "ServiceAccount", "DaemonSet", "ReplicaSet", "StatefulSet", "Job",
                     "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
                     "CustomResourceDefinition", "List")

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_PATH_TOKEN = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[\"((?:[^\"\\]|\\.)*)\"\]|\[\.\.\.\]")


# --- paths ----------------------------------------------------------------------------------------


def format_path(segments: Iterable[Segment]) -> str:
    """``["spec", "route", 1, "weight"]`` → ``$.spec.route[1].weight``; keys that are not
    identifiers are bracketed: ``$.metadata.annotations["kubernetes.io/ingress.class"]``."""
    out = ["$"]
    for s in segments:
        if isinstance(s, int):
            out.append(f"[{s}]")
        elif _IDENT.match(s):
            out.append(f".{s}")
        else:
            out.append("[" + json.dumps(s) + "]")
    return "".join(out)


def _parse_path(path: str) -> list[Segment]:
    segs: list[Segment] = []
    pos = 1 if path.startswith("$") else 0
    for m in _PATH_TOKEN.finditer(path, pos):
        if m.start() != pos:
            break
        pos = m.end()
        if m.group(1) is not None:
            segs.append(m.group(1))
        elif m.group(2) is not None:
            segs.append(int(m.group(2)))
        elif m.group(3) is not None:
            segs.append(json.loads(f'"{m.group(3)}"'))
        else:
            break  # msgspec's "[...]": some dict key, not known
    return segs


def _error(message: str, segments: Iterable[Segment]) -> ConfigError:
    segs = list(segments)
    exc = ConfigError(message, path=format_path(segs))
    exc._segments = segs  # type: ignore[attr-defined]  # for the line lookup in load_text
    return exc


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value!r}" if len(value) < 60 else "a string"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


# --- spellings ------------------------------------------------------------------------------------


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


@lru_cache(maxsize=None)
def _type_info(tp: Any) -> Any:
    return mi.type_info(tp)


@lru_cache(maxsize=None)
def _field_table(cls: type) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Accepted spelling → field, and the canonical (wire) names in order."""
    info = _type_info(cls)
    table: dict[str, Any] = {}
    for f in info.fields:
        for spelling in (f.encode_name, f.name, _snake(f.encode_name), camel(f.name)):
            table.setdefault(spelling, f)
    return table, tuple(f.encode_name for f in info.fields)


def _suggest(word: str, choices: Iterable[str]) -> str:
    choices = list(choices)
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in choices}
        close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
        close = [lowered[c] for c in close]
    return f" (did you mean {close[0]!r}?)" if close else ""


# --- type-guided normalisation --------------------------------------------------------------------


@dataclass
class _Budget:
    left: int = MAX_VALUES


_LOWERCASE_KEYS = {(MatchRequest, "headers")}  # header names are case-insensitive (RFC 9110)


def _normalize(value: Any, t: Any, segs: list[Segment], budget: _Budget) -> Any:
    budget.left -= 1
    if budget.left < 0:
        raise _error(f"document too large: more than {MAX_VALUES} values (YAML aliases expand)", segs)
    if isinstance(t, mi.UnionType):
        others = [x for x in t.types if not isinstance(x, mi.NoneType)]
        if value is None and len(others) < len(t.types):
            return None
        if len(others) == 1:
            return _normalize(value, others[0], segs, budget)
        if any(isinstance(x, mi.StrType) for x in others) and any(
                isinstance(x, mi.LiteralType) for x in others) and isinstance(value, str):
            return _literal(value, [x for x in others if isinstance(x, mi.LiteralType)][0], segs,
                            strict=False)
        return value  # e.g. servicePort: int | str — msgspec decides
    if isinstance(t, mi.StructType):
        return _normalize_struct(value, t, segs, budget)
    if isinstance(t, mi.DictType):
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise _error(f"expected a mapping, got {_describe(value)}", segs)
        out = {}
        for k, v in value.items():
            if isinstance(k, (int, float, bool)):
                k = str(k).lower() if isinstance(k, bool) else str(k)
            if not isinstance(k, str):
                raise _error(f"keys must be strings, got {_describe(k)}", segs)
            out[k] = _normalize(v, t.value_type, segs + [k], budget)
        return out
    if isinstance(t, (mi.ListType, mi.SetType, mi.FrozenSetType, mi.VarTupleType)):
        if value is None:
            return []
        if not isinstance(value, list):
            raise _error(f"expected a list, got {_describe(value)}", segs)
        return [_normalize(v, t.item_type, segs + [i], budget) for i, v in enumerate(value)]
    if isinstance(t, mi.StrType):
        if value is None:
            raise _error("expected a string, got nothing (null)", segs)
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return str(value)
        return value
    if isinstance(t, mi.CustomType) and issubclass(t.cls, Duration):
        if isinstance(value, bool) or not isinstance(value, str):
            raise _error(f"expected a duration string like '10s', '1.5s' or '100ms', got "
                         f"{_describe(value)}", segs)
        try:
            parse_duration(value)
        except ValueError as exc:
            raise _error(str(exc), segs) from None
        return value
    if isinstance(t, mi.LiteralType) and isinstance(value, str):
        return _literal(value, t, segs, strict=True)
    if isinstance(t, mi.BoolType) and not isinstance(value, bool):
        raise _error(f"expected true or false, got {_describe(value)}", segs)
    if isinstance(t, mi.IntType) and (isinstance(value, bool) or not isinstance(value, int)):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise _error(f"expected an integer, got {_describe(value)}", segs)
    if isinstance(t, mi.FloatType) and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise _error(f"expected a number, got {_describe(value)}", segs)
    return value


def _literal(value: str, t: Any, segs: list[Segment], *, strict: bool) -> str:
    for choice in t.values:
        if isinstance(choice, str) and choice.lower() == value.strip().lower():
            return choice
    if not strict:
        return value
    allowed = ", ".join(str(v) for v in t.values)
    raise _error(f"{value!r} is not one of {allowed}", segs)


def _normalize_struct(value: Any, t: Any, segs: list[Segment], budget: _Budget) -> Any:
    cls = t.cls
    if value is None:
        value = {}
    if isinstance(value, str) and cls is StringMatch:
        return {"exact": value}  # `cookie: user=jason` means exact (docs L932)
    if not isinstance(value, dict):
        raise _error(f"expected a mapping of {cls.__name__} fields, got {_describe(value)}", segs)
    table, names = _field_table(cls)
    out: dict[str, Any] = {}
    spelled: dict[str, str] = {}
    for key, v in value.items():
        if not isinstance(key, str):
            raise _error(f"field names must be strings, got {_describe(key)}", segs)
        f = table.get(key)
        if f is None:
            if not names:
                raise _error(f"unknown field {key!r}: {cls.__name__} has no fields", segs + [key])
            raise _error(f"unknown field {key!r}{_suggest(key, names)}; known fields: "
                         f"{', '.join(names)}", segs + [key])
        if f.encode_name in out:
            raise _error(f"field {f.encode_name!r} is given twice (as {spelled[f.encode_name]!r} "
                         f"and {key!r})", segs + [key])
        spelled[f.encode_name] = key
        child = segs + [f.encode_name]
        if (cls, f.name) in _LOWERCASE_KEYS and isinstance(v, dict):
            lowered: dict[Any, Any] = {}
            for hk, hv in v.items():
                name = hk.lower() if isinstance(hk, str) else hk
                if name in lowered:
                    raise _error(f"header {hk!r} is given twice (header names are "
                                 "case-insensitive)", child + [name])
                lowered[name] = hv
            v = lowered
        out[f.encode_name] = _normalize(v, f.type, child, budget)
    for f in _type_info(cls).fields:
        if f.required and f.encode_name not in out:
            raise _error(f"missing required field {f.encode_name!r}", segs + [f.encode_name])
    return out


def _dec_hook(typ: type, obj: Any) -> Any:
    if typ is Duration:
        if isinstance(obj, (int, float)) and not isinstance(obj, bool):
            raise ValueError(f"expected a duration string like '10s', got the number {obj!r}")
        return parse_duration(obj)
    raise NotImplementedError


def convert_spec(spec_type: type, data: Any, *, _segments: tuple[Segment, ...] = ("spec",)) -> Any:
    """Build a typed spec from plain data (either spelling); ConfigError with the field path."""
    segs = list(_segments)
    normalized = _normalize(data if data is not None else {}, _type_info(spec_type), segs, _Budget())
    try:
        return msgspec.convert(normalized, spec_type, dec_hook=_dec_hook)
    except msgspec.ValidationError as exc:
        msg = str(exc)
        sub: list[Segment] = []
        if " - at `" in msg:
            msg, _, where = msg.rpartition(" - at `")
            sub = _parse_path(where.rstrip("`"))
        raise _error(msg, segs + sub) from None


# --- kinds ----------------------------------------------------------------------------------------


def _spec_fields(info: KindInfo) -> set[str]:
    table, _ = _field_table(info.spec_type)
    return set(table)


def infer_kind(spec: Any, *, category: str | None = None) -> tuple[KindInfo | None, str]:
    """The one kind whose spec accepts every field of ``spec``, and why (``"has circuitBreaker"``);
    ``(None, "")`` when no kind or several kinds fit."""
    if not isinstance(spec, dict) or not spec:
        return None, ""
    keys = [k for k in spec if isinstance(k, str)]
    kinds = [k for k in all_kinds() if category is None or k.category == category]
    fits = [k for k in kinds if set(keys) <= _spec_fields(k)]
    if len(fits) != 1:
        return None, ""
    (info,) = fits
    others = set().union(*(_spec_fields(k) for k in kinds if k is not info))
    distinctive = [k for k in keys if k not in others] or keys
    table, _ = _field_table(info.spec_type)
    return info, "has " + ", ".join(table[k].encode_name for k in distinctive)


def _kind_of(doc: dict[str, Any], default_kind: str | None, infer: bool) -> KindInfo:
    raw = doc.get("kind")
    if raw is None or raw == "":
        if default_kind:
            info = lookup_kind(default_kind)
            if info is None:
                raise _error(f"unknown default kind {default_kind!r}", ["kind"])
            return info
        guess, why = infer_kind(doc.get("spec"))
        if infer and guess is not None:
            return guess
        if not any(k in doc for k in ("apiVersion", "metadata", "spec")):
            found = ", ".join(str(k) for k in list(doc)[:4])
            raise _error("not a config object: expected apiVersion, kind, metadata and spec at the "
                         f"top level, found {found} (a fragment of a larger document?)", [])
        if guess is not None:
            raise _error(f"missing 'kind': the spec looks like a {guess.kind} ({why}); add "
                         f"'kind: {guess.kind}'", ["kind"])
        raise _error("missing 'kind' (for example 'kind: RouteRule')", ["kind"])
    if not isinstance(raw, str):
        raise _error(f"'kind' must be a string, got {_describe(raw)}", ["kind"])
    info = lookup_kind(raw)
    if info is None:
        hint = ""
        if raw in _KUBERNETES_KINDS:
            hint = (f": {raw} is a Kubernetes kind; trimesh reads mesh config only (RouteRule, "
                    "DestinationPolicy, EgressRule, Ingress, Mixer kinds)")
        else:
            names = [k.kind for k in all_kinds()]
            hint = _suggest(raw, names) or f" (known kinds: {', '.join(names)})"
        raise _error(f"unknown kind {raw!r}{hint}", ["kind"])
    if raw.strip().lower() in INGRESS_RULE_NAMES:
        raise _error(f"kind {raw!r} (Istio's experimental IngressRule, concepts.md §8.15) is not "
                     "supported: write a Kubernetes Ingress (apiVersion: extensions/v1beta1, "
                     "kind: Ingress, spec.rules[].http.paths[].backend)", ["kind"])
    if raw.strip().lower() != info.kind.lower():
        raise _error(f"write the kind as {info.kind!r}, not {raw!r}", ["kind"])
    return info


def object_from_dict(doc: Any, *, default_namespace: str | None = None,
                     default_kind: str | None = None, infer_kind: bool = False) -> ConfigObject:
    """One config object from a parsed document (the docs' shape, or ``ConfigObject.to_dict()``
    output). ``metadata.resourceVersion`` becomes ``revision``. Raises ConfigError with ``path``."""
    if not isinstance(doc, dict):
        extra = ""
        if isinstance(doc, list):
            extra = ": put each object in its own YAML document, separated by '---'"
        raise _error("a config document must be a mapping (apiVersion, kind, metadata, spec), got "
                     f"{_describe(doc)}{extra}", [])
    info = _kind_of(doc, default_kind, infer_kind)
    for key in doc:
        if key not in _ENVELOPE_FIELDS:
            if key == "status":
                continue  # Kubernetes output; not configuration
            raise _error(f"unknown top-level field {key!r}{_suggest(str(key), _ENVELOPE_FIELDS)}; a "
                         "config object has apiVersion, kind, metadata and spec", [str(key)])
    api = doc.get("apiVersion")
    if api is not None and api not in info.api_versions:
        raise _error(f"apiVersion {api!r} does not serve kind {info.kind}: use "
                     f"{info.api_version!r}", ["apiVersion"])
    meta = doc.get("metadata")
    if meta is None:
        raise _error("missing 'metadata' (with at least 'name')", ["metadata"])
    if not isinstance(meta, dict):
        raise _error(f"'metadata' must be a mapping, got {_describe(meta)}", ["metadata"])
    for key in meta:
        if key not in _METADATA_FIELDS and key not in _METADATA_IGNORED:
            raise _error(f"unknown metadata field {key!r}{_suggest(str(key), _METADATA_FIELDS)}",
                         ["metadata", str(key)])
    name = meta.get("name")
    if name is None or name == "":
        raise _error("missing 'metadata.name'", ["metadata", "name"])
    name = _text(name, ["metadata", "name"])
    namespace = meta.get("namespace")
    namespace = (_text(namespace, ["metadata", "namespace"]) if namespace not in (None, "")
                 else default_namespace or DEFAULT_NAMESPACE)
    problem = validate_object_name(name, mixer=info.category == "mixer")
    if problem:
        raise _error(problem, ["metadata", "name"])
    problem = validate_object_name(namespace, mixer=True, what="namespace")
    if problem:
        raise _error(problem, ["metadata", "namespace"])
    labels = _string_map(meta.get("labels"), ["metadata", "labels"])
    annotations = _string_map(meta.get("annotations"), ["metadata", "annotations"])
    revision = 0
    raw_rev = meta.get("resourceVersion")
    if raw_rev not in (None, ""):
        try:
            revision = int(str(raw_rev))
            if revision < 0:
                raise ValueError
        except ValueError:
            raise _error(f"resourceVersion must be a non-negative integer, got {raw_rev!r}",
                         ["metadata", "resourceVersion"]) from None
    spec_data = doc.get("spec")
    if spec_data is not None and not isinstance(spec_data, dict):
        raise _error(f"'spec' must be a mapping, got {_describe(spec_data)}", ["spec"])
    spec = convert_spec(info.spec_type, spec_data)
    for segs, message in validate_spec(info.kind, spec):
        raise _error(message, ["spec", *segs])
    return ConfigObject(kind=info.kind, name=name, namespace=namespace, api_version=info.api_version,
                        spec=spec, revision=revision, labels=labels, annotations=annotations)


def _text(value: Any, segs: list[Segment]) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _error(f"expected a string, got {_describe(value)}", segs)
    return str(value)


def _string_map(value: Any, segs: list[Segment]) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _error(f"expected a mapping of strings, got {_describe(value)}", segs)
    return {_text(k, segs): _text(v, segs + [str(k)]) for k, v in value.items()}


# --- text → documents -----------------------------------------------------------------------------


def load_text(text: str | bytes, *, source: str = "<stdin>", default_namespace: str | None = None,
              default_kind: str | None = None, infer_kind: bool = False,
              allow_duplicates: bool = False, notes: list[str] | None = None) -> list[ConfigObject]:
    """Every document of a (multi-document) YAML or JSON text, as typed, validated objects.

    ``default_namespace`` fills ``metadata.namespace`` when absent (``-n``); ``default_kind`` /
    ``infer_kind`` accept documents without ``kind`` (see the module docstring); the same object
    twice in one text is refused unless ``allow_duplicates``; repairs made to the text are appended
    to ``notes``. Raises ConfigError with path, line, source and document."""
    decoded = decode_text(text, source)
    stripped = decoded.lstrip()
    if stripped[:1] in ("{", "["):
        docs = parse_json(decoded, source)
    else:
        docs = parse_yaml(repair_text(decoded, source, notes), source)
    out: list[ConfigObject] = []
    seen: dict[tuple[str, str, str], int] = {}
    for doc in docs:
        if doc.data is None:
            continue  # an empty document (e.g. after a trailing '---')
        try:
            obj = object_from_dict(doc.data, default_namespace=default_namespace,
                                   default_kind=default_kind, infer_kind=infer_kind)
        except ConfigError as exc:
            segs = getattr(exc, "_segments", None)
            line = line_of(doc.node, segs) if segs is not None else None
            raise ConfigError(exc.message, path=exc.path, line=line, source=source,
                              document=doc.index) from None
        if not allow_duplicates:
            if obj.key in seen:
                raise ConfigError(f"{obj.ref} is defined twice (also in document {seen[obj.key] + 1})",
                                  path="$.metadata.name", source=source, document=doc.index,
                                  line=line_of(doc.node, ["metadata", "name"]))
            seen[obj.key] = doc.index
        out.append(obj)
    return out


def load_file(path_or_dash: str | Path, *, stdin: Any = None, **options: Any) -> list[ConfigObject]:
    """``load_text`` of a file, or of standard input when the path is ``-`` (``-f -``). Reads at most
    ``MAX_INPUT_BYTES + 1`` bytes, so an oversized input is refused without reading it all.
    ``stdin`` (a binary file object) replaces ``sys.stdin.buffer``; ``options`` go to load_text."""
    if str(path_or_dash) == "-":
        stream = stdin if stdin is not None else sys.stdin.buffer
        source = options.pop("source", "<stdin>")
        try:
            data = stream.read(MAX_INPUT_BYTES + 1)
        except OSError as exc:
            raise ConfigError(f"cannot read standard input: {exc.strerror or exc}",
                              source=source) from None
    else:
        path = Path(path_or_dash)
        source = options.pop("source", str(path_or_dash))
        try:
            with path.open("rb") as f:
                data = f.read(MAX_INPUT_BYTES + 1)
        except IsADirectoryError:
            raise ConfigError("is a directory, not a config file", source=source) from None
        except OSError as exc:
            raise ConfigError(f"cannot read: {exc.strerror or exc}", source=source) from None
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    if len(data) > MAX_INPUT_BYTES:
        raise ConfigError(f"input is larger than the limit of {MAX_INPUT_BYTES} bytes "
                          f"({MAX_INPUT_BYTES // (1024 * 1024)} MiB) for one config file; split it",
                          source=source)
    return load_text(data, source=source, **options)


def load_mesh_config(text: str | bytes, *, source: str = "<mesh config>") -> Any:
    """A :class:`~trimesh.config.MeshConfig` from a mesh config file: either the bare document of
    Istio's ``istio`` ConfigMap key ``mesh`` (``authPolicy: MUTUAL_TLS`` …) or a ``kind:
    MeshConfig`` object. An empty file gives the defaults."""
    from ._mesh import MeshConfig

    decoded = decode_text(text, source)
    docs = [d for d in (parse_json(decoded, source) if decoded.lstrip()[:1] in ("{", "[")
                        else parse_yaml(repair_text(decoded, source, None), source))
            if d.data is not None]
    if not docs:
        return MeshConfig()
    if len(docs) > 1:
        raise ConfigError("a mesh config is one document", source=source, document=1)
    doc = docs[0]
    try:
        if isinstance(doc.data, dict) and "kind" in doc.data:
            obj = object_from_dict(doc.data)
            if obj.kind != "MeshConfig":
                raise _error(f"expected a mesh config, got a {obj.kind}", ["kind"])
            return obj.spec
        if not isinstance(doc.data, dict):
            raise _error(f"a mesh config must be a mapping, got {_describe(doc.data)}", [])
        spec = convert_spec(MeshConfig, doc.data, _segments=())
        for segs, message in validate_spec("MeshConfig", spec):
            raise _error(message, segs)
        return spec
    except ConfigError as exc:
        segs = getattr(exc, "_segments", None)
        raise ConfigError(exc.message, path=exc.path, source=source,
                          line=line_of(doc.node, segs) if segs is not None else None) from None
