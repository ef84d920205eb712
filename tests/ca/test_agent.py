"""The cert agent against the CA service in-process, in virtual time (memory streams)."""

from __future__ import annotations

import random
import stat

import pytest
import trio
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from trimesh.ca import CertAgent, CertStore, SpiffeId, issue_token, mesh_token_path
from trimesh.sidecar import AdminApp

from service_helpers import T0, MemoryConnector, make_service

A = SpiffeId.of("default", "a")
B = SpiffeId.of("default", "b")


def _agent(service, nursery, identity=A, *, token=None, **options) -> CertAgent:
    token = token or issue_token(service.state.secret, identity.namespace,
                                 identity.service_account, T0 + 86400)
    return CertAgent(identity, "http://ca:8060", token=token, wall_clock=service.wall_clock,
                     rng=random.Random(1), connect=MemoryConnector(service, nursery), **options)


async def test_renews_twice_within_three_minutes_of_60s_certificates(tmp_path, nursery,
                                                                     autojump_clock):
    service = make_service(tmp_path, workload_ttl=60)
    agent = _agent(service, nursery)
    seen = []
    agent.store.on_change(lambda material: seen.append((trio.current_time(), material.serial)))
    start = trio.current_time()
    await nursery.start(agent.serve)
    await trio.sleep(180)
    serials = [s for _, s in seen]
    assert len(serials) >= 3 and len(set(serials)) == len(serials)  # first + at least 2 renewals
    assert agent.store.renewals >= 2
    gaps = [b - a for (a, _), (b, _) in zip(seen, seen[1:])]
    # notBefore is backdated 6 s: renewal at half of 66 s = 27 s after issue, up to 3.3 s earlier
    assert all(20 <= gap <= 30 for gap in gaps), gaps
    assert seen[0][0] - start < 1
    assert agent.store.current().serial == serials[-1]
    assert service.state.issued.latest(A).serial == serials[-1]


async def test_writes_the_three_files_with_a_private_key(tmp_path, nursery):
    service = make_service(tmp_path)
    agent = _agent(service, nursery, cert_dir=tmp_path / "certs")
    material = await agent.obtain()
    certs = tmp_path / "certs"
    assert stat.S_IMODE((certs / "key.pem").stat().st_mode) == 0o600
    assert (certs / "root-cert.pem").read_bytes() == service.state.authority.root_pem
    leaf = x509.load_pem_x509_certificates((certs / "cert-chain.pem").read_bytes())[0]
    assert leaf.serial_number == material.serial
    key = serialization.load_pem_private_key((certs / "key.pem").read_bytes(), None)
    assert key.public_key().public_numbers() == leaf.public_key().public_numbers()
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [A.uri]
    assert san.get_values_for_type(x509.DNSName) == []


async def test_a_token_for_another_identity_is_refused_and_retried(tmp_path, nursery,
                                                                   autojump_clock):
    service = make_service(tmp_path)
    token_for_a = issue_token(service.state.secret, "default", "a", T0 + 86400)
    agent = _agent(service, nursery, identity=B, token=token_for_a)
    await nursery.start(agent.serve)
    await trio.sleep(10)
    store = agent.store
    assert store.current() is None
    assert store.last_reason == "not-authorized"
    assert "allows default/a, not spiffe://cluster.local/ns/default/sa/b" in store.last_error
    assert 2 <= store.failures <= 6  # backoff from 1 s doubling: a few attempts in 10 s, not a loop
    assert service.statistics()["refused"]["not-authorized"] == store.failures


async def test_a_reissue_makes_the_agent_renew_at_once(tmp_path, nursery, autojump_clock):
    service = make_service(tmp_path, workload_ttl=3600)
    agent = _agent(service, nursery)
    await nursery.start(agent.serve)
    await trio.sleep(1)
    first = agent.store.current().serial
    service.state.issued.request_reissue(A)
    changed = await agent.store.wait_changed()
    assert changed.serial != first
    assert trio.current_time() < 60  # the status poll (at most 30 s), not the 30-minute renewal


