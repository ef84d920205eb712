"""TCP through the mesh: a byte relay with half-close, CONNECT tunnels, and plain TCP listeners.

Ports whose protocol is ``tcp`` (or ``mongo``, ``redis``, ``mysql``: trimesh/config/_protocols.py)
carry bytes the mesh does not parse. Three ways in, one relay:

- **CONNECT** on the outbound listener (:func:`connect_tunnel`, called by
  ``OutboundProxy.handle``): ``CONNECT reviews:9080 HTTP/1.1`` is routed like a request whose
  authority is the target — RouteRules for the destination pick the backend (weights between
  versions apply; a rule with ``match.request`` does not, since a byte stream has no headers —
  concepts.md §8.5: "if match is omitted, the route rule applies only to HTTP traffic" is read
  as: an L4 connection takes the first rule without a request match — and ``match.tcp`` rules
  apply to TCP connections only, by source and destination subnet, :func:`decide_tcp`). No route → 404 NR; a fault
  abort → its status (FI); no host → 503 UH; every connect try failed → 503 UF, all through the
  pipeline's ``reply``. On success ``HTTP/1.1 200 Connection established``, then the relay.
- **--upstream SERVICE:PORT=LOCAL_PORT** (:class:`TcpProxy` ``outbound``, behind a
  :class:`TcpServer`): each accepted connection is routed to SERVICE:PORT the same way and relayed;
  failures close the connection (TCP has no way to say why; the record carries the flag).
- **Inbound** (:class:`TcpProxy` ``inbound``): a sidecar whose ``--protocol`` is a TCP protocol
  relays each connection on its service port to the app (one connect try; UF when it fails).

Connect tries: a TCP connection is retried on *connect* failure only (nothing was sent yet), on
another host than the ones tried while one is left (Envoy's ``previous_hosts``; with none left,
any host again), up to the route's
``httpReqRetries.simpleRetry.attempts`` + 1 when the route has a retry policy, else
:data:`TCP_CONNECT_TRIES`. Each try is bounded by the pool's connect timeout (1 s, Istio 0.x).

The relay (:func:`relay`) runs one pump per direction. A pump reads up to :data:`RELAY_RECV_SIZE`
bytes and writes them on (no per-byte Python work); on EOF it half-closes the other side
(``send_eof``: ``shutdown(SHUT_WR)``) and stops, while the other direction goes on — a client
that shuts down its write side still receives everything the server sends. The relay ends when
both directions have seen EOF, when either side resets (the other is closed), or after
:data:`TCP_IDLE_TIMEOUT` seconds with no byte in either direction (Envoy tcp_proxy's
``idle_timeout`` default, 1 h). Byte counts are kept per direction as they flow, so a cut-short
connection still reports what passed.

One :class:`~trimesh.telemetry.RequestRecord` per connection: ``protocol="tcp"``, method
``CONNECT`` (tunnel) or ``""`` (listener), status 200 once relayed (or the mesh reply's status),
``received_bytes`` (client → destination, ``connection.received.bytes``) and ``sent_bytes``
(destination → client, ``connection.sent.bytes``).
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time

import trio

from ..config import service_fqdn
from ..errors import UpstreamError
from ..routing import (NO_HEALTHY_UPSTREAM, OVERFLOW, UPSTREAM_FAILURE, Forward, MeshReply,
                       Redirect, RequestInfo, fault_abort, split_host_port)
from ..telemetry import RequestRecord
from . import _io

TCP_IDLE_TIMEOUT = 3600.0  # seconds with no byte either way; Envoy tcp_proxy idle_timeout default 1 h
RELAY_RECV_SIZE = 256 * 1024  # bytes per receive: few syscalls and Python steps per MB
TCP_CONNECT_TRIES = 3  # connect tries without a route retry policy (Envoy's tcp_proxy default is 1)
ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"
_NO_REDIRECT = MeshReply(404, "NR", "a redirect route does not apply to a CONNECT tunnel")

log = logging.getLogger("trimesh.proxy")


class RelayStats:
    """What one relay moved: ``received`` (a → b, the client's bytes), ``sent`` (b → a), and how
    it ended (``idle_timed_out``, ``reset``)."""

    __slots__ = ("received", "sent", "idle_timed_out", "reset")

    def __init__(self) -> None:
        self.received = 0
        self.sent = 0
        self.idle_timed_out = False
        self.reset = False

    def __repr__(self) -> str:
        return (f"<RelayStats received={self.received} sent={self.sent} "
                f"idle_timed_out={self.idle_timed_out} reset={self.reset}>")


async def relay(a, b, *, idle_timeout: float = TCP_IDLE_TIMEOUT, stats: RelayStats | None = None,
                first: bytes = b"") -> RelayStats:
    """Relay bytes between streams ``a`` (the client side) and ``b`` until both directions ended
    (module docstring). ``first``: bytes of ``a`` already read (sent to ``b`` first). Streams need
    ``receive_some``, ``send_all`` and ``send_eof``; they are not closed here."""
    stats = stats if stats is not None else RelayStats()
    idle = idle_timeout if idle_timeout and idle_timeout > 0 else math.inf
    with trio.CancelScope(deadline=trio.current_time() + idle) as scope:
        try:
            if first:
                await b.send_all(first)
                stats.received += len(first)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_pump, a, b, stats, True, scope, idle, nursery)
                await _pump(b, a, stats, False, scope, idle, nursery)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            stats.reset = True
    if scope.cancelled_caught:
        stats.idle_timed_out = True
    return stats


async def _pump(src, dst, stats: RelayStats, forward: bool, scope, idle: float, nursery) -> None:
    """One direction: copy until EOF, then half-close ``dst``. A reset ends both directions."""
    finite = idle != math.inf
    try:
        while True:
            data = await src.receive_some(RELAY_RECV_SIZE)
            if not data:
                break
            await dst.send_all(data)
            if forward:
                stats.received += len(data)
            else:
                stats.sent += len(data)
            if finite:
                scope.deadline = trio.current_time() + idle
        await dst.send_eof()
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        stats.reset = True
        nursery.cancel_scope.cancel()


# -- routing and connecting ------------------------------------------------------------------------
def decide_tcp(table, authority: str, rng, *, method: str = "CONNECT", source_ip: str = ""):
    """The route for a TCP connection to ``authority`` from ``source_ip``: a ``Forward`` or a
    mesh reply. RouteRules with ``match.tcp`` apply here (and only here): ``sourceSubnet``
    against the client's address, ``destinationSubnet`` against the authority's host when it is
    an IP address (a named destination has none)."""
    host, _ = split_host_port(authority)
    destination_ip = host.strip("[]") if _is_ip(host.strip("[]")) else ""
    decision = table.decide(RequestInfo(method=method, authority=authority, path="", scheme="tcp",
                                        headers={}, source_ip=source_ip,
                                        destination_ip=destination_ip), rng)
    if type(decision) is Redirect:
        return _NO_REDIRECT
    return decision


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def connect_tries(fwd: Forward) -> int:
    """How many connect tries a TCP connection routed by ``fwd`` gets (module docstring)."""
    retry = fwd.retry
    return retry.attempts + 1 if retry is not None else TCP_CONNECT_TRIES


async def open_upstream(fwd: Forward, pool, rng, now: float):
    """Connect for ``fwd``: ``(conn, inst, upstream, tries, reply)``; ``reply`` is the mesh reply
    (UH, UF) when no connection could be made, else None. ``inst`` has had
    ``on_request_start``; the caller ends it (``on_request_end``) when the relay is over."""
    if fwd.external_host is not None:  # egress to an EgressRule's TCP port
        endpoint = (fwd.external_host, fwd.external_port or 80)
        upstream = f"{endpoint[0]}:{endpoint[1]}"
        try:
            return await pool.connect(endpoint), None, upstream, 1, None
        except UpstreamError:
            return None, None, upstream, 1, UPSTREAM_FAILURE
    cluster = fwd.cluster
    tried: tuple = ()
    upstream = ""
    for n in range(connect_tries(fwd)):
        inst = cluster.pick(rng, now, tried)
        if inst is None:
            return None, None, upstream, n, NO_HEALTHY_UPSTREAM if n == 0 else UPSTREAM_FAILURE
        endpoint = inst.endpoint
        tried += (endpoint,)
        upstream = f"{endpoint[0]}:{endpoint[1]}"
        cluster.on_request_start(inst)
        try:
            conn = await pool.connect(endpoint)
        except UpstreamError:
            now = trio.current_time()
            cluster.on_request_end(inst, None, now)
            cluster.record_result(inst, None, now)
            continue
        return conn, inst, upstream, n + 1, None
    return None, None, upstream, len(tried), UPSTREAM_FAILURE


# -- CONNECT on the outbound listener --------------------------------------------------------------
async def connect_tunnel(proxy, ex) -> bool:
    """Serve ``CONNECT host:port`` on the outbound listener (module docstring). ``proxy`` is the
    ``OutboundProxy`` (its table, rng, pool, reply and record stages); returns False (the
    connection is the tunnel's and closes after it)."""
    head = ex.head
    down = ex.down
    ex.scheme, ex.authority, ex.path, ex.protocol = "tcp", head.target, "", "tcp"
    decision = decide_tcp(proxy.table, head.target, proxy.rng, source_ip=down.client)
    if type(decision) is not Forward:
        return await proxy.reply(ex, decision)
    fwd = ex.fwd = decision
    ex.rule = fwd.rule
    cluster = fwd.cluster
    ex.cluster_name = cluster.name if cluster is not None else (fwd.external_host or "")
    if fwd.delay:
        ex.add_flag("DI")
        await trio.sleep(fwd.delay)
    if fwd.abort_status is not None:
        return await proxy.reply(ex, fault_abort(fwd.abort_status))
    now = ex.now = trio.current_time()
    if cluster is not None:
        ex.token = cluster.admit_request(now)  # released by Pipeline.__call__
        if ex.token is None:
            return await proxy.reply(ex, OVERFLOW)
    conn, inst, ex.upstream, ex.attempts, failed = await open_upstream(fwd, proxy.pool,
                                                                       proxy.rng, now)
    if failed is not None:
        return await proxy.reply(ex, failed)
    stats = RelayStats()
    try:
        await down.stream.send_all(ESTABLISHED)
        down.response_started = True
        down.server.detach(down)  # the tunnel sees the client's EOF itself (half-close)
        await relay(down.stream, conn.stream, first=down.parser.leftover,
                    idle_timeout=getattr(proxy, "tcp_idle_timeout", TCP_IDLE_TIMEOUT), stats=stats)
    finally:
        proxy.pool.discard(conn)
        if inst is not None:
            cluster.on_request_end(inst, None, trio.current_time())
        ex.received_bytes, ex.sent_bytes = stats.received, stats.sent
        _flag_end(ex.add_flag, stats)
        proxy._finish(ex, 200)
    return False


def _flag_end(add_flag, stats: RelayStats) -> None:
    if stats.idle_timed_out:
        add_flag("IT")  # trimesh's: the tcp_proxy idle timeout closed the connection
    elif stats.reset:
        add_flag("UC")  # Envoy's: a connection was reset (either side) while relaying


# -- plain TCP listeners ---------------------------------------------------------------------------
class TcpProxy:
    """The handler of a plain TCP listener: ``outbound`` relays each connection to ``target``
    (``SERVICE:PORT``, routed through ``table_of()``, the sidecar's current RouteTable);
    ``inbound`` relays it to the app at ``app_endpoint``."""

    def __init__(self, direction: str, *, rng, pool, access_log, target: str = "",
                 table_of=None, app_endpoint: tuple[str, int] | None = None, service: str = "",
                 idle_timeout: float = TCP_IDLE_TIMEOUT) -> None:
        if direction not in ("outbound", "inbound"):
            raise ValueError(f"direction must be outbound or inbound, got {direction!r}")
        self.direction = direction
        self.rng = rng
        self.pool = pool
        self.access_log = access_log
        self.target = target
        self.table_of = table_of
        self.app_endpoint = app_endpoint
        self.fqdn = service_fqdn(service) if service else ""
        self.idle_timeout = idle_timeout
        self.connections = 0
        self.active = 0
        self.received_bytes = 0
        self.sent_bytes = 0
        self.flags: dict[str, int] = {}

    async def __call__(self, stream, client: str) -> None:
        start = trio.current_time()
        self.connections += 1
        self.active += 1
        rec = RequestRecord(time.time(), self.direction, "", self.target, "", 0, "", "", "",
                            None, 0.0, 0, None, "tcp", protocol="tcp", source_ip=client,
                            destination_service=self.fqdn, received_bytes=0, sent_bytes=0)
        stats = RelayStats()
        try:
            await self._serve(stream, rec, stats, start)
        finally:
            self.active -= 1
            self.received_bytes += stats.received
            self.sent_bytes += stats.sent
            rec.received_bytes, rec.sent_bytes = stats.received, stats.sent
            rec.duration = trio.current_time() - start
            if rec.flags:
                for f in rec.flags.split(","):
                    self.flags[f] = self.flags.get(f, 0) + 1
            self.access_log.log(rec)

    async def _serve(self, stream, rec: RequestRecord, stats: RelayStats, start: float) -> None:
        inst = cluster = None
        if self.direction == "inbound":
            rec.cluster = "inbound|app"
            rec.upstream = f"{self.app_endpoint[0]}:{self.app_endpoint[1]}"
            rec.attempts = 1
            try:
                conn = await self.pool.connect(self.app_endpoint)
            except UpstreamError:
                _reply_flag(rec, UPSTREAM_FAILURE)
                return
        else:
            decision = decide_tcp(self.table_of(), self.target, self.rng, method="",
                                  source_ip=rec.source_ip)
            if type(decision) is not Forward:
                _reply_flag(rec, decision)
                return
            fwd = decision
            cluster = fwd.cluster
            rec.rule = fwd.rule
            rec.destination_service = fwd.fqdn
            rec.cluster = cluster.name if cluster is not None else (fwd.external_host or "")
            if fwd.abort_status is not None:
                _reply_flag(rec, fault_abort(fwd.abort_status))
                return
            if fwd.delay:
                rec.flags = "DI"
                await trio.sleep(fwd.delay)
            conn, inst, rec.upstream, rec.attempts, failed = await open_upstream(
                fwd, self.pool, self.rng, trio.current_time())
            if failed is not None:
                _reply_flag(rec, failed)
                return
        rec.status = 200
        try:
            await relay(stream, conn.stream, idle_timeout=self.idle_timeout, stats=stats)
        finally:
            self.pool.discard(conn)
            if inst is not None:
                cluster.on_request_end(inst, None, trio.current_time())
            _flag_end(lambda f: _add(rec, f), stats)

    def statistics(self) -> dict[str, object]:
        s: dict[str, object] = {"connections": self.connections, "active": self.active,
                                "received_bytes": self.received_bytes,
                                "sent_bytes": self.sent_bytes}
        s.update((f"flag_{f}", n) for f, n in self.flags.items())
        return s

    def __repr__(self) -> str:
        where = self.target or (f"{self.app_endpoint[0]}:{self.app_endpoint[1]}"
                                if self.app_endpoint else "")
        return (f"<TcpProxy {self.direction} -> {where} connections={self.connections} "
                f"active={self.active}>")


def _add(rec: RequestRecord, flag: str) -> None:
    rec.flags = flag if not rec.flags else f"{rec.flags},{flag}"


def _reply_flag(rec: RequestRecord, reply) -> None:
    """A TCP listener cannot answer with a status: the record carries the reply's."""
    rec.status = reply.status
    if reply.flag:
        _add(rec, reply.flag)


class TcpServer:
    """A plain TCP listener: each accepted connection runs ``handler(stream, client)`` in its own
    task and is closed after it. The same shape as ``HttpServer`` (``serve``, ``drain``,
    ``wait_drained``, ``statistics``) so the sidecar runs either as a listener child."""

    def __init__(self, name: str, handler) -> None:
        self.name = name
        self.handler = handler
        self.address: tuple[str, int] | None = None
        self.draining = False
        self.connections = 0
        self.accepted = 0
        self.internal_errors = 0
        self._listener = None
        self._drained = trio.Event()

    async def serve(self, host: str, port: int, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        listener = self._listener = _io.open_listener(host, port)
        self.address = listener.getsockname()[:2]
        try:
            async with trio.open_nursery() as nursery:
                task_status.started(self.address)
                log.info("%s: TCP listener on %s:%d", self.name, *self.address)
                await _io.accept_connections(listener, nursery, self)
        finally:
            if not self.draining:
                _io.close_listener(listener)

    async def _serve_connection(self, sock, addr) -> None:
        stream = _io.make_stream(sock)
        self.connections += 1
        try:
            await self.handler(stream, addr[0] if addr else "")
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except Exception:
            self.internal_errors += 1
            log.exception("%s: internal error on a connection from %s", self.name, addr)
        finally:
            stream.close()
            self.connections -= 1
            if self.draining and self.connections == 0:
                self._drained.set()

    def drain(self) -> None:
        """Stop accepting; connections in flight go on (``wait_drained`` waits for them)."""
        if self.draining:
            return
        self.draining = True
        if self._listener is not None:
            _io.close_listener(self._listener)
        if self.connections == 0:
            self._drained.set()

    async def wait_drained(self) -> None:
        await self._drained.wait()

    def statistics(self) -> dict[str, object]:
        s: dict[str, object] = {"address": self.address, "connections": self.connections,
                                "accepted": self.accepted, "draining": self.draining,
                                "internal_errors": self.internal_errors}
        stats = getattr(self.handler, "statistics", None)
        if stats is not None:
            s["relay"] = stats()
        return s

    def __repr__(self) -> str:
        return f"<TcpServer {self.name} address={self.address} connections={self.connections}>"
