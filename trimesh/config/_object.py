"""The envelope every config object shares: apiVersion, kind, metadata, spec, and a revision."""

from __future__ import annotations

from typing import Any

import msgspec

from ._duration import Duration, format_duration
from ._kinds import lookup_kind


class ConfigObject(msgspec.Struct, frozen=True, kw_only=True):
    """A typed, immutable config object. ``spec`` is an instance of the kind's spec type
    (``trimesh.config.RouteRule`` for ``kind: RouteRule``). ``revision`` is 0 until the control's
    store assigns one."""

    kind: str
    name: str
    spec: Any
    namespace: str = "default"
    api_version: str = "config.istio.io/v1alpha2"
    revision: int = 0
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.namespace, self.name)

    @property
    def type_name(self) -> str:
        info = lookup_kind(self.kind)
        return info.type_name if info else self.kind.lower()

    @property
    def ref(self) -> str:
        """``route-rule/default/reviews-default``: how messages name the object."""
        return f"{self.type_name}/{self.namespace}/{self.name}"

    def to_dict(self) -> dict[str, Any]:
        """The object in the docs' shape (camelCase, durations as ``10s``), ready for YAML/JSON."""
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if self.revision:
            metadata["resourceVersion"] = str(self.revision)
        if self.labels:
            metadata["labels"] = dict(self.labels)
        if self.annotations:
            metadata["annotations"] = dict(self.annotations)
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "metadata": metadata,
            "spec": spec_to_builtins(self.spec),
        }


def _enc_hook(obj: Any) -> Any:
    if isinstance(obj, Duration):
        return format_duration(obj)
    raise NotImplementedError(f"cannot encode {type(obj).__name__}")


def spec_to_builtins(spec: Any) -> Any:
    """A spec struct as plain dicts/lists with the wire (camelCase) names and docs' durations."""
    return msgspec.to_builtins(spec, enc_hook=_enc_hook)
