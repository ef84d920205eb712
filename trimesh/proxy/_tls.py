"""Mutual TLS for the sidecar-to-sidecar hop: contexts from a workload's certificate material, a
TLS stream on the proxy's thin I/O layer, and the peer's SPIFFE identity.

Theory of operation (issue 12, docs/identity.md):

- **Contexts.** :func:`server_context` (the inbound listener) requires a client certificate that
  chains to the mesh root (``CERT_REQUIRED``); :func:`client_context` (the outbound's pooled
  connections) verifies the server's chain against the same root. Workload certificates carry one
  ``spiffe://`` URI SAN and no DNS name, so hostname checking is off and **secure naming** takes
  its place: after the handshake the client reads the server's identity
  (:func:`peer_identity`) and compares it with the service account the registry names for the
  instance (``trimesh.ca.check_secure_naming``). TLS 1.2 is the floor; ALPN offers ``h2`` and
  ``http/1.1``. Session tickets are on (OpenSSL's default), so a pooled connection's reconnect can
  resume.
- **The stream.** :class:`TlsStream` drives a non-blocking ``ssl.SSLSocket`` the way
  :class:`~._io.FastStream` drives a plain one: try the operation, wait for readiness only on
  ``SSLWantReadError`` / ``SSLWantWriteError`` (a renegotiation-free TLS 1.3 read can want a
  write too). Decrypted bytes may sit in the SSL object while the socket is not readable, so
  :meth:`TlsStream.wait_and_receive` asks ``pending()`` before it waits. No ``MemoryBIO`` pumping:
  the kernel socket and OpenSSL do the copying; Python sees each record once.
- **Handshakes** run with a deadline chosen by the caller (the listener's header timeout, the
  pool's connect timeout); a failure is ``OSError`` from :func:`tls_handshake`, which the pool
  turns into ``UpstreamConnectError`` and the listener counts.
- **The sidecar's state.** :class:`MeshTls` holds the contexts built from the cert agent's
  current certificate (rebuilt on every renewal: new connections use the new one, open ones keep
  theirs), the own identity, the TLS session of the last connection per endpoint (resumed by the
  next connect), and the counters ``/stats`` shows. :meth:`MeshTls.connect` is the pools' way to
  a secure endpoint ``(address, port, "mtls", identity)`` (trimesh/routing/_mtls.py): connect,
  handshake, then secure naming — the server's identity must be the endpoint's, else
  :class:`~trimesh.errors.UpstreamIdentityError` (503 UF, counted ``secure_naming_refused``).
  :meth:`MeshTls.accepted` reads a verified client's identity once per connection into a
  :class:`Peer`: ``source.user`` and ``x-forwarded-client-cert`` come from it, never from a header.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import ssl
import tempfile

import trio

from ..errors import UpstreamIdentityError
from ._io import CHECKPOINT_EVERY, RECV_SIZE, FastStream, connect_socket

log = logging.getLogger("trimesh.proxy.tls")

ALPN_PROTOCOLS = ["h2", "http/1.1"]


def _context(server: bool, chain_path: str, key_path: str, root_path: str,
             alpn: list[str] = ALPN_PROTOCOLS) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False  # SPIFFE certificates name no host: secure naming replaces it
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cafile=root_path)
    ctx.load_cert_chain(chain_path, key_path)
    ctx.set_alpn_protocols(alpn)
    return ctx


def server_context(chain_path: str, key_path: str, root_path: str) -> ssl.SSLContext:
    """The inbound listener's context from the cert agent's files (``cert-chain.pem``,
    ``key.pem``, ``root-cert.pem``): presents the workload's chain, requires a client
    certificate from the mesh root. A rotation builds a new context; connections keep theirs."""
    return _context(True, chain_path, key_path, root_path)


def edge_context(cert_path: str, key_path: str) -> ssl.SSLContext:
    """The ingress's HTTPS listener (``--tls-cert``/``--tls-key``): one certificate for every
    client, no client certificate asked for (the docs' secure ingress, IN7). ALPN offers ``h2``
    and ``http/1.1``: a client that picks ``h2`` sends the HTTP/2 preface, which the listener
    recognises as on a cleartext port (docs/protocols.md)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_path, key_path)
    ctx.set_alpn_protocols(ALPN_PROTOCOLS)
    return ctx


def client_context(chain_path: str, key_path: str, root_path: str,
                   alpn: list[str] = ALPN_PROTOCOLS) -> ssl.SSLContext:
    """The outbound's context: presents the workload's chain, verifies the server's chain
    against the mesh root (its identity is checked afterwards: secure naming). ``alpn``: what
    it offers (a pool offers the one protocol it will speak)."""
    return _context(False, chain_path, key_path, root_path, alpn)


