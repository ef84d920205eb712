"""Issue 12, item 4 with real processes on 127.0.161.x: mutual TLS between sidecars.

A CA (``trimesh run ca``), a fake ``ratings`` app behind its sidecar (account
``bookinfo-ratings``) and a ``productpage`` sidecar (``bookinfo-productpage``) whose registry
also lists the ratings sidecar as ``details`` under another account (the secure-naming case).
Both read one ``mesh.yaml`` (``authPolicy: MUTUAL_TLS``) and hold short certificates that renew
while the tests run. Checked from outside: plaintext refused, curl with a sidecar's files
accepted, ``x-forwarded-client-cert`` naming the caller (a forged one replaced), ``source_user``
in the access log, secure naming (503 UF, counted), the per-port opt-out, a sidecar without a cert
agent not ready, the MeshConfig changed live, and renewals under load with no failed request.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from cryptography import x509
from e2e_harness import require_tool, wait_until
from procs import free_port, spawn, trimesh_command

NET = "127.0.161"
CA_ADDRESS = f"{NET}.1"
DOMAIN = "cluster.local"
PRODUCTPAGE_ID = f"spiffe://{DOMAIN}/ns/default/sa/bookinfo-productpage"
RATINGS_ID = f"spiffe://{DOMAIN}/ns/default/sa/bookinfo-ratings"
# Certificates this short renew every few seconds while the module runs; the rotation test
# counts renewals (the acceptance's 60 s / 3 min run: TRIMESH_MTLS_TTL=60 TRIMESH_MTLS_LOAD=180).
CERT_TTL = int(os.environ.get("TRIMESH_MTLS_TTL", "6"))
LOAD_SECONDS = float(os.environ.get("TRIMESH_MTLS_LOAD", "14"))


def mesh_config(policy: str) -> str:
    return yaml.safe_dump({"apiVersion": "config.istio.io/v1alpha2", "kind": "MeshConfig",
                           "metadata": {"name": "mesh", "namespace": "istio-system"},
                           "spec": {"authPolicy": policy}})


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(trimesh_command() + list(args), capture_output=True, text=True,
                          timeout=30)


class Node:
    """One sidecar process and its addresses."""

    def __init__(self, root: Path, name: str, n: int, account: str, *, app_port: int,
                 registry: Path, mesh: Path, ca=None, extra: tuple[str, ...] = (),
                 port: int | None = None) -> None:
        self.name = name
        self.address = f"{NET}.{n}"
        self.port = port or free_port(self.address)
        self.proxy_port = free_port(self.address)
        self.admin_port = free_port(self.address)
        self.cert_dir = root / f"{name}-certs"
        self.access_log = root / f"{name}-access.log"
        argv = trimesh_command() + [
            "run", "sidecar", "--service", name, "--version", "v1", "--service-account",
            account, "--address", self.address, "--port", str(self.port), "--app-port",
            str(app_port), "--app-address", f"{NET}.11", "--proxy-port", str(self.proxy_port),
            "--admin-port", str(self.admin_port), "--control", "none", "--registry",
            str(registry), "--config", str(mesh), "--health-checks", "off", "--drain-timeout",
            "1", "--access-log", str(self.access_log), *extra]
        if ca is not None:
            token_file = root / f"{name}.token"
            out = _cli("ca", "token", "--service-account", account, "--state-dir",
                       str(ca["state"]), "--ttl", "1h")
            assert out.returncode == 0, out.stderr
            token_file.write_text(out.stdout.strip() + "\n")
            argv += ["--ca", ca["url"], "--ca-token-file", str(token_file), "--cert-dir",
                     str(self.cert_dir), "--cert-ttl", f"{CERT_TTL}s"]
        self.proc = spawn(name, argv, root)

    @property
    def admin(self) -> str:
        return f"http://{self.address}:{self.admin_port}"

    @property
    def proxy(self) -> str:
        return f"http://{self.address}:{self.proxy_port}"

    def stats(self) -> dict:
        return httpx.get(f"{self.admin}/stats", timeout=5).json()

    def wait_ready(self) -> None:
        wait_until(lambda: httpx.get(f"{self.admin}/ready", timeout=2).status_code == 200, 40,
                   f"{self.name} /ready", self.proc)


def _start_ca_and_app(root: Path, procs: list, ca_address: str, *ca_flags: str,
                      prefix: str = "") -> tuple[dict, int]:
    """A ``trimesh run ca`` (ready) and the fake ratings app on ``NET.11``; their processes are
    appended to ``procs``. Returns the CA (url, state dir) and the app's port."""
    ca_port = free_port(ca_address)
    ca_proc = spawn(f"{prefix}ca", trimesh_command() + [
        "run", "ca", "--address", ca_address, "--port", str(ca_port), "--state-dir",
        str(root / "state"), *ca_flags], root)
    procs.append(ca_proc)
    wait_until(lambda: "ca ready on" in ca_proc.log_tail(), 20, "the CA's ready line", ca_proc)
    app_port = free_port(f"{NET}.11")
    procs.append(spawn(f"{prefix}ratings-app", [
        sys.executable, "-m", "trimesh.testing.upstream", "--address", f"{NET}.11",
        "--port", str(app_port), "--name", "ratings-v1", "--service", "ratings",
        "--version", "v1"], root))
    return {"url": f"http://{ca_address}:{ca_port}", "state": root / "state"}, app_port


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e-mtls")
    procs = []
    try:
        ca, app_port = _start_ca_and_app(root, procs, CA_ADDRESS)
        mesh_path = root / "mesh.yaml"
        mesh_path.write_text(mesh_config("MUTUAL_TLS"))
        registry = root / "registry.yaml"
        ratings_port = free_port(f"{NET}.3")
        opt_out_port = free_port(f"{NET}.4")
        registry.write_text(yaml.safe_dump([
            {"service": "ratings", "address": f"{NET}.3", "port": ratings_port,
             "serviceAccount": "bookinfo-ratings", "labels": {"version": "v1"}},
            # the ratings sidecar again, registered under another account: secure naming
            {"service": "details", "address": f"{NET}.3", "port": ratings_port,
             "serviceAccount": "bookinfo-details", "labels": {"version": "v1"}},
            # the ratings sidecar once more as an HTTP/2 port: the hop speaks h2 under mTLS
            {"service": "ratings-h2", "address": f"{NET}.3", "port": ratings_port,
             "serviceAccount": "bookinfo-ratings", "protocol": "http2",
             "labels": {"version": "v1"}},
            {"service": "reviews", "address": f"{NET}.4", "port": opt_out_port,
             "serviceAccount": "bookinfo-reviews", "labels": {"version": "v1"},
             "annotations": {f"auth.istio.io/{opt_out_port}": "NONE"}},
        ]))
        ratings = Node(root, "ratings", 3, "bookinfo-ratings", app_port=app_port,
                       registry=registry, mesh=mesh_path, ca=ca, port=ratings_port)
        productpage = Node(root, "productpage", 2, "bookinfo-productpage",
                           app_port=free_port(f"{NET}.11"), registry=registry, mesh=mesh_path,
                           ca=ca)
        reviews = Node(root, "reviews", 4, "bookinfo-reviews", app_port=app_port,
                       registry=registry, mesh=mesh_path, ca=ca, port=opt_out_port,
                       extra=("-a", f"auth.istio.io/{opt_out_port}=NONE"))
        procs += [ratings.proc, productpage.proc, reviews.proc]
        for node in (ratings, productpage, reviews):
            node.wait_ready()
        yield {"root": root, "mesh": mesh_path, "registry": registry, "ratings": ratings,
               "productpage": productpage, "reviews": reviews, "ca": ca, "app_port": app_port}
    finally:
        for proc in reversed(procs):
            proc.stop()


