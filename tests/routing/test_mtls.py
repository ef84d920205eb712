"""Which hops use mutual TLS (trimesh/routing/_mtls.py) and how a secure-naming failure is
handled by the attempt policy — pure, no I/O."""

from __future__ import annotations

import math
import random

import pytest
from routing_helpers import bookinfo_instances, obj, table

from trimesh.config import MeshConfig, annotation_problem, make_instance
from trimesh.routing import (SECURE_NAMING, SECURE_NAMING_FAILURE, AttemptState, GiveUp,
                             RetryPolicy, Retry, inbound_mtls, instance_uses_mtls,
                             secure_endpoints, spiffe_uri)

ON = MeshConfig(auth_policy="MUTUAL_TLS")
OFF = MeshConfig()


def _inst(port=9080, **kw):
    return make_instance("reviews", "127.0.3.1", port, service_account="bookinfo-reviews", **kw)


def test_the_mesh_policy_decides_by_default():
    assert instance_uses_mtls(ON, _inst())
    assert not instance_uses_mtls(OFF, _inst())


def test_an_annotation_for_the_port_overrides_the_mesh_both_ways():
    assert not instance_uses_mtls(ON, _inst(annotations={"auth.istio.io/9080": "NONE"}))
    assert instance_uses_mtls(OFF, _inst(annotations={"auth.istio.io/9080": "MUTUAL_TLS"}))
    # an annotation for another port says nothing about this one
    assert instance_uses_mtls(ON, _inst(annotations={"auth.istio.io/9443": "NONE"}))


def test_excluded_services_and_tcp_ports_stay_plaintext():
    excluded = MeshConfig(auth_policy="MUTUAL_TLS",
                          mtls_excluded_services=["reviews.default.svc.cluster.local"])
    assert not instance_uses_mtls(excluded, _inst())
    assert not instance_uses_mtls(ON, _inst(protocol="mysql"))
    assert not instance_uses_mtls(ON, _inst(protocol="tcp"))


def test_the_inbound_side_follows_the_same_rule():
    fqdn = "reviews.default.svc.cluster.local"
    assert inbound_mtls(ON, fqdn, 9080, {})
    assert not inbound_mtls(ON, fqdn, 9080, {"auth.istio.io/9080": "NONE"})
    assert inbound_mtls(OFF, fqdn, 9080, {"auth.istio.io/9080": "MUTUAL_TLS"})
    assert not inbound_mtls(MeshConfig(auth_policy="MUTUAL_TLS",
                                       mtls_excluded_services=[fqdn]), fqdn, 9080, {})


def test_secure_endpoints_name_the_registrys_identity():
    inst = make_instance("ratings", "127.0.4.1", 9080, namespace="shop",
                         service_account="ratings-sa", domain="example.org")
    assert spiffe_uri(inst) == "spiffe://example.org/ns/shop/sa/ratings-sa"
    identity = "spiffe://example.org/ns/shop/sa/ratings-sa"
    assert secure_endpoints(ON, [inst]) == {
        ("127.0.4.1", 9080): ("127.0.4.1", 9080, "mtls", identity)}
    assert secure_endpoints(OFF, [inst]) is None  # the plaintext fast path: no lookup


def test_the_table_compiles_secure_clusters_from_the_snapshots_mesh_config():
    mesh = obj("MeshConfig", "mesh", {"authPolicy": "MUTUAL_TLS"}, namespace="istio-system")
    secure = table([mesh], bookinfo_instances())
    plain = table([], bookinfo_instances())
    c = secure.cluster("reviews.default.svc.cluster.local", {"version": "v2"})
    assert c.secure is not None and len(c.secure) == 1
    (endpoint, key), = c.secure.items()
    assert key == (*endpoint, "mtls", "spiffe://cluster.local/ns/default/sa/default")
    assert plain.cluster("reviews.default.svc.cluster.local", {"version": "v2"}).secure is None


@pytest.mark.parametrize("annotations, problem", [
    ({"auth.istio.io/9080": "none"}, None),  # case-insensitive, as Istio's
    ({"auth.istio.io/9080": "SOMETIMES"}, "must be NONE or MUTUAL_TLS"),
    ({"auth.istio.io/http": "NONE"}, "needs a port"),
    ({"auth.istio.io/70000": "NONE"}, "needs a port"),
    ({"team": 3}, "strings to strings"),
    (["auth.istio.io/9080=NONE"], "mapping"),
])
def test_annotation_problems_say_which_key(annotations, problem):
    found = annotation_problem(annotations)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found[1]


def test_a_secure_naming_failure_tries_another_host_then_answers_503_uf():
    retry = RetryPolicy(attempts=1)
    state = AttemptState(retry, math.inf)
    state.started(("127.0.0.1", 1))
    step = state.after(SECURE_NAMING, None, 0.0, random.Random(1))
    assert type(step) is Retry and ("127.0.0.1", 1) in step.avoid
    state.started(("127.0.0.2", 1))
    step = state.after(SECURE_NAMING, None, 0.0, random.Random(1))
    assert type(step) is GiveUp and step.reply is SECURE_NAMING_FAILURE
    assert (step.reply.status, step.reply.flag) == (503, "UF")
    assert "identity" in step.reply.body
