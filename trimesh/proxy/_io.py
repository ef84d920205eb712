"""A thin stream over non-blocking sockets for the proxy's hot path (PERF.md).

Trio's ``SocketStream`` checkpoints twice per operation (``checkpoint_if_cancelled`` before the
syscall, ``cancel_shielded_checkpoint`` after it) and goes through a conflict detector. On the proxy
path, where every request costs four socket operations, that is the largest Python cost left once
parsing runs in C. :class:`FastStream` instead:

1. tries the syscall first (``recv``/``send`` on a non-blocking socket);
2. only on ``EAGAIN`` waits with ``trio.lowlevel.wait_readable`` / ``wait_writable`` — a real
   checkpoint, so a cancelled or timed-out wait raises ``Cancelled`` with no byte consumed;
3. every :data:`CHECKPOINT_EVERY` operations that completed without waiting it runs a full
   ``trio.lowlevel.checkpoint()``, so a hot connection whose socket is always ready cannot starve
   other tasks and still notices cancellation within a bounded number of operations.

Semantics differ from trio's streams in one documented way: an operation that completes at once is
not a checkpoint (except every N-th). A ``send_all`` cancelled mid-way leaves the stream broken (as
with trio's). Closing wakes waiters with ``ClosedResourceError`` (``notify_closing``).

``open_listener``/``accept``/``connect`` build these streams; ``IO_MODE = "trio"`` switches the proxy
to ``trio.SocketStream`` for comparison (tests/proxy/test_io.py checks both work; the sanity
measurement in the report compares them).
"""

from __future__ import annotations

import errno
import socket
import ssl

import trio

CHECKPOINT_EVERY = 16  # operations completed without waiting between forced checkpoints
RECV_SIZE = 65536
LISTEN_BACKLOG = 1024
ACCEPT_CAPACITY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}  # trio's set
ACCEPT_RETRY_SLEEP = 0.1  # seconds to back off when out of file descriptors (trio uses 0.1)

IO_MODE = "fast"  # "fast" (FastStream) or "trio" (trio.SocketStream), see the module docstring