def _via(node: Node, host: str, path: str = "/", **headers: str) -> httpx.Response:
    return httpx.get(f"{node.proxy}{path}", headers={"host": host, **headers}, timeout=10)


def _curl(*args: str) -> subprocess.CompletedProcess:
    curl = require_tool("curl")
    return subprocess.run([curl, "-s", "-m", "5", *args], capture_output=True, text=True,
                          timeout=30)


def test_plaintext_is_refused_and_curl_with_the_sidecars_files_is_served(mesh):
    ratings, pp = mesh["ratings"], mesh["productpage"]
    target = f"{ratings.address}:{ratings.port}"
    before = ratings.stats()["listeners"]["inbound"]["tls_failures"]
    plain = _curl(f"http://{target}/plain")
    assert plain.returncode != 0 and '"ratings-v1"' not in plain.stdout, plain
    wait_until(lambda: ratings.stats()["listeners"]["inbound"]["tls_failures"] > before, 10,
               "the refused plaintext connection counted")
    certs = pp.cert_dir
    out = _curl("-k", "--cert", str(certs / "cert-chain.pem"), "--key", str(certs / "key.pem"),
                "--cacert", str(certs / "root-cert.pem"), f"https://{target}/with-certs")
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    assert body["path"] == "/with-certs"
    assert body["headers"]["x-forwarded-client-cert"].endswith(f";URI={PRODUCTPAGE_ID}")
    # without a client certificate the handshake fails
    anonymous = _curl("-k", "--cacert", str(certs / "root-cert.pem"), f"https://{target}/anon")
    assert anonymous.returncode != 0 and "ratings-v1" not in anonymous.stdout
    # the docs' check of the files: one URI SAN with the identity, no DNS name, key 0600
    assert stat.S_IMODE((certs / "key.pem").stat().st_mode) == 0o600
    leaf = x509.load_pem_x509_certificates((certs / "cert-chain.pem").read_bytes())[0]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert list(san) == [x509.UniformResourceIdentifier(PRODUCTPAGE_ID)]


