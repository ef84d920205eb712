"""The CA service's state on disk and its HTTP API, over memory streams in virtual time."""

from __future__ import annotations

import stat
import time

import msgspec
import pytest
import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from trimesh.ca import (
    SpiffeId,
    issue_token,
    load_or_create_state,
    make_csr,
    mesh_token_path,
    token_secret_path,
)
from trimesh.errors import ConfigError
from trimesh.service import http_request

from ca_helpers import ec_key, rsa_key
from service_helpers import T0, MemoryConnector, make_service

A = SpiffeId.of("default", "a")
B = SpiffeId.of("default", "b")


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_state_is_created_once_and_kept(tmp_path):
    first = load_or_create_state(tmp_path, now=T0)
    assert _mode(tmp_path / "ca" / "ca-key.pem") == 0o600
    assert _mode(token_secret_path(tmp_path)) == 0o600
    assert _mode(mesh_token_path(tmp_path)) == 0o600
    again = load_or_create_state(tmp_path, now=T0 + 60)
    assert again.authority.root_pem == first.authority.root_pem
    assert again.secret == first.secret
    assert mesh_token_path(tmp_path).read_text().strip().startswith("tmca1.")


def test_a_broken_state_file_names_itself(tmp_path):
    load_or_create_state(tmp_path, now=T0)
    (tmp_path / "ca" / "ca-key.pem").write_text("not a key\n")
    with pytest.raises(ConfigError, match="ca-key.pem"):
        load_or_create_state(tmp_path, now=T0)


def test_an_operator_ca_needs_its_files(tmp_path):
    with pytest.raises(ConfigError, match="ca-key.pem"):
        load_or_create_state(tmp_path, now=T0, plugin={"signing_cert": "x", "root_cert": "y"})


async def _call(service, nursery, method, target, *, token=None, body=None):
    stream = await MemoryConnector(service, nursery)("ca", 8060)
    headers = [("authorization", f"Bearer {token}")] if token else []
    data = msgspec.json.encode(body) if body is not None else b""
    answer = await http_request(stream, method, target, host="ca", headers=headers, body=data)
    await stream.aclose()
    return answer.status, (msgspec.json.decode(answer.body)
                           if answer.header("content-type") == "application/json" else answer.body)


def _csr(identity, key=None) -> str:
    return make_csr(key or ec_key(3), identity).decode()