async def test_the_store_can_be_waited_on_and_is_swapped_whole(tmp_path, nursery, autojump_clock):
    service = make_service(tmp_path, workload_ttl=60)
    agent = _agent(service, nursery)
    await nursery.start(agent.serve)
    first = await agent.store.wait_changed() if agent.store.current() is None else \
        agent.store.current()
    second = await agent.store.wait_changed()
    assert second.serial != first.serial and second.key_pem != first.key_pem


class _FakeSidecar:
    draining = False
    ready = True

    def __init__(self, agent):
        self.cert_agent, self.certs = agent, agent.store


async def test_admin_certs_and_ready_wait_for_a_certificate(tmp_path, nursery):
    service = make_service(tmp_path)
    agent = _agent(service, nursery, identity=B,
                   token=issue_token(service.state.secret, "default", "a", None))
    admin = AdminApp(_FakeSidecar(agent))
    status, _, body = admin.respond("GET", "/ready")
    assert (status, body) == (503, b"not ready: no certificate yet\n")
    with pytest.raises(Exception):
        await agent.obtain()
    agent.store.failed("the CA refused (403): the token allows default/a", "not-authorized")
    status, _, body = admin.respond("GET", "/ready")
    assert status == 503 and b"the token allows default/a" in body
    agent.token = mesh_token_path(tmp_path / "state").read_text().strip()
    material = await agent.obtain()
    assert admin.respond("GET", "/ready")[0] == 200
    status, ctype, body = admin.respond("GET", "/certs")
    import json
    certs = json.loads(body)
    assert (status, certs["serial"], certs["identity"]) == (200, f"{material.serial:x}", str(B))
    assert certs["not_after"] == material.not_after and certs["renewals"] == 0


def test_admin_certs_without_an_agent_is_404():
    class Plain:
        draining, ready = False, True
    assert AdminApp(Plain()).respond("GET", "/certs")[0] == 404


def test_a_new_store_is_empty():
    store = CertStore()
    assert store.current() is None and store.statistics()["serial"] is None


async def test_install_cert_agent_adds_the_certs_child_to_a_sidecar(tmp_path, nursery):
    from functools import partial

    from trimesh.sidecar import CertOptions, SidecarConfig, install_cert_agent, serve_sidecar

    service = make_service(tmp_path)
    token = issue_token(service.state.secret, "default", "reviews-sa", None)
    setup = partial(install_cert_agent, options=CertOptions("http://ca:8060"), token=token,
                    connect=MemoryConnector(service, nursery), wall_clock=service.wall_clock)
    sidecar = await nursery.start(partial(serve_sidecar, SidecarConfig(
        service="reviews", service_account="reviews-sa", port=0, app_port=1,
        address="127.0.160.40", proxy_port=0, admin_port=0, control=None,
        health_checks="off", drain_timeout=0.1), setup=setup))
    material = await sidecar.certs.wait_changed() if sidecar.certs.current() is None else \
        sidecar.certs.current()
    assert material.identity == SpiffeId.of("default", "reviews-sa")
    assert "certs" in sidecar.supervisor.statistics().children
    status, _, body = sidecar.admin.respond("GET", "/certs")
    assert status == 200 and f"{material.serial:x}".encode() in body
    sidecar.shutdown()


async def test_ready_turns_503_when_the_held_certificate_expires(tmp_path, nursery,
                                                                 autojump_clock):
    service = make_service(tmp_path, workload_ttl=60)
    agent = _agent(service, nursery)
    admin = AdminApp(_FakeSidecar(agent))
    await agent.obtain()
    assert admin.respond("GET", "/ready")[0] == 200
    await trio.sleep(61)  # no renewal: the agent's loop is not running
    status, _, body = admin.respond("GET", "/ready")
    assert status == 503 and b"has expired" in body