class TlsStream(FastStream):
    """``FastStream`` over a non-blocking ``ssl.SSLSocket`` (module docstring): its own
    receive and send (OpenSSL's want-read/want-write), the rest shared (close, send_eof)."""

    __slots__ = ()

    async def receive_some(self, max_bytes: int = RECV_SIZE) -> bytes:
        sock = self.sock
        self._ops += 1
        if self._ops >= CHECKPOINT_EVERY:
            self._ops = 0
            await trio.lowlevel.checkpoint()
        while True:
            try:
                return sock.recv(max_bytes)
            except ssl.SSLWantReadError:
                await trio.lowlevel.wait_readable(sock)
            except ssl.SSLWantWriteError:
                await trio.lowlevel.wait_writable(sock)
            except ssl.SSLZeroReturnError:
                return b""  # close_notify: a clean end of the stream
            except (OSError, ssl.SSLError) as exc:
                if self._closed:
                    raise trio.ClosedResourceError("stream was closed") from None
                raise trio.BrokenResourceError(f"TLS recv failed: {exc}") from exc

    async def wait_and_receive(self, max_bytes: int = RECV_SIZE) -> bytes:
        """``receive_some`` for when data cannot be there yet — unless OpenSSL already holds
        decrypted bytes (``pending()``), which a readiness wait would never report."""
        if not self.sock.pending():
            self._ops = 0
            try:
                await trio.lowlevel.wait_readable(self.sock)
            except OSError as exc:  # closed while waiting
                raise trio.ClosedResourceError("stream was closed") from exc
        return await self.receive_some(max_bytes)

    async def send_all(self, data: bytes) -> None:
        sock = self.sock
        self._ops += 1
        if self._ops >= CHECKPOINT_EVERY:
            self._ops = 0
            await trio.lowlevel.checkpoint()
        view = memoryview(data)
        while view:
            try:
                n = sock.send(view)
            except ssl.SSLWantWriteError:
                await trio.lowlevel.wait_writable(sock)
                continue
            except ssl.SSLWantReadError:
                await trio.lowlevel.wait_readable(sock)
                continue
            except (OSError, ssl.SSLError) as exc:
                if self._closed:
                    raise trio.ClosedResourceError("stream was closed") from None
                raise trio.BrokenResourceError(f"TLS send failed: {exc}") from exc
            view = view[n:]

    @property
    def alpn(self) -> str | None:
        return self.sock.selected_alpn_protocol()

    def __repr__(self) -> str:
        return f"<TlsStream {'closed' if self._closed else self.sock.version()}>"


async def tls_handshake(sock: socket.socket, ctx: ssl.SSLContext, *, server_side: bool,
                        session: ssl.SSLSession | None = None) -> TlsStream:
    """Wrap ``sock`` (connected, non-blocking) and complete the handshake; OSError on failure
    (the caller bounds the time). The socket is closed when the handshake fails. ``session``: a
    client's earlier session with the same server, to resume."""
    tls = ctx.wrap_socket(sock, server_side=server_side, do_handshake_on_connect=False,
                          session=session)
    tls.setblocking(False)
    try:
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                await trio.lowlevel.wait_readable(tls)
            except ssl.SSLWantWriteError:
                await trio.lowlevel.wait_writable(tls)
    except ssl.SSLError as exc:
        trio.lowlevel.notify_closing(tls)
        tls.close()
        raise OSError(f"TLS handshake failed: {exc.reason or exc}") from exc
    except BaseException:
        trio.lowlevel.notify_closing(tls)
        tls.close()
        raise
    return TlsStream(tls)


def peer_identity(stream: TlsStream):
    """The SPIFFE identity (``trimesh.ca.SpiffeId``) in the peer's (already verified)
    certificate, or None. (trimesh.ca, and cryptography with it, is imported on first use: a
    plaintext sidecar never loads them.)"""
    from ..ca import identity_from_certificate

    return identity_from_certificate(stream.sock.getpeercert(binary_form=True))