class FastStream:
    """``receive_some``/``send_all``/``aclose`` over a non-blocking stdlib socket."""

    __slots__ = ("sock", "_ops", "_closed")

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self._ops = 0
        self._closed = False

    async def receive_some(self, max_bytes: int = RECV_SIZE) -> bytes:
        sock = self.sock
        self._ops += 1
        if self._ops >= CHECKPOINT_EVERY:
            self._ops = 0
            await trio.lowlevel.checkpoint()
        while True:
            try:
                return sock.recv(max_bytes)
            except BlockingIOError:
                pass
            except OSError as exc:
                if self._closed:
                    raise trio.ClosedResourceError("stream was closed") from None
                raise trio.BrokenResourceError(f"recv failed: {exc}") from exc
            await trio.lowlevel.wait_readable(sock)

    async def wait_and_receive(self, max_bytes: int = RECV_SIZE) -> bytes:
        """``receive_some`` for when data cannot be there yet (a response right after its request
        was sent, the next request right after a response): wait for readiness first, sparing
        the ``recv`` that would fail with ``EAGAIN`` and the exception it raises."""
        sock = self.sock
        self._ops = 0
        while True:
            await trio.lowlevel.wait_readable(sock)
            try:
                return sock.recv(max_bytes)
            except BlockingIOError:
                pass
            except OSError as exc:
                if self._closed:
                    raise trio.ClosedResourceError("stream was closed") from None
                raise trio.BrokenResourceError(f"recv failed: {exc}") from exc

    async def send_all(self, data: bytes) -> None:
        sock = self.sock
        self._ops += 1
        if self._ops >= CHECKPOINT_EVERY:
            self._ops = 0
            await trio.lowlevel.checkpoint()
        view = None
        while True:
            try:
                n = sock.send(data if view is None else view)
            except BlockingIOError:
                await trio.lowlevel.wait_writable(sock)
                continue
            except OSError as exc:
                if self._closed:
                    raise trio.ClosedResourceError("stream was closed") from None
                raise trio.BrokenResourceError(f"send failed: {exc}") from exc
            if view is None:
                if n == len(data):
                    return
                view = memoryview(data)[n:]
            else:
                if n == len(view):
                    return
                view = view[n:]

    async def send_eof(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        await trio.lowlevel.checkpoint()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            trio.lowlevel.notify_closing(self.sock)
            self.sock.close()

    async def aclose(self) -> None:
        self.close()
        await trio.lowlevel.checkpoint()

    def __repr__(self) -> str:
        try:
            return f"<FastStream fd={self.sock.fileno()} peer={self.sock.getpeername()}>"
        except OSError:
            return "<FastStream closed>"


class TrioStream:
    """``trio.SocketStream`` with a synchronous ``close()``, so the proxy can use either stream."""

    __slots__ = ("_s", "receive_some", "wait_and_receive", "send_all", "send_eof", "aclose",
                 "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._s = s = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
        self.receive_some = self.wait_and_receive = s.receive_some
        self.send_all = s.send_all
        self.send_eof = s.send_eof
        self.aclose = s.aclose

    def close(self) -> None:
        self._s.socket.close()


class TlsStream:
    """TLS origination (egress to ``https`` ports): ``trio.SSLStream`` behind the same interface.
    Not on the hot path; handshake failures surface as OSError (a connect failure)."""

    __slots__ = ("_s", "receive_some", "wait_and_receive", "send_all")

    def __init__(self, ssl_stream: trio.SSLStream) -> None:
        self._s = ssl_stream
        self.receive_some = self.wait_and_receive = ssl_stream.receive_some
        self.send_all = ssl_stream.send_all

    def close(self) -> None:
        self._s.transport_stream.socket.close()

    async def aclose(self) -> None:
        self.close()
        await trio.lowlevel.checkpoint()


_client_tls_context: ssl.SSLContext | None = None


async def connect_tls(host: str, port: int, *, context: ssl.SSLContext | None = None) -> TlsStream:
    """Connect and complete a TLS handshake verifying ``host`` (system trust store)."""
    global _client_tls_context
    if context is None:
        if _client_tls_context is None:
            _client_tls_context = ssl.create_default_context()
        context = _client_tls_context
    tcp = await trio.open_tcp_stream(host, port)
    stream = trio.SSLStream(tcp, context, server_hostname=host, https_compatible=True)
    try:
        await stream.do_handshake()
    except trio.BrokenResourceError as exc:
        tcp.socket.close()
        raise OSError(f"TLS handshake with {host}:{port} failed: {exc.__cause__ or exc}") from None
    except BaseException:
        tcp.socket.close()
        raise
    return TlsStream(stream)


def make_stream(sock: socket.socket):
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if IO_MODE == "trio":
        return TrioStream(sock)
    return FastStream(sock)


def open_listener(host: str, port: int, *, backlog: int = LISTEN_BACKLOG) -> socket.socket:
    """A bound, listening, non-blocking TCP socket (SO_REUSEADDR). Raises OSError as is: the caller
    says which listener failed."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def accept(listener: socket.socket) -> tuple[socket.socket, tuple]:
    """Accept one connection, waiting only when none is pending."""
    while True:
        try:
            return listener.accept()
        except BlockingIOError:
            pass
        except OSError as exc:
            if exc.errno in ACCEPT_CAPACITY_ERRNOS:
                await trio.sleep(ACCEPT_RETRY_SLEEP)
                continue
            raise
        await trio.lowlevel.wait_readable(listener)


async def accept_connections(listener: socket.socket, nursery, server) -> None:
    """The accept loop every listener runs: start ``server._serve_connection(sock, addr)`` in
    ``nursery`` for each connection (counted in ``server.accepted``) until ``server.draining``;
    the listener closed by a drain ends it, any other accept failure propagates."""
    while not server.draining:
        try:
            sock, addr = await accept(listener)
        except (trio.ClosedResourceError, OSError):
            if server.draining:
                return
            raise
        server.accepted += 1
        nursery.start_soon(server._serve_connection, sock, addr)


def close_listener(listener: socket.socket) -> None:
    trio.lowlevel.notify_closing(listener)
    listener.close()


async def connect(host: str, port: int):
    """Connect to ``host:port`` (an IP literal, or a name resolved with trio's getaddrinfo) and
    return a stream. Raises OSError on failure."""
    return make_stream(await connect_socket(host, port))


async def connect_socket(host: str, port: int) -> socket.socket:
    """:func:`connect`'s connected non-blocking socket, before a stream wraps it (TLS)."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        socket.inet_pton(family, host)
        addr = (host, port)
    except OSError:
        infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        if not infos:
            raise OSError(errno.EHOSTUNREACH, f"cannot resolve {host}") from None
        family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        err = sock.connect_ex(addr)
        if err not in (0, errno.EINPROGRESS):
            raise OSError(err, f"connect to {host}:{port}: {errno.errorcode.get(err, err)}")
        if err:
            await trio.lowlevel.wait_writable(sock)
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, f"connect to {host}:{port}: {errno.errorcode.get(err, err)}")
    except BaseException:
        trio.lowlevel.notify_closing(sock)
        sock.close()
        raise
    return sock
