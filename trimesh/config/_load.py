"""Loading config documents: YAML/JSON text → typed :class:`ConfigObject` values.

(Minimal first version: multi-document YAML, kind lookup, typed specs with durations. Validation with
line numbers, snake_case spellings, the docs' unquoted ``*.foo.com`` and kind inference are built on
top of this.)
"""

from __future__ import annotations

from typing import Any

import msgspec
import yaml

from ..errors import ConfigError
from ._duration import Duration, parse_duration
from ._kinds import lookup_kind
from ._names import DEFAULT_NAMESPACE
from ._object import ConfigObject

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _dec_hook(typ: type, obj: Any) -> Any:
    if typ is Duration:
        if isinstance(obj, (int, float)) and not isinstance(obj, bool):
            raise ValueError(f"expected a duration string like '10s', got the number {obj!r}")
        return parse_duration(obj)
    raise NotImplementedError


def convert_spec(spec_type: type, data: Any) -> Any:
    """Build a typed spec from plain data; raise ConfigError with the field path on failure."""
    try:
        return msgspec.convert(data, spec_type, dec_hook=_dec_hook)
    except msgspec.ValidationError as exc:
        msg = str(exc)
        path = None
        if " - at `" in msg:
            msg, _, path = msg.rpartition(" - at `")
            path = "$.spec" + path.rstrip("`")[1:]
        raise ConfigError(msg, path=path or "$.spec") from None


def object_from_dict(doc: Any, *, default_namespace: str | None = None) -> ConfigObject:
    if not isinstance(doc, dict):
        raise ConfigError(f"a config document must be a mapping, got {type(doc).__name__}", path="$")
    kind_name = doc.get("kind")
    if not kind_name:
        raise ConfigError("missing 'kind'", path="$.kind")
    info = lookup_kind(str(kind_name))
    if info is None:
        raise ConfigError(f"unknown kind {kind_name!r}", path="$.kind")
    meta = doc.get("metadata") or {}
    if not isinstance(meta, dict) or not meta.get("name"):
        raise ConfigError("missing 'metadata.name'", path="$.metadata.name")
    spec = convert_spec(info.spec_type, doc.get("spec") or {})
    return ConfigObject(
        kind=info.kind,
        name=str(meta["name"]),
        namespace=str(meta.get("namespace") or default_namespace or DEFAULT_NAMESPACE),
        api_version=str(doc.get("apiVersion") or info.api_version),
        spec=spec,
        labels=dict(meta.get("labels") or {}),
        annotations=dict(meta.get("annotations") or {}),
    )


def load_text(text: str | bytes, *, source: str = "<stdin>",
              default_namespace: str | None = None) -> list[ConfigObject]:
    """Every document of a (multi-document) YAML or JSON text, as typed objects."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"not UTF-8 text (byte {exc.start})", source=source) from None
    try:
        docs = [d for d in yaml.load_all(text, Loader=_Loader) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(f"invalid YAML: {getattr(exc, 'problem', exc)}", source=source,
                          line=mark.line + 1 if mark else None) from None
    out = []
    for i, doc in enumerate(docs):
        try:
            out.append(object_from_dict(doc, default_namespace=default_namespace))
        except ConfigError as exc:
            raise ConfigError(exc.message, path=exc.path, source=source, document=i) from None
    return out