def _weak_csr(identity) -> str:
    """A CSR with a 1024-bit RSA key (make_csr itself refuses to build one)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    return (x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
            .add_extension(x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(identity.uri)]), critical=True)
            .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode())


def _token(service, identity=A):
    return issue_token(service.state.secret, identity.namespace, identity.service_account,
                       T0 + 3600)


async def test_an_identity_token_gets_its_certificate(tmp_path, nursery):
    service = make_service(tmp_path, workload_ttl=60)
    status, body = await _call(service, nursery, "POST", "/v1/certificates",
                               token=_token(service), body={"csr": _csr(A)})
    assert status == 200, body
    assert body["identity"] == str(A)
    assert body["not_after"] - body["not_before"] == pytest.approx(66, abs=1)  # 60 s + 6 s backdate
    assert body["root_cert"].encode() == service.state.authority.root_pem
    status, listing = await _call(service, nursery, "GET", "/v1/certificates")
    assert [c["serial"] for c in listing["certificates"]] == [body["serial"]]
    assert listing["certificates"][0]["current"] is True
    status, one = await _call(service, nursery, "GET", f"/v1/certificates/{body['serial']}")
    assert status == 200 and one["identity"] == str(A)
    status, root = await _call(service, nursery, "GET", "/v1/root")
    assert status == 200 and root == service.state.authority.root_pem


REFUSALS = [
    # (what, token, body, status, reason)
    ("token for a, CSR for b", "a", {"csr": "B"}, 403, "not-authorized"),
    ("no token", None, {"csr": "A"}, 401, "token-missing"),
    ("a forged token", "forged", {"csr": "A"}, 401, "token-invalid"),
    ("an expired token", "expired", {"csr": "A"}, 401, "token-expired"),
    ("garbage CSR", "a", {"csr": "hello"}, 400, "bad-csr"),
    ("no CSR", "a", {}, 400, "bad-csr"),
    ("a weak key", "a", {"csr": "weak"}, 400, "weak-key"),
    ("too long a lifetime", "a", {"csr": "A", "ttl": 30 * 86400}, 400, "ttl-too-long"),
    ("not JSON", "a", b"{", 400, "bad-request"),
]


@pytest.mark.parametrize("what,token,body,status,reason", REFUSALS, ids=[r[0] for r in REFUSALS])
async def test_refusals_are_answered_and_counted(tmp_path, nursery, what, token, body, status,
                                                 reason):
    service = make_service(tmp_path)
    tokens = {"a": _token(service), None: None, "forged": _token(service)[:-4] + "AAAA",
              "expired": issue_token(service.state.secret, "default", "a", T0 - 1)}
    if isinstance(body, dict) and "csr" in body:
        body = dict(body, csr={"A": _csr(A), "B": _csr(B), "weak": None}.get(
            body["csr"], body["csr"]))
        if body["csr"] is None:
            body["csr"] = _weak_csr(A)
    stream = await MemoryConnector(service, nursery)("ca", 8060)
    headers = [("authorization", f"Bearer {tokens[token]}")] if tokens[token] else []
    data = body if isinstance(body, bytes) else msgspec.json.encode(body)
    answer = await http_request(stream, "POST", "/v1/certificates", host="ca", headers=headers,
                                body=data)
    reply = msgspec.json.decode(answer.body)
    assert (answer.status, reply["reason"]) == (status, reason)
    assert reply["error"]
    assert service.statistics()["refused"] == {reason: 1}
    assert service.state.issued.records() == []


async def test_reissue_needs_the_mesh_token_and_supersedes(tmp_path, nursery):
    service = make_service(tmp_path)
    status, issued = await _call(service, nursery, "POST", "/v1/certificates",
                                 token=_token(service), body={"csr": _csr(A)})
    status, body = await _call(service, nursery, "POST", "/v1/reissue", token=_token(service),
                               body={"identity": str(A)})
    assert (status, body["reason"]) == (403, "not-authorized")
    mesh = mesh_token_path(tmp_path / "state").read_text().strip()
    status, body = await _call(service, nursery, "POST", "/v1/reissue", token=mesh,
                               body={"namespace": "default", "service_account": "a"})
    assert status == 200 and body["superseded"] == [issued["serial"]]
    status, one = await _call(service, nursery, "GET", f"/v1/certificates/{issued['serial']}")
    assert one["current"] is False


async def test_the_mesh_token_may_claim_any_identity(tmp_path, nursery):
    service = make_service(tmp_path)
    mesh = mesh_token_path(tmp_path / "state").read_text().strip()
    for identity in (A, B):
        status, body = await _call(service, nursery, "POST", "/v1/certificates", token=mesh,
                                   body={"csr": _csr(identity, rsa_key())})
        assert status == 200 and body["identity"] == str(identity)


async def test_serve_logs_a_ready_line_and_persists_the_record(tmp_path, caplog):
    from trimesh.ca import ca_request, serve_ca
    caplog.set_level("INFO", logger="trimesh.ca")
    async with trio.open_nursery() as nursery:
        url = await nursery.start(lambda task_status: serve_ca(
            state_dir=tmp_path, address="127.0.0.1", port=0, task_status=task_status))
        host, port = url.removeprefix("http://").split(":")
        mesh = mesh_token_path(tmp_path).read_text().strip()
        body = await ca_request(host, int(port), "POST", "/v1/certificates", token=mesh,
                                body={"csr": _csr(A)})
        nursery.cancel_scope.cancel()
    assert any(r.getMessage().startswith("ca ready on 127.0.0.1:") for r in caplog.records)
    saved = msgspec.json.decode((tmp_path / "ca" / "issued.json").read_bytes())
    assert [f"{r['serial']:x}" for r in saved["records"]] == [body["serial"]]
    reloaded = load_or_create_state(tmp_path, now=time.time())
    assert reloaded.issued.get(int(body["serial"], 16)) is not None


async def test_concurrent_issues_are_all_recorded_on_disk(tmp_path):
    from trimesh.ca import CAService, ca_request, mesh_token_path
    state = load_or_create_state(tmp_path, now=time.time())
    service = CAService(state)  # persists the record after every issue
    token = mesh_token_path(tmp_path).read_text().strip()
    answers = []
    async with trio.open_nursery() as nursery:
        connect = MemoryConnector(service, nursery)

        async def one(n):
            answers.append(await ca_request("ca", 8060, "POST", "/v1/certificates", token=token,
                                            body={"csr": _csr(SpiffeId.of("default", f"sa{n}"))},
                                            connect=connect))
        async with trio.open_nursery() as clients:
            for n in range(8):
                clients.start_soon(one, n)
        nursery.cancel_scope.cancel()
    saved = msgspec.json.decode((tmp_path / "ca" / "issued.json").read_bytes())
    assert len(saved["records"]) == len(answers) == 8
    assert not list((tmp_path / "ca").glob(".*.tmp"))