def test_the_app_sees_the_callers_identity_and_no_forged_one(mesh):
    ratings, pp = mesh["ratings"], mesh["productpage"]
    r = _via(pp, f"ratings:{ratings.port}", "/xfcc-check",
             **{"x-forwarded-client-cert": "By=spiffe://evil;URI=spiffe://evil/ns/x/sa/y"})
    assert r.status_code == 200, r.text
    xfcc = r.json()["headers"]["x-forwarded-client-cert"]
    assert "evil" not in xfcc
    fields = dict(part.split("=", 1) for part in xfcc.split(";"))
    assert fields["By"] == RATINGS_ID and fields["URI"] == PRODUCTPAGE_ID
    assert len(fields["Hash"]) == 64
    records = wait_until(lambda: [json.loads(line) for line in
                                  ratings.access_log.read_text().splitlines()
                                  if "/xfcc-check" in line], 10, "the inbound's access record")
    inbound = [rec for rec in records if rec["direction"] == "inbound"]
    assert inbound and inbound[0]["source_user"] == PRODUCTPAGE_ID.removeprefix("spiffe://")
    assert pp.stats()["mtls"]["handshakes"] >= 1
    # Istio's request metrics say so too, on both ends of the hop
    for node, reporter in ((ratings, "destination"), (pp, "source")):
        metrics = wait_until(lambda n=node: (lambda t: 'connection_mtls="true"' in t and t)(
            httpx.get(f"{n.admin}/metrics", timeout=5).text), 10, "connection_mtls in /metrics")
        assert any(f'reporter="{reporter}"' in line and 'connection_mtls="true"' in line
                   for line in metrics.splitlines()
                   if line.startswith("istio_request_count_total")), reporter


def test_secure_naming_refuses_an_instance_with_another_identity(mesh):
    ratings, pp = mesh["ratings"], mesh["productpage"]
    before = pp.stats()["mtls"]["secure_naming_refused"]
    r = _via(pp, f"details:{ratings.port}", "/impostor")
    assert r.status_code == 503
    assert r.headers.get("x-trimesh-response-flags") == "UF"
    assert "identity check failed" in r.text
    assert pp.stats()["mtls"]["secure_naming_refused"] > before
    assert "secure naming" in pp.proc.log_tail(200)
    # nothing reached the app under the wrong name
    assert "/impostor" not in ratings.access_log.read_text()


