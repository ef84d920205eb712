"""Typed models of the Mixer kinds that are not adapters: the ``rule``, the templates whose objects
are *instances* (``metric``, ``logentry``, ``listentry``, ``quota``, ``checknothing``,
``reportnothing``, ``kubernetes``) and the ``attributemanifest``.

Mixer's configuration model (concepts.md §12.6–§12.13, docs L1578–L1812): a **handler** is a
configured adapter (see ``_adapters.py``), an **instance** maps request attributes onto a template's
fields, and a **rule** says when which instances go to which handler. Every object is named by its
fully-qualified name ``{metadata.name}.{kind}.{metadata.namespace}`` (L1657); a rule may drop the
namespace suffix when the referenced object lives in the rule's own namespace (L1728).

Fields that hold *attribute expressions* (``value``, ``dimensions``, ``match``, ``severity`` …) are
plain ``str``: the expression language belongs to ``trimesh.mixer``. The loader turns YAML numbers and
booleans in those places back into their text (``response_code: 200`` → ``"200"``), so they read as
the same expression. Field names follow the protos' JSON names (camelCase); the loader also accepts
the snake_case the docs mix in (``monitored_resource_type``, concepts.md §16.12).
"""

from __future__ import annotations

from typing import Literal

from ._traffic import _Model

__all__ = [
    "MixerAction",
    "MixerRule",
    "MetricTemplate",
    "LogEntryTemplate",
    "ListEntryTemplate",
    "QuotaTemplate",
    "CheckNothingTemplate",
    "ReportNothingTemplate",
    "KubernetesTemplate",
    "AttributeInfo",
    "AttributeManifest",
    "VALUE_TYPES",
    "EXPRESSION_FIELDS",
    "mixer_fqn",
    "resolve_mixer_reference",
]

# istio/api policy/v1beta1/value_type.proto (concepts.md §11.3)
VALUE_TYPES = ("STRING", "INT64", "DOUBLE", "BOOL", "TIMESTAMP", "IP_ADDRESS", "EMAIL_ADDRESS", "URI",
               "DNS_NAME", "DURATION", "STRING_MAP")
ValueType = Literal["STRING", "INT64", "DOUBLE", "BOOL", "TIMESTAMP", "IP_ADDRESS", "EMAIL_ADDRESS",
                    "URI", "DNS_NAME", "DURATION", "STRING_MAP"]


# --- rule -----------------------------------------------------------------------------------------


class MixerAction(_Model):
    """Send ``instances`` (``<name>.<template>[.<namespace>]``) to ``handler``
    (``<name>.<adapter>[.<namespace>]``)."""

    handler: str
    instances: list[str] = []
    name: str | None = None


class MixerRule(_Model):
    """``kind: rule``. An empty ``match`` matches every request (docs L549: omitting it equals
    ``match: "true"``)."""

    match: str = ""
    actions: list[MixerAction] = []


# --- templates (instances) ------------------------------------------------------------------------


class MetricTemplate(_Model):
    """``kind: metric``: ``value`` and each dimension are expressions (concepts.md §12.9)."""

    value: str
    dimensions: dict[str, str] = {}
    monitored_resource_type: str | None = None
    monitored_resource_dimensions: dict[str, str] = {}


class LogEntryTemplate(_Model):
    """``kind: logentry`` (telemetry-security.md §3.3)."""

    variables: dict[str, str] = {}
    timestamp: str | None = None
    severity: str | None = None
    monitored_resource_type: str | None = None
    monitored_resource_dimensions: dict[str, str] = {}


class ListEntryTemplate(_Model):
    """``kind: listentry``: the one value a listchecker looks up (``source.labels["version"]``)."""

    value: str


class QuotaTemplate(_Model):
    """``kind: quota``: each dimension is an expression; one counter per distinct tuple."""

    dimensions: dict[str, str] = {}


class CheckNothingTemplate(_Model):
    """``kind: checknothing``: no fields; triggers check adapters such as ``denier``."""


class ReportNothingTemplate(_Model):
    """``kind: reportnothing``: no fields; triggers report adapters."""


class KubernetesTemplate(_Model):
    """``kind: kubernetes`` (upstream ``kubernetesenv`` attribute generator): which attributes hold the
    workload identities, and which attributes to produce. trimesh's registry plays the role of the
    Kubernetes API; the template is kept so the docs' default config loads."""

    source_uid: str | None = None
    source_ip: str | None = None
    destination_uid: str | None = None
    destination_ip: str | None = None
    origin_uid: str | None = None
    origin_ip: str | None = None
    attribute_bindings: dict[str, str] = {}


# --- attributemanifest ----------------------------------------------------------------------------


class AttributeInfo(_Model):
    value_type: ValueType
    description: str | None = None


class AttributeManifest(_Model):
    """``kind: attributemanifest``: the attributes a component produces, with their types
    (concepts.md §12.13). Attribute names use ``[_.a-z0-9]`` (L1397)."""

    revision: str | None = None
    name: str | None = None
    attributes: dict[str, AttributeInfo] = {}


# --- which fields are expressions -----------------------------------------------------------------

# model -> field -> the ValueType its expression must have ("" = any type); every value of a
# map-valued field is one expression. A rule's match is BOOL (concepts.md §12.11); the templates'
# types are those of Istio 0.5-0.7's template protos: metric value/dimensions, quota dimensions,
# logentry variables and monitored-resource dimensions take any type; severity and
# monitoredResourceType are strings, a logentry timestamp a TIMESTAMP, a listentry value a string.
# trimesh.config checks them through the checker trimesh.mixer installs (_validate.py).
EXPRESSION_FIELDS: dict[type, dict[str, str]] = {
    MixerRule: {"match": "BOOL"},
    MetricTemplate: {"value": "", "dimensions": "", "monitored_resource_type": "STRING",
                     "monitored_resource_dimensions": ""},
    LogEntryTemplate: {"variables": "", "timestamp": "TIMESTAMP", "severity": "STRING",
                       "monitored_resource_type": "STRING", "monitored_resource_dimensions": ""},
    ListEntryTemplate: {"value": "STRING"},
    QuotaTemplate: {"dimensions": ""},
}


# --- names ----------------------------------------------------------------------------------------


def mixer_fqn(name: str, kind: str, namespace: str) -> str:
    """``staticversion`` + ``listchecker`` + ``istio-system`` → ``staticversion.listchecker.istio-system``
    (docs L1657)."""
    return f"{name}.{kind}.{namespace}"


def resolve_mixer_reference(ref: str, namespace: str) -> str:
    """A rule's handler/instance reference as a fully-qualified name: ``handler.prometheus`` in a rule
    of namespace ``istio-system`` → ``handler.prometheus.istio-system``; a reference that already has
    three or more parts is returned as written (L1728)."""
    ref = ref.strip()
    return ref if ref.count(".") >= 2 else f"{ref}.{namespace}"
