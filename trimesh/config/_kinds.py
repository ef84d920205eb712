"""The catalogue of config kinds: canonical name, the name used in messages, CLI aliases, spec type.

``trimesh get KIND`` accepts the kind in any case, singular or plural, and the docs' short forms
(CLI.md); :func:`lookup_kind` is the one place that knows them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import _traffic

ISTIO_API = "config.istio.io/v1alpha2"
INGRESS_API = "extensions/v1beta1"


@dataclass(frozen=True)
class KindInfo:
    kind: str  # canonical, as in YAML: "RouteRule"
    type_name: str  # as in messages: "route-rule"
    plural: str  # "routerules"
    spec_type: type
    api_versions: tuple[str, ...] = (ISTIO_API,)
    aliases: tuple[str, ...] = field(default=())
    category: str = "traffic"  # "traffic" | "mixer" | "mesh"

    @property
    def api_version(self) -> str:
        return self.api_versions[0]

    def names(self) -> set[str]:
        """Every spelling that names this kind, lower-cased."""
        return {self.kind.lower(), self.type_name, self.type_name.replace("-", ""), self.plural,
                *self.aliases}


_KINDS: dict[str, KindInfo] = {}
_BY_NAME: dict[str, KindInfo] = {}


def register_kind(info: KindInfo) -> KindInfo:
    """Add a kind to the catalogue (config modules call this at import)."""
    _KINDS[info.kind] = info
    for n in info.names():
        _BY_NAME[n.lower()] = info
    return info


def lookup_kind(name: str) -> KindInfo | None:
    """``RouteRule``, ``routerule``, ``route-rule``, ``routerules``, ``ROUTERULES`` … → KindInfo."""
    return _BY_NAME.get(name.strip().lower())


def all_kinds() -> list[KindInfo]:
    return list(_KINDS.values())


register_kind(KindInfo("RouteRule", "route-rule", "routerules", _traffic.RouteRule,
                       aliases=("rr",)))
register_kind(KindInfo("DestinationPolicy", "destination-policy", "destinationpolicies",
                       _traffic.DestinationPolicy, aliases=("dp",)))
register_kind(KindInfo("EgressRule", "egress-rule", "egressrules", _traffic.EgressRule,
                       aliases=("er",)))
register_kind(KindInfo("Ingress", "ingress", "ingresses", _traffic.Ingress,
                       api_versions=(INGRESS_API, "networking.k8s.io/v1beta1"), aliases=("ing",)))