def test_a_port_annotated_none_is_served_in_plaintext(mesh):
    reviews, pp = mesh["reviews"], mesh["productpage"]
    assert reviews.stats()["mtls"] == {**reviews.stats()["mtls"], "mesh": True, "inbound": False}
    plain = httpx.get(f"http://{reviews.address}:{reviews.port}/opt-out", timeout=5)
    assert plain.status_code == 200 and plain.json()["path"] == "/opt-out"
    assert "x-forwarded-client-cert" not in plain.json()["headers"]
    r = _via(pp, f"reviews:{reviews.port}", "/opt-out-via-mesh")
    assert r.status_code == 200 and "x-forwarded-client-cert" not in r.json()["headers"]


def test_a_sidecar_without_a_cert_agent_is_not_ready_and_says_why(mesh):
    lone = Node(mesh["root"], "lonely", 5, "default", app_port=mesh["app_port"],
                registry=mesh["registry"], mesh=mesh["mesh"])
    try:
        body = wait_until(lambda: (lambda r: r.status_code == 503 and "cert agent" in r.text
                                   and r.text)(httpx.get(f"{lone.admin}/ready", timeout=2)),
                          40, "a not-ready answer naming the missing cert agent", lone.proc)
        log = lone.proc.log_tail()
    finally:
        lone.proc.stop()
    assert "mutual TLS is on" in body and "--ca" in body
    assert "mutual TLS on in the mesh" in log


def test_renewals_under_load_lose_no_request(mesh):
    ratings, pp = mesh["ratings"], mesh["productpage"]
    first = {n.name: httpx.get(f"{n.admin}/certs", timeout=5).json() for n in (ratings, pp)}
    statuses: dict[int, int] = {}
    with httpx.Client(base_url=pp.proxy, headers={"host": f"ratings:{ratings.port}"},
                      timeout=10) as client:
        start = time.monotonic()
        sent = 0
        while time.monotonic() - start < LOAD_SECONDS:  # 50 requests per second
            due = start + sent / 50
            if due > time.monotonic():
                time.sleep(due - time.monotonic())
            status = client.get(f"/load/{sent}").status_code
            statuses[status] = statuses.get(status, 0) + 1
            sent += 1
    later = {n.name: httpx.get(f"{n.admin}/certs", timeout=5).json() for n in (ratings, pp)}
    assert statuses == {200: sent}, statuses
    for name in ("ratings", "productpage"):
        assert later[name]["renewals"] - first[name]["renewals"] >= 2, (first[name], later[name])
        assert later[name]["serial"] != first[name]["serial"]
    # a fresh handshake with the renewed files still works
    certs = pp.cert_dir
    out = _curl("-k", "--cert", str(certs / "cert-chain.pem"), "--key", str(certs / "key.pem"),
                "--cacert", str(certs / "root-cert.pem"),
                f"https://{ratings.address}:{ratings.port}/after-rotation")
    assert out.returncode == 0 and json.loads(out.stdout)["path"] == "/after-rotation", out


def test_the_mesh_config_turns_mutual_tls_off_and_on_live(mesh):
    ratings, pp = mesh["ratings"], mesh["productpage"]
    plain_url = f"http://{ratings.address}:{ratings.port}/plain-again"
    try:
        mesh["mesh"].write_text(mesh_config("NONE"))
        wait_until(lambda: not ratings.stats()["mtls"]["inbound"], 15, "inbound plaintext")
        wait_until(lambda: not pp.stats()["mtls"]["mesh"], 15, "the caller's mesh flag off")
        assert httpx.get(plain_url, timeout=5).status_code == 200
        r = _via(pp, f"ratings:{ratings.port}", "/plain-hop")
        assert r.status_code == 200 and "x-forwarded-client-cert" not in r.json()["headers"]
    finally:
        mesh["mesh"].write_text(mesh_config("MUTUAL_TLS"))
    wait_until(lambda: ratings.stats()["mtls"]["inbound"], 15, "inbound mutual TLS again")
    wait_until(lambda: pp.stats()["mtls"]["mesh"], 15, "the caller's mesh flag on")
    assert _curl(plain_url).returncode != 0
    r = _via(pp, f"ratings:{ratings.port}", "/tls-again")
    assert r.status_code == 200 and r.json()["headers"]["x-forwarded-client-cert"]


