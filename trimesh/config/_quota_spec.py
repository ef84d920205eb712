"""``QuotaSpec`` and ``QuotaSpecBinding``: which requests the sidecar charges against which quota.

Not in the docs' text (traffic-tasks.md §9.8 [EXT]); the shapes are the istio/api
``mixer/v1/config/client/quota.proto`` ones used by Istio 0.6/0.7's
``samples/bookinfo/kube/mixer-rule-ratings-ratelimit.yaml``. A ``QuotaSpec`` lists rules, each with
an optional attribute match and the quotas to charge (``quota`` names a quota *instance*, ``charge``
is the amount, 1 unless given); a ``QuotaSpecBinding`` attaches specs to services. With no binding at
all trimesh charges 1 unit of every quota per request (the 0.5 behaviour); see docs/config.md.
"""

from __future__ import annotations

from ._traffic import IstioService, StringMatch, _Model

__all__ = ["AttributeMatch", "QuotaCharge", "QuotaRule", "QuotaSpec", "QuotaSpecReference",
           "QuotaSpecBinding", "DEFAULT_QUOTA_CHARGE"]

DEFAULT_QUOTA_CHARGE = 1  # quota.proto: charge defaults to 1 when unset or 0 (istio/proxy)


class AttributeMatch(_Model):
    """AND of ``clause``: attribute name → StringMatch (a bare string means ``exact``)."""

    clause: dict[str, StringMatch] = {}


class QuotaCharge(_Model):
    quota: str
    charge: int = DEFAULT_QUOTA_CHARGE


class QuotaRule(_Model):
    """Charge ``quotas`` when any of ``match`` applies (no match: every request)."""

    match: list[AttributeMatch] = []
    quotas: list[QuotaCharge] = []


class QuotaSpec(_Model):
    rules: list[QuotaRule] = []


class QuotaSpecReference(_Model):
    name: str
    namespace: str | None = None


class QuotaSpecBinding(_Model):
    """Bind ``quotaSpecs`` to ``services`` (``IstioService``: name/namespace/domain or ``service``;
    ``service: '*'`` binds every service)."""

    quota_specs: list[QuotaSpecReference] = []
    services: list[IstioService] = []
