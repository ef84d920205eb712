"""The catalogue of config kinds: canonical name, the name used in messages, CLI aliases, spec type.

``trimesh get KIND`` accepts the kind in any case, singular or plural, and the docs' short forms
(CLI.md); :func:`lookup_kind` is the one place that knows them.

Message names (``type_name``) are the ones istioctl printed: ``route-rule``, ``destination-policy``,
``egress-rule`` (docs' ``Created config route-rule//ratings-test-v2``) and, for Mixer kinds, the kind
itself (``Created config metric/istio-system/doublerequestcount``, telemetry-security.md §3.4).
Plurals of Mixer kinds are Istio's CRD plurals (``prometheuses``, ``kuberneteses``). The Istio API
group serves ``v1alpha2`` (every example) and also accepts ``v1alpha1``/``v1beta1``, which the docs'
circuit-breaker task and upstream samples use (traffic-tasks.md §8.2); objects are stored with the
canonical version.

``ingress-rule`` (istioctl 0.5's type list, guides-reference.md §6.3) names the ``Ingress`` kind on the
command line: trimesh's ingress is configured with Kubernetes ``Ingress`` resources, as the docs'
ingress task does. Istio's experimental ``IngressRule`` kind (concepts.md §8.15: upstream only, a
different spec with ``destination``, ``port``, ``match``) is not a separate kind here; a document
with ``kind: IngressRule`` is refused with a message that says to write an Ingress.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import _adapters, _mesh, _mixer, _quota_spec, _traffic

ISTIO_API = "config.istio.io/v1alpha2"
ISTIO_APIS = (ISTIO_API, "config.istio.io/v1alpha1", "config.istio.io/v1beta1")
INGRESS_API = "extensions/v1beta1"
# istioctl's 0.x ingress type names; on the command line they mean Ingress (see above).
INGRESS_RULE_NAMES = ("ingressrule", "ingress-rule", "ingressrules", "ingress-rules")


@dataclass(frozen=True)
class KindInfo:
    kind: str  # canonical, as in YAML: "RouteRule"
    type_name: str  # as in messages: "route-rule"
    plural: str  # "routerules"
    spec_type: type
    api_versions: tuple[str, ...] = (ISTIO_API,)
    aliases: tuple[str, ...] = field(default=())
    category: str = "traffic"  # "traffic" | "mixer" | "mesh"
    role: str = ""  # Mixer kinds: "rule" | "handler" | "instance" | "manifest"; "" otherwise

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
                       api_versions=ISTIO_APIS, aliases=("rr", "route-rules")))
register_kind(KindInfo("DestinationPolicy", "destination-policy", "destinationpolicies",
                       _traffic.DestinationPolicy, api_versions=ISTIO_APIS,
                       aliases=("dp", "destination-policies")))
register_kind(KindInfo("EgressRule", "egress-rule", "egressrules", _traffic.EgressRule,
                       api_versions=ISTIO_APIS, aliases=("er", "egress-rules")))
register_kind(KindInfo("Ingress", "ingress", "ingresses", _traffic.Ingress,
                       api_versions=(INGRESS_API, "networking.k8s.io/v1beta1"),
                       aliases=("ing", *INGRESS_RULE_NAMES)))


def _mixer_kind(kind: str, plural: str, spec_type: type, role: str, *aliases: str) -> None:
    register_kind(KindInfo(kind, kind.lower(), plural, spec_type, api_versions=ISTIO_APIS,
                           aliases=aliases, category="mixer", role=role))


_mixer_kind("rule", "rules", _mixer.MixerRule, "rule")
# templates: their objects are instances
_mixer_kind("metric", "metrics", _mixer.MetricTemplate, "instance")
_mixer_kind("logentry", "logentries", _mixer.LogEntryTemplate, "instance")
_mixer_kind("listentry", "listentries", _mixer.ListEntryTemplate, "instance")
_mixer_kind("quota", "quotas", _mixer.QuotaTemplate, "instance")
_mixer_kind("checknothing", "checknothings", _mixer.CheckNothingTemplate, "instance")
_mixer_kind("reportnothing", "reportnothings", _mixer.ReportNothingTemplate, "instance")
_mixer_kind("kubernetes", "kuberneteses", _mixer.KubernetesTemplate, "instance")
# adapters: their objects are handlers
_mixer_kind("denier", "deniers", _adapters.DenierParams, "handler")
_mixer_kind("listchecker", "listcheckers", _adapters.ListCheckerParams, "handler")
_mixer_kind("memquota", "memquotas", _adapters.MemQuotaParams, "handler")
_mixer_kind("prometheus", "prometheuses", _adapters.PrometheusParams, "handler")
_mixer_kind("stdio", "stdios", _adapters.StdioParams, "handler")
_mixer_kind("fluentd", "fluentds", _adapters.FluentdParams, "handler")
_mixer_kind("kubernetesenv", "kubernetesenvs", _adapters.KubernetesEnvParams, "handler")
_mixer_kind("noop", "noops", _adapters.NoopParams, "handler")
_mixer_kind("attributemanifest", "attributemanifests", _mixer.AttributeManifest, "manifest")
register_kind(KindInfo("QuotaSpec", "quota-spec", "quotaspecs", _quota_spec.QuotaSpec,
                       api_versions=ISTIO_APIS, aliases=("quota-specs",), category="mixer"))
register_kind(KindInfo("QuotaSpecBinding", "quota-spec-binding", "quotaspecbindings",
                       _quota_spec.QuotaSpecBinding, api_versions=ISTIO_APIS,
                       aliases=("quota-spec-bindings",), category="mixer"))
register_kind(KindInfo("MeshConfig", "mesh-config", "meshconfigs", _mesh.MeshConfig,
                       api_versions=ISTIO_APIS, aliases=("mesh", "mesh-configs"), category="mesh"))