def _client_files(root: Path, name: str, authority, *, now: float, ttl: float | None = None):
    """cert-chain.pem / key.pem for a client of ``authority``, issued as of ``now``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from trimesh.ca import SpiffeId, make_csr

    key = ec.generate_private_key(ec.SECP256R1())
    ident = SpiffeId.of("default", "bookinfo-productpage")
    issued = authority.sign(make_csr(key, ident), identity=ident, now=now, ttl=ttl)
    d = root / name
    d.mkdir(exist_ok=True)
    (d / "cert.pem").write_bytes(issued.chain_pem)
    (d / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                  serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    return d / "cert.pem", d / "key.pem"


def test_foreign_expired_and_missing_client_certificates_are_refused_and_counted(mesh):
    """Bad input at the handshake: a certificate from another CA, an expired one from the mesh's
    own CA (same identity as a real caller), none at all — each refused and counted, while the
    listener goes on serving real callers."""
    import os as _os

    from cryptography.hazmat.primitives.asymmetric import ec

    from trimesh.ca import CertificateAuthority, PemFile

    ratings, pp = mesh["ratings"], mesh["productpage"]
    root, state = mesh["root"], mesh["ca"]["state"]
    target = f"https://{ratings.address}:{ratings.port}"
    now = time.time()
    foreign = CertificateAuthority.self_signed(key=ec.generate_private_key(ec.SECP256R1()),
                                               now=now, token_bytes=_os.urandom)
    ours = CertificateAuthority.from_plugin(
        signing_cert=PemFile("root-cert.pem", (state / "ca" / "root-cert.pem").read_bytes()),
        signing_key=PemFile("ca-key.pem", (state / "ca" / "ca-key.pem").read_bytes()),
        root_cert=PemFile("root-cert.pem", (state / "ca" / "root-cert.pem").read_bytes()),
        cert_chain=None, now=now, token_bytes=_os.urandom)
    cases = {
        "foreign": _client_files(root, "foreign", foreign, now=now),
        # (the root is backdated 2 min: a 60 s certificate from 90 s ago has expired)
        "expired": _client_files(root, "expired", ours, now=now - 90, ttl=60),
    }
    expired = x509.load_pem_x509_certificate(cases["expired"][0].read_bytes())
    assert expired.not_valid_after_utc.timestamp() < now  # refused for its age, not its issuer
    before = ratings.stats()["listeners"]["inbound"]["tls_failures"]
    for name, (cert, key) in cases.items():
        out = _curl("-k", "--cert", str(cert), "--key", str(key), f"{target}/bad-{name}")
        assert out.returncode != 0 and "ratings-v1" not in out.stdout, (name, out)
    out = _curl("-k", f"{target}/bad-none")  # a client hello without a certificate
    assert out.returncode != 0 and "ratings-v1" not in out.stdout, out
    wait_until(lambda: ratings.stats()["listeners"]["inbound"]["tls_failures"] >= before + 3, 10,
               "three refused handshakes counted")
    log = ratings.access_log.read_text()
    assert not any(f"/bad-{n}" in log for n in ("foreign", "expired", "none"))
    # nothing else disturbed: the mesh hop keeps working
    r = _via(pp, f"ratings:{ratings.port}", "/after-bad-input")
    assert r.status_code == 200 and r.json()["path"] == "/after-bad-input"
    assert ratings.proc.alive()


def test_an_embedded_mesh_calls_a_mutual_tls_service_with_its_own_identity(mesh):
    """``trimesh.open_mesh(certs=...)``: the app's process holds its own certificate (the cert
    agent in its tree) and calls ratings directly under mutual TLS."""
    import trio

    import trimesh
    from trimesh.sidecar import CertOptions

    ratings = mesh["ratings"]
    token = mesh["root"] / "embedded.token"
    out = _cli("ca", "token", "--service-account", "bookinfo-embedded", "--state-dir",
               str(mesh["ca"]["state"]), "--ttl", "1h")
    assert out.returncode == 0, out.stderr
    token.write_text(out.stdout.strip() + "\n")

    async def main():
        async with trimesh.open_mesh(
                service="embedded", service_account="bookinfo-embedded",
                registry=mesh["registry"], config=[mesh["mesh"]], address=f"{NET}.9",
                certs=CertOptions(ca_url=mesh["ca"]["url"], token_file=token)) as m:
            return await m.request("GET", f"http://ratings:{ratings.port}/embedded")

    response = trio.run(main)
    assert response.status == 200, response
    xfcc = json.loads(response.content)["headers"]["x-forwarded-client-cert"]
    assert xfcc.endswith(";URI=spiffe://cluster.local/ns/default/sa/bookinfo-embedded")


def _operator_pki(directory: Path) -> None:
    """The docs' plug-in files (telemetry-security.md §14) in ``directory``: an operator root
    that signs an intermediate, which the CA signs workloads with."""
    import datetime

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Operator"),
                          x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def ca_cert(subject_key, subject: str, issuer_key, issuer: str) -> x509.Certificate:
        now = datetime.datetime.now(datetime.timezone.utc)
        return (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
                .public_key(subject_key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=30))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                             crl_sign=True, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False,
                                             key_agreement=False, encipher_only=False,
                                             decipher_only=False), critical=True)
                .sign(issuer_key, hashes.SHA256()))

    root_key = ec.generate_private_key(ec.SECP256R1())
    ca_key = ec.generate_private_key(ec.SECP256R1())
    root = ca_cert(root_key, "Example Root CA", root_key, "Example Root CA")
    ca = ca_cert(ca_key, "trimesh intermediate", root_key, "Example Root CA")
    as_pem = lambda c: c.public_bytes(serialization.Encoding.PEM)  # noqa: E731
    directory.mkdir()
    (directory / "root-cert.pem").write_bytes(as_pem(root))
    (directory / "ca-cert.pem").write_bytes(as_pem(ca))
    (directory / "cert-chain.pem").write_bytes(as_pem(ca))
    (directory / "ca-key.pem").write_bytes(ca_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))


def test_with_the_operators_ca_plugged_in_the_hop_and_the_docs_openssl_check_pass(tmp_path):
    """The docs' "plugging in CA certificate and key" task, end to end: the CA signs with the
    operator's intermediate, two sidecars get their certificates from it and talk mutual TLS,
    and a workload certificate verifies with openssl against the operator's root."""
    from cryptography.hazmat.primitives import serialization

    openssl = require_tool("openssl")
    plugin = tmp_path / "cacerts"
    _operator_pki(plugin)
    procs = []
    try:
        ca, app_port = _start_ca_and_app(tmp_path, procs, f"{NET}.21", "--plugin-dir",
                                         str(plugin), prefix="operator-")
        mesh_path = tmp_path / "mesh.yaml"
        mesh_path.write_text(mesh_config("MUTUAL_TLS"))
        port = free_port(f"{NET}.23")
        registry = tmp_path / "registry.yaml"
        registry.write_text(yaml.safe_dump([
            {"service": "ratings", "address": f"{NET}.23", "port": port,
             "serviceAccount": "bookinfo-ratings", "labels": {"version": "v1"}}]))
        ratings = Node(tmp_path, "ratings", 23, "bookinfo-ratings", app_port=app_port,
                       registry=registry, mesh=mesh_path, ca=ca, port=port)
        pp = Node(tmp_path, "productpage", 22, "bookinfo-productpage",
                  app_port=free_port(f"{NET}.11"), registry=registry, mesh=mesh_path, ca=ca)
        procs += [ratings.proc, pp.proc]
        ratings.wait_ready()
        pp.wait_ready()
        r = _via(pp, f"ratings:{port}", "/operator-ca")
        assert r.status_code == 200, r.text
        assert r.json()["headers"]["x-forwarded-client-cert"].endswith(f";URI={PRODUCTPAGE_ID}")
    finally:
        for proc in reversed(procs):
            proc.stop()
    chain = x509.load_pem_x509_certificates((ratings.cert_dir / "cert-chain.pem").read_bytes())
    assert chain[1].subject.rfc4514_string().startswith("CN=trimesh intermediate")
    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(chain[0].public_bytes(serialization.Encoding.PEM))
    ca_file = tmp_path / "ca-and-root.pem"  # the docs' <(cat ca-cert.pem root-cert.pem)
    ca_file.write_bytes((plugin / "ca-cert.pem").read_bytes()
                        + (plugin / "root-cert.pem").read_bytes())
    out = subprocess.run([openssl, "verify", "-CAfile", str(ca_file), str(leaf)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.strip().endswith(": OK"), out.stdout + out.stderr
    assert ((ratings.cert_dir / "root-cert.pem").read_bytes()
            == (plugin / "root-cert.pem").read_bytes())


def test_a_mirrored_copy_goes_with_mutual_tls_too(mesh):
    ratings, pp = mesh["ratings"], mesh["productpage"]
    mirror_rule = yaml.safe_dump({
        "apiVersion": "config.istio.io/v1alpha2", "kind": "RouteRule",
        "metadata": {"name": "ratings-mirror", "namespace": "default"},
        "spec": {"destination": {"name": "ratings"}, "precedence": 1,
                 "route": [{"labels": {"version": "v1"}, "weight": 100}],
                 "mirror": {"name": "ratings", "labels": {"version": "v1"}}}})
    try:
        mesh["mesh"].write_text(mesh_config("MUTUAL_TLS") + "---\n" + mirror_rule)
        wait_until(lambda: "ratings-mirror" in httpx.get(f"{pp.admin}/config_dump",
                                                          timeout=5).text, 15, "the mirror rule")
        r = _via(pp, f"ratings:{ratings.port}", "/mirrored")
        assert r.status_code == 200
        seen = wait_until(lambda: [json.loads(line) for line in
                                   ratings.access_log.read_text().splitlines()
                                   if "/mirrored" in line and '"inbound"' in line
                                   and "-shadow" in line], 10, "the shadow copy at ratings")
        assert seen[0]["status"] == 200 and seen[0]["source_user"].endswith("/bookinfo-productpage")
        assert pp.stats()["outbound"].get("mirror_ok", 0) >= 1
    finally:
        mesh["mesh"].write_text(mesh_config("MUTUAL_TLS"))
    wait_until(lambda: "ratings-mirror" not in httpx.get(f"{pp.admin}/config_dump",
                                                          timeout=5).text, 15, "the rule gone")


def test_http2_under_mutual_tls_by_alpn_both_ways(mesh):
    """The inbound offers h2 by ALPN under TLS; an HTTP/2 port's hop goes out in HTTP/2 with
    mutual TLS (the inbound translates to the HTTP/1.1 app)."""
    ratings, pp = mesh["ratings"], mesh["productpage"]
    certs = pp.cert_dir
    out = _curl("--http2", "-k", "--cert", str(certs / "cert-chain.pem"), "--key",
                str(certs / "key.pem"), "-w", "\\n%{http_version}",
                f"https://{ratings.address}:{ratings.port}/over-h2")
    assert out.returncode == 0, out.stderr
    body, version = out.stdout.rsplit("\n", 1)
    assert version == "2" and json.loads(body)["path"] == "/over-h2"
    r = _via(pp, f"ratings-h2:{ratings.port}", "/h2-hop")
    assert r.status_code == 200 and r.json()["path"] == "/h2-hop"
    assert r.json()["headers"]["x-forwarded-client-cert"].endswith(f";URI={PRODUCTPAGE_ID}")
    outbound = pp.stats()["outbound"]
    assert outbound["h2_connects"] >= 1 and outbound["h2_streams"] >= 1  # it went as HTTP/2
    h2_rows = wait_until(lambda: [json.loads(line) for line in
                                  ratings.access_log.read_text().splitlines()
                                  if "/h2-hop" in line and '"inbound"' in line], 10,
                         "the inbound record of the h2 hop")
    assert h2_rows[0]["source_user"].endswith("/bookinfo-productpage")
