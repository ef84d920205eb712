"""Mutual TLS building blocks (trimesh/proxy/_tls.py): contexts from workload files, the
non-blocking TLS stream, peer identities — with certificates the project's own CA issues."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest
import trio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from trimesh.ca import CertificateAuthority, SpiffeId, check_secure_naming, make_csr
from trimesh.proxy import client_context, peer_identity, server_context, tls_handshake


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _ca(domain="cluster.local"):
    return CertificateAuthority.self_signed(key=ec.generate_private_key(ec.SECP256R1()),
                                            now=time.time(), token_bytes=os.urandom,
                                            trust_domain=domain)


def workload(tmp: Path, ca, sa: str) -> tuple[str, str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    ident = SpiffeId.of("default", sa, ca.trust_domain)
    issued = ca.sign(make_csr(key, ident), identity=ident, now=time.time())
    d = tmp / sa
    d.mkdir()
    (d / "cert-chain.pem").write_bytes(issued.chain_pem)
    (d / "key.pem").write_bytes(_pem_key(key))
    (d / "root-cert.pem").write_bytes(issued.root_pem)
    return str(d / "cert-chain.pem"), str(d / "key.pem"), str(d / "root-cert.pem")


async def _pair(server_ctx, client_ctx, *, payload=b"ping" * 50_000):
    """A loopback connection, TLS on both ends; returns what each side learned."""
    listener = socket.socket()
    listener.bind(("127.0.9.90", 0))
    listener.listen()
    listener.setblocking(False)
    got = {}

    async def serve():
        await trio.lowlevel.wait_readable(listener)
        sock, _ = listener.accept()
        sock.setblocking(False)
        try:
            stream = await tls_handshake(sock, server_ctx, server_side=True)
        except OSError as exc:
            got["server_error"] = str(exc)
            return
        got["client_identity"] = peer_identity(stream)
        data = b""
        while len(data) < len(payload):
            chunk = await stream.receive_some()
            if not chunk:
                break
            data += chunk
        await stream.send_all(data[::-1])
        stream.close()

    async def client():
        sock = socket.socket()
        sock.setblocking(False)
        try:
            sock.connect(listener.getsockname())
        except BlockingIOError:
            await trio.lowlevel.wait_writable(sock)
        try:
            stream = await tls_handshake(sock, client_ctx, server_side=False)
        except OSError as exc:
            got["client_error"] = str(exc)
            return
        got["server_identity"] = peer_identity(stream)
        got["alpn"] = stream.alpn
        back = b""
        try:
            await stream.send_all(payload)
            while len(back) < len(payload):
                chunk = await stream.wait_and_receive()
                if not chunk:
                    break
                back += chunk
        except trio.BrokenResourceError as exc:  # TLS 1.3: the server's refusal arrives late
            got["client_error"] = str(exc)
            return
        finally:
            stream.close()
        got["echo_ok"] = back == payload[::-1]

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve)
            nursery.start_soon(client)
    listener.close()
    return got


async def test_mutual_tls_both_sides_learn_the_verified_identity(tmp_path):
    ca = _ca()
    server = workload(tmp_path, ca, "bookinfo-ratings")
    client = workload(tmp_path, ca, "bookinfo-reviews")
    got = await _pair(server_context(*server), client_context(*client))
    assert got["echo_ok"] and got["alpn"] == "h2"
    assert got["client_identity"].principal == "cluster.local/ns/default/sa/bookinfo-reviews"
    assert got["server_identity"].principal == "cluster.local/ns/default/sa/bookinfo-ratings"
    # secure naming: the registry says ratings runs as bookinfo-ratings
    assert check_secure_naming(got["server_identity"],
                               SpiffeId.of("default", "bookinfo-ratings")) is None
    assert check_secure_naming(got["server_identity"],
                               SpiffeId.of("default", "other")) is not None


async def test_a_client_from_another_ca_or_without_a_certificate_is_refused(tmp_path):
    import ssl

    ca, foreign = _ca(), _ca()
    server = workload(tmp_path, ca, "ratings")
    stranger = workload(tmp_path, foreign, "mallory")
    got = await _pair(server_context(*server), client_context(*stranger))
    assert "server_error" in got or "client_error" in got
    assert "echo_ok" not in got
    # no client certificate at all
    bare = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    bare.check_hostname = False
    bare.load_verify_locations(cafile=server[2])
    got = await _pair(server_context(*server), bare)
    assert "echo_ok" not in got and ("server_error" in got or "client_error" in got)


async def test_plaintext_to_a_tls_listener_fails_the_handshake(tmp_path):
    ca = _ca()
    server_ctx = server_context(*workload(tmp_path, ca, "ratings"))
    listener = socket.socket()
    listener.bind(("127.0.9.91", 0))
    listener.listen()
    listener.setblocking(False)
    errors = []

    async def serve():
        await trio.lowlevel.wait_readable(listener)
        sock, _ = listener.accept()
        sock.setblocking(False)
        with pytest.raises(OSError, match="TLS handshake failed"):
            await tls_handshake(sock, server_ctx, server_side=True)
        errors.append("refused")

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve)
            stream = await trio.open_tcp_stream(*listener.getsockname())
            await stream.send_all(b"GET / HTTP/1.1\r\nHost: ratings\r\n\r\n")
            try:
                answer = await stream.receive_some(1000)  # an alert, or a reset
            except trio.BrokenResourceError:
                answer = b""
            await stream.aclose()
    listener.close()
    assert errors == ["refused"] and b"200" not in answer


# -- the sidecar's mutual-TLS state (MeshTls): connect, secure naming, resumption, peers -------

def _material(ca, sa: str):
    from trimesh.ca import CertMaterial

    key = ec.generate_private_key(ec.SECP256R1())
    ident = SpiffeId.of("default", sa, ca.trust_domain)
    issued = ca.sign(make_csr(key, ident), identity=ident, now=time.time())
    return CertMaterial(identity=ident, serial=issued.serial, not_before=issued.not_before,
                        not_after=issued.not_after, chain_pem=issued.chain_pem,
                        key_pem=_pem_key(key), root_pem=issued.root_pem)


def _mesh_tls(ca, sa: str):
    from trimesh.proxy import MeshTls

    tls = MeshTls()
    tls.load(_material(ca, sa))
    return tls


async def _serve_tls(nursery, mesh_tls, host: str, peers: list):
    """A loopback listener that completes mTLS with ``mesh_tls``, records each client's Peer
    and answers every chunk with ``ok``; returns its address."""
    listener = socket.socket()
    listener.bind((host, 0))
    listener.listen()
    listener.setblocking(False)

    async def one(sock):
        try:
            stream = await tls_handshake(sock, mesh_tls.server, server_side=True)
        except OSError:
            return
        peers.append(mesh_tls.accepted(stream))
        try:
            while await stream.receive_some():
                await stream.send_all(b"ok")
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        stream.close()

    async def accept_loop():
        try:
            while True:
                await trio.lowlevel.wait_readable(listener)
                sock, _ = listener.accept()
                sock.setblocking(False)
                nursery.start_soon(one, sock)
        finally:
            listener.close()

    nursery.start_soon(accept_loop)
    return listener.getsockname()


async def test_mesh_tls_connects_checks_secure_naming_and_names_the_peer():
    from trimesh.errors import UpstreamIdentityError

    ca = _ca()
    server, client = _mesh_tls(ca, "bookinfo-ratings"), _mesh_tls(ca, "bookinfo-productpage")
    peers: list = []
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            host, port = await _serve_tls(nursery, server, "127.0.9.92", peers)
            ratings = "spiffe://cluster.local/ns/default/sa/bookinfo-ratings"
            stream = await client.connect((host, port, "mtls", ratings))
            assert stream.alpn == "http/1.1"  # the HTTP/1.1 pool offers only what it speaks
            await stream.send_all(b"hi")
            assert await stream.receive_some() == b"ok"
            stream.close()
            h2 = await client.connect((host, port, "mtls", ratings), h2=True)
            assert h2.alpn == "h2"
            h2.close()
            with pytest.raises(UpstreamIdentityError, match="secure naming"):
                await client.connect(
                    (host, port, "mtls", "spiffe://cluster.local/ns/default/sa/bookinfo-details"))
            nursery.cancel_scope.cancel()
    assert client.secure_naming_refused == 1 and client.handshakes == 3
    peer = peers[0]
    assert peer.uri == "spiffe://cluster.local/ns/default/sa/bookinfo-productpage"
    assert peer.principal == "cluster.local/ns/default/sa/bookinfo-productpage"
    by, digest, uri = peer.xfcc.split(";")
    assert by == f"By={ratings}" and uri == f"URI={peer.uri}" and len(digest) == len("Hash=") + 64


async def test_mesh_tls_without_a_certificate_refuses_before_connecting():
    from trimesh.errors import UpstreamIdentityError
    from trimesh.proxy import MeshTls

    tls = MeshTls()
    with pytest.raises(UpstreamIdentityError, match="no certificate"):
        await tls.connect(("127.0.9.93", 9, "mtls", "spiffe://cluster.local/ns/default/sa/x"))
    assert tls.no_certificate == 1 and tls.handshakes == 0


async def test_a_second_connection_resumes_and_the_server_still_knows_the_caller():
    ca = _ca()
    server, client = _mesh_tls(ca, "bookinfo-ratings"), _mesh_tls(ca, "bookinfo-productpage")
    peers: list = []
    endpoint_id = "spiffe://cluster.local/ns/default/sa/bookinfo-ratings"
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            host, port = await _serve_tls(nursery, server, "127.0.9.94", peers)
            first = await client.connect((host, port, "mtls", endpoint_id))
            await first.send_all(b"hi")
            assert await first.receive_some() == b"ok"  # the session ticket arrives with it
            second = await client.connect((host, port, "mtls", endpoint_id))
            assert second.sock.session_reused
            await second.send_all(b"again")
            assert await second.receive_some() == b"ok"
            first.close()
            second.close()
            nursery.cancel_scope.cancel()
    assert client.resumed == 1
    # the resumed session carries the client's certificate: XFCC and source.user hold
    caller = "spiffe://cluster.local/ns/default/sa/bookinfo-productpage"
    assert [p.uri for p in peers] == [caller, caller]


async def test_a_renewal_gives_new_connections_the_new_certificate():
    ca = _ca()
    server, client = _mesh_tls(ca, "bookinfo-ratings"), _mesh_tls(ca, "bookinfo-productpage")
    peers: list = []
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            host, port = await _serve_tls(nursery, server, "127.0.9.95", peers)
            endpoint = (host, port, "mtls", "spiffe://cluster.local/ns/default/sa/bookinfo-ratings")
            old = await client.connect(endpoint)
            await old.send_all(b"1")
            assert await old.receive_some() == b"ok"
            serial = client.serial
            client.load(_material(ca, "bookinfo-productpage"))
            assert client.serial != serial
            new = await client.connect(endpoint)  # no resumption across certificates
            await new.send_all(b"2")
            assert await new.receive_some() == b"ok"
            await old.send_all(b"3")  # the open connection keeps working
            assert await old.receive_some() == b"ok"
            old.close()
            new.close()
            nursery.cancel_scope.cancel()
    assert client.resumed == 0 and len(peers) == 2


async def test_the_watchdog_sees_a_tls_client_go_away(tmp_path):
    """The listener's disconnect check peeks the TCP socket under TLS (SSLSocket.recv takes no
    flags: it once raised and took the inbound listener down)."""
    from trimesh.proxy._server import _peer_closed

    ca = _ca()
    server_ctx = server_context(*workload(tmp_path, ca, "ratings"))
    client_ctx = client_context(*workload(tmp_path, ca, "reviews"))
    listener = socket.socket()
    listener.bind(("127.0.9.96", 0))
    listener.listen()
    listener.setblocking(False)
    seen = {}
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            async def serve():
                await trio.lowlevel.wait_readable(listener)
                sock, _ = listener.accept()
                sock.setblocking(False)
                stream = await tls_handshake(sock, server_ctx, server_side=True)
                seen["open"] = _peer_closed(stream)
                seen["stream"] = stream

            nursery.start_soon(serve)
            sock = socket.socket()
            sock.setblocking(False)
            try:
                sock.connect(listener.getsockname())
            except BlockingIOError:
                await trio.lowlevel.wait_writable(sock)
            client = await tls_handshake(sock, client_ctx, server_side=False)
        client.close()
        for _ in range(100):  # the FIN reaches the server's socket (bounded)
            if _peer_closed(seen["stream"]):
                break
            await trio.sleep(0.01)
    listener.close()
    assert seen["open"] is False
    assert _peer_closed(seen["stream"]) is True
    seen["stream"].close()
