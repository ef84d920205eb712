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
  pool's connect timeout); a failure is ``OSError`` from :func:`handshake`, which the pool turns
  into ``UpstreamConnectError`` and the listener counts.
"""

from __future__ import annotations

import socket
import ssl

import trio

from ._io import CHECKPOINT_EVERY, RECV_SIZE, FastStream

ALPN_PROTOCOLS = ["h2", "http/1.1"]


def _context(server: bool, chain_path: str, key_path: str, root_path: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False  # SPIFFE certificates name no host: secure naming replaces it
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cafile=root_path)
    ctx.load_cert_chain(chain_path, key_path)
    ctx.set_alpn_protocols(ALPN_PROTOCOLS)
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


def client_context(chain_path: str, key_path: str, root_path: str) -> ssl.SSLContext:
    """The outbound's context: presents the workload's chain, verifies the server's chain
    against the mesh root (its identity is checked afterwards: secure naming)."""
    return _context(False, chain_path, key_path, root_path)


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


async def tls_handshake(sock: socket.socket, ctx: ssl.SSLContext, *, server_side: bool) -> TlsStream:
    """Wrap ``sock`` (connected, non-blocking) and complete the handshake; OSError on failure
    (the caller bounds the time). The socket is closed when the handshake fails."""
    tls = ctx.wrap_socket(sock, server_side=server_side, do_handshake_on_connect=False)
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