def contexts_from_pem(chain_pem: bytes, key_pem: bytes, root_pem: bytes
                      ) -> tuple[ssl.SSLContext, ssl.SSLContext, ssl.SSLContext]:
    """``(server, HTTP/1.1 client, HTTP/2 client)`` contexts from a workload's material in
    memory (each client context offers by ALPN only the protocol its pool speaks). ``ssl`` loads
    a certificate and key only from files: they are written to a private temporary directory
    (0700, the key 0600) and removed once loaded."""
    with tempfile.TemporaryDirectory(prefix="trimesh-tls-") as tmp:
        chain, key, root = (os.path.join(tmp, n) for n in ("chain.pem", "key.pem", "root.pem"))
        for path, data in ((chain, chain_pem), (key, key_pem), (root, root_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        return (server_context(chain, key, root),
                client_context(chain, key, root, ["http/1.1"]),
                client_context(chain, key, root, ["h2"]))


class Peer:
    """A verified client's identity, read once per connection: ``uri`` (``spiffe://…``, or None
    for a chain from the mesh root without an identity), ``principal`` (``source.user``: the URI
    without ``spiffe://``) and ``xfcc``, the ``x-forwarded-client-cert`` value the app gets
    (Envoy's ``By=<own>;Hash=<sha256 of the client certificate>;URI=<caller>``)."""

    __slots__ = ("uri", "principal", "xfcc")

    def __init__(self, uri: str | None, own: str | None, der: bytes) -> None:
        self.uri = uri
        self.principal = uri[len("spiffe://"):] if uri else None
        parts = [f"By={own}"] if own else []
        parts.append(f"Hash={hashlib.sha256(der).hexdigest()}")
        if uri:
            parts.append(f"URI={uri}")
        self.xfcc = ";".join(parts)

    def __repr__(self) -> str:
        return f"<Peer {self.uri}>"


SESSION_CACHE_MAX = 1024  # endpoints whose last TLS session is kept for resumption


class MeshTls:
    """A sidecar's mutual-TLS state (module docstring). ``load(material)`` installs a
    certificate (the cert agent's ``CertMaterial``); until then there are no contexts, an
    mTLS connect fails with ``UpstreamIdentityError`` and an mTLS listener accepts nobody."""

    def __init__(self) -> None:
        self.server: ssl.SSLContext | None = None
        self.client: ssl.SSLContext | None = None  # offers http/1.1 (the HTTP/1.1 pool's)
        self.client_h2: ssl.SSLContext | None = None  # offers h2 (the HTTP/2 pool's)
        self.identity: str | None = None  # the own SPIFFE URI
        self.serial: int | None = None
        self.loads = 0
        self.handshakes = 0
        self.handshake_failures = 0
        self.resumed = 0
        self.secure_naming_refused = 0
        self.no_certificate = 0
        # (endpoint, h2) -> a resumable session / the newest connection made with that context
        self._sessions: dict[tuple, ssl.SSLSession] = {}
        self._last: dict[tuple, TlsStream] = {}

    def load(self, material) -> None:
        """Build contexts from ``material`` (``trimesh.ca.CertMaterial``); new connections use
        them, open ones keep theirs. Resumable sessions of the old certificate are dropped."""
        self.server, self.client, self.client_h2 = contexts_from_pem(
            material.chain_pem, material.key_pem, material.root_pem)
        self.identity = material.identity.uri
        self.serial = material.serial
        self._sessions.clear()
        self._last.clear()
        self.loads += 1

    async def connect(self, endpoint: tuple, *, h2: bool = False) -> TlsStream:
        """Connect to a secure endpoint ``(address, port, "mtls", identity)``: TCP, the TLS
        handshake (ALPN ``h2`` or ``http/1.1``; resuming the endpoint's last session), secure
        naming. ``OSError`` when the connection or handshake fails; ``UpstreamIdentityError``
        when there is no certificate yet or the server is not ``identity``. (The caller bounds
        the time.)"""
        ctx = self.client_h2 if h2 else self.client
        if ctx is None:
            self.no_certificate += 1
            raise UpstreamIdentityError(
                f"{endpoint[0]}:{endpoint[1]}: mutual TLS, and this sidecar has no certificate")
        sock = await connect_socket(endpoint[0], endpoint[1])
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            stream = await tls_handshake(sock, ctx, server_side=False,
                                         session=self._session_for((endpoint, h2)))
        except OSError:
            self.handshake_failures += 1
            raise
        self.handshakes += 1
        tls = stream.sock
        if tls.session_reused:
            self.resumed += 1
        presented = peer_identity(stream)
        wanted = endpoint[3]
        if presented is None or presented.uri != wanted:
            self.secure_naming_refused += 1
            stream.close()
            log.warning("secure naming: %s:%s presented %s, the registry names %s",
                        endpoint[0], endpoint[1], presented or "no identity", wanted)
            raise UpstreamIdentityError(
                f"{endpoint[0]}:{endpoint[1]} presented {presented or 'no identity'}, "
                f"the registry names {wanted} (secure naming)")
        last = self._last
        key = (endpoint, h2)  # a session resumes only with the context that made it
        if len(last) >= SESSION_CACHE_MAX and key not in last:
            last.clear()
            self._sessions.clear()
        last[key] = stream
        return stream

    def _session_for(self, key: tuple) -> ssl.SSLSession | None:
        """A session to resume with ``endpoint``: TLS 1.3 sends its tickets after the handshake,
        so the last connection's session is read now, once it has had traffic (and kept, for
        when that connection is gone)."""
        last = self._last.get(key)
        if last is not None:
            session = last.sock.session if not last._closed else None
            if session is not None and session.has_ticket:
                self._sessions[key] = session
        return self._sessions.get(key)

    def accepted(self, stream: TlsStream) -> Peer:
        """The identity of a client the server context verified (module docstring)."""
        self.handshakes += 1
        der = stream.sock.getpeercert(binary_form=True) or b""
        ident = peer_identity(stream)
        return Peer(ident.uri if ident is not None else None, self.identity, der)

    def statistics(self) -> dict[str, object]:
        return {"identity": self.identity, "serial": f"{self.serial:x}" if self.serial else None,
                "loads": self.loads, "handshakes": self.handshakes,
                "handshake_failures": self.handshake_failures, "resumed": self.resumed,
                "secure_naming_refused": self.secure_naming_refused,
                "no_certificate": self.no_certificate}

    def __repr__(self) -> str:
        return f"<MeshTls {self.identity} handshakes={self.handshakes}>"
