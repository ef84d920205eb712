"""The Trio shell around :class:`SwimNode`: UDP datagrams, TCP push/pull, timers, an event stream.

The shell owns no protocol logic. It moves bytes and time in and out of the pure core:

* one task receives datagrams (``recvfrom`` with a 64 KiB buffer, so oversized packets reach
  the core and are counted there) and feeds ``receive_datagram``;
* one task runs the timers the core scheduled, from a heap, waking early when an earlier timer
  arrives;
* a TCP listener on the same port serves push/pull frames (``receive_stream``); a ``Stream``
  effect opens a connection in a child task, bounded by ``tcp_timeout`` (memberlist's LAN
  ``TCPTimeout``, 10 s);
* ``Notify`` effects go to every subscriber's memory channel (:meth:`GossipAgent.subscribe`);
  a subscriber that falls ``event_buffer`` events behind loses events (counted) rather than
  stalling the gossip loop — it can always re-read the full view (``members()``,
  ``registry()``, ``config_entries()``).

TCP frames are a 4-byte big-endian length and the sealed frame (:mod:`._messages`). Addresses
on the wire are ``"host:port"`` strings. Time is ``trio.current_time()``; the packets' timestamps
add the wall-clock offset measured once at start, for the replay window.
"""

from __future__ import annotations

import heapq
import logging
import math
import random
import time
from collections.abc import Iterable

import trio

from ..config import ServiceInstance
from ._config import GossipConfig
from ._keyring import Keyring
from ._messages import ConfigEntry
from ._swim import Member, Notify, Schedule, Send, Stream, SwimNode

logger = logging.getLogger("trimesh.discovery")

DEFAULT_PORT = 7946  # memberlist / Serf default gossip port
TCP_TIMEOUT = 10.0  # memberlist LAN TCPTimeout
EVENT_BUFFER = 1024  # events a subscriber may lag behind before losing some
LEAVE_TIMEOUT = 2.0  # how long leave() waits for our Dead to go out
_FRAME_HEADER = 4


def parse_addr(addr: str) -> tuple[str, int]:
    """``"127.0.0.2:7946"`` → ``("127.0.0.2", 7946)``, with a clear error."""
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"gossip address must be host:port, got {addr!r}")
    return host, int(port)


async def _read_exactly(stream: trio.abc.ReceiveStream, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = await stream.receive_some(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


async def _read_frame(stream: trio.abc.ReceiveStream, limit: int) -> bytes | None:
    head = await _read_exactly(stream, _FRAME_HEADER)
    if head is None:
        return None
    size = int.from_bytes(head, "big")
    if size > limit:
        return None
    return await _read_exactly(stream, size)


def _frame(data: bytes) -> bytes:
    return len(data).to_bytes(_FRAME_HEADER, "big") + data


class SocketTransport:
    """Real UDP + TCP on one ``host:port`` (TCP frames: 4-byte length + sealed frame)."""

    def __init__(self, udp: trio.socket.SocketType, listeners: list, host: str, port: int,
                 max_frame: int) -> None:
        self._udp = udp
        self._listeners = listeners
        self.addr = f"{host}:{port}"
        self.port = port
        self.max_frame = max_frame

    @classmethod
    async def open(cls, host: str, port: int, *, max_frame: int) -> SocketTransport:
        """Bind UDP and TCP on the same port; with ``port=0`` retry until a free pair is found."""
        attempts = 20 if port == 0 else 1
        for attempt in range(attempts):
            udp = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
            try:
                await udp.bind((host, port))
                bound = udp.getsockname()[1]
                listeners = await trio.open_tcp_listeners(bound, host=host)
            except OSError:
                udp.close()
                if attempt == attempts - 1:
                    raise
                continue
            return cls(udp, listeners, host, bound, max_frame)
        raise AssertionError("unreachable")

    async def send(self, addr: str, data: bytes) -> None:
        await self._udp.sendto(data, parse_addr(addr))

    async def receive(self) -> bytes:
        while True:
            try:
                data, _ = await self._udp.recvfrom(65536)
                return data
            except (ConnectionRefusedError, ConnectionResetError):
                # an ICMP error about an earlier send, reported on this socket: not a datagram
                await trio.lowlevel.checkpoint()

    async def serve_streams(self, handler, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async def serve_one(stream: trio.SocketStream) -> None:
            async with stream:
                with trio.move_on_after(TCP_TIMEOUT):  # a peer that stalls mid-frame is dropped
                    frame = await _read_frame(stream, self.max_frame)
                    if frame is not None:
                        reply = await handler(frame)
                        if reply is not None:
                            await stream.send_all(_frame(reply))
        await trio.serve_listeners(serve_one, self._listeners, task_status=task_status)

    async def request(self, addr: str, data: bytes) -> bytes | None:
        host, port = parse_addr(addr)
        stream = await trio.open_tcp_stream(host, port)
        async with stream:
            await stream.send_all(_frame(data))
            return await _read_frame(stream, self.max_frame)

    def close(self) -> None:
        self._udp.close()
        for listener in self._listeners:
            listener.socket.close()


class GossipAgent:
    """A running gossip member. Create with :func:`serve_discovery` (``nursery.start``).

    ``transport`` replaces the real sockets (``trimesh.testing.TrioSimNet`` endpoints run
    agents over a simulated network under ``MockClock``); ``rng`` (default ``SystemRandom``,
    which also draws the AES-GCM nonces) can be seeded in tests."""

    def __init__(self, name: str, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 seeds: Iterable[str] = (), key: bytes | Keyring | None = None,
                 meta: Iterable[ServiceInstance] = (), config: GossipConfig | None = None,
                 tcp_timeout: float = TCP_TIMEOUT, event_buffer: int = EVENT_BUFFER,
                 transport=None, rng: random.Random | None = None) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.seeds = list(seeds)
        self.keyring = key if isinstance(key, Keyring) or key is None else Keyring(key)
        self.meta = tuple(meta)
        self.config = config or GossipConfig()
        self.tcp_timeout = tcp_timeout
        self.event_buffer = event_buffer
        self.transport = transport
        self.rng = rng if rng is not None else random.SystemRandom()
        self.node: SwimNode | None = None
        self._nursery: trio.Nursery | None = None
        self._timers: list[tuple[float, int, tuple]] = []
        self._timer_seq = 0
        self._wake = trio.Event()
        self._subscribers: list[trio.MemorySendChannel] = []
        self.shell_counters = dict.fromkeys(
            ("send_errors", "stream_errors", "events_dropped", "streams_served"), 0)

    @property
    def addr(self) -> str:
        return self.transport.addr if self.transport is not None else f"{self.host}:{self.port}"

    # -- running -------------------------------------------------------------------------------
    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        if self.transport is None:
            self.transport = await SocketTransport.open(self.host, self.port,
                                                        max_frame=self.config.max_stream_size)
            self.port = self.transport.port
        try:
            now = trio.current_time()
            self.node = SwimNode(self.name, self.addr, rng=self.rng,
                                 config=self.config, keyring=self.keyring, meta=self.meta,
                                 wall_offset=time.time() - now)
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._receive_loop)
                nursery.start_soon(self._timer_loop)
                await nursery.start(self.transport.serve_streams, self._serve_stream)
                await self._apply(self.node.start(now))
                await self._apply(self.node.join(now, self.seeds))
                logger.info("gossip member %s listening on %s (udp+tcp), %s, seeds %s", self.name,
                            self.addr, "encrypted" if self.keyring else "PLAINTEXT",
                            ", ".join(self.seeds) or "none")
                task_status.started(self)
                # runs until cancelled
        finally:
            self.transport.close()
            for send in self._subscribers:
                send.close()

    async def _receive_loop(self) -> None:
        transport, node = self.transport, self.node
        while True:
            data = await transport.receive()
            await self._apply(node.receive_datagram(trio.current_time(), data))

    async def _timer_loop(self) -> None:
        node, timers = self.node, self._timers
        while True:
            deadline = timers[0][0] if timers else math.inf
            with trio.move_on_at(deadline):
                await self._wake.wait()
            self._wake = trio.Event()
            now = trio.current_time()
            while timers and timers[0][0] <= now:
                _, _, timer = heapq.heappop(timers)
                await self._apply(node.handle_timer(now, timer))

    async def _serve_stream(self, frame: bytes) -> bytes | None:
        reply, fx = self.node.receive_stream(trio.current_time(), frame)
        self.shell_counters["streams_served"] += 1
        await self._apply(fx)
        return reply

    async def _push_pull(self, addr: str, data: bytes) -> None:
        try:
            with trio.fail_after(self.tcp_timeout):
                reply = await self.transport.request(addr, data)
        except (OSError, trio.TooSlowError, trio.BrokenResourceError, ValueError):
            self.shell_counters["stream_errors"] += 1
            return
        if reply is not None:
            await self._apply(self.node.receive_stream_reply(trio.current_time(), reply))

    async def _apply(self, effects: list) -> None:
        for fx in effects:
            t = type(fx)
            if t is Send:
                try:
                    await self.transport.send(fx.addr, fx.data)
                except (OSError, ValueError):
                    self.shell_counters["send_errors"] += 1
            elif t is Schedule:
                self._timer_seq += 1
                earliest = self._timers[0][0] if self._timers else math.inf
                heapq.heappush(self._timers, (fx.at, self._timer_seq, fx.timer))
                if fx.at < earliest:
                    self._wake.set()
            elif t is Stream:
                self._nursery.start_soon(self._push_pull, fx.addr, fx.data)
            elif t is Notify:
                for send in self._subscribers:
                    try:
                        send.send_nowait(fx.event)
                    except trio.WouldBlock:
                        self.shell_counters["events_dropped"] += 1
                    except trio.ClosedResourceError:
                        pass

    # -- the handle other tasks use --------------------------------------------------------------
    def subscribe(self) -> trio.MemoryReceiveChannel:
        """A channel of ``MemberEvent`` / ``ConfigEvent`` from now on (closed when we stop)."""
        send, receive = trio.open_memory_channel(self.event_buffer)
        self._subscribers.append(send)
        return receive

    async def join(self, seeds: Iterable[str]) -> None:
        """Push/pull with more seed addresses (e.g. members remembered from a previous run)."""
        await self._apply(self.node.join(trio.current_time(), list(seeds)))

    async def update_meta(self, instances: Iterable[ServiceInstance]) -> None:
        await self._apply(self.node.update_meta(trio.current_time(), instances))

    async def put_config(self, kind: str, namespace: str, name: str, revision: int,
                         obj: dict | None) -> None:
        await self._apply(self.node.put_config(trio.current_time(), kind, namespace, name,
                                               revision, obj))

    async def put_object(self, obj, *, direct: bool = False) -> None:
        """Publish a typed ``ConfigObject`` at its revision (``direct``: also send it straight to
        every live member, :meth:`SwimNode.push_direct`)."""
        now = trio.current_time()
        await self._apply(self.node.put_object(now, obj))
        if direct:
            await self._apply(self.node.push_direct(now, obj.kind, obj.namespace, obj.name))

    async def delete_object(self, kind: str, namespace: str, name: str, revision: int, *,
                            direct: bool = False) -> None:
        now = trio.current_time()
        await self._apply(self.node.delete_object(now, kind, namespace, name, revision))
        if direct:
            await self._apply(self.node.push_direct(now, kind, namespace, name))

    async def push_direct(self, kind: str, namespace: str, name: str) -> None:
        """Send the entry held for the key straight to every live member (first-hop accelerator)."""
        await self._apply(self.node.push_direct(trio.current_time(), kind, namespace, name))

    async def leave(self, timeout: float = LEAVE_TIMEOUT) -> bool:
        """Gossip our leave and wait (bounded) until it went out; the caller then cancels us."""
        await self._apply(self.node.leave(trio.current_time()))
        with trio.move_on_after(timeout):
            while not self.node.leave_sent():
                await trio.sleep(self.config.gossip_interval / 2)
            return True
        return False

    def members(self) -> list[Member]:
        return self.node.members()

    def registry(self) -> list[ServiceInstance]:
        return self.node.registry()

    def config_entries(self) -> list[ConfigEntry]:
        return self.node.config_entries()

    def config_objects(self) -> list:
        """Live config as typed ``ConfigObject`` values (see ``SwimNode.config_objects``)."""
        return self.node.config_objects()

    def static_instances(self) -> list[ServiceInstance]:
        return self.node.static_instances()

    def view(self) -> tuple[list[ServiceInstance], list]:
        """(registry incl. static instances, config objects) from one read (``SwimNode.view``)."""
        return self.node.view()

    def statistics(self) -> dict:
        stats = dict(self.node.statistics()) if self.node else {}
        stats.update(self.shell_counters)
        stats["subscribers"] = len(self._subscribers)
        return stats

    def __repr__(self) -> str:
        return f"<GossipAgent {self.name} at {self.addr} {self.node!r}>"


async def serve_discovery(name: str, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                          seeds: Iterable[str] = (), key: bytes | Keyring | None = None,
                          meta: Iterable[ServiceInstance] = (), config: GossipConfig | None = None,
                          transport=None, rng: random.Random | None = None,
                          task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Run a gossip member on ``host:port`` (UDP and TCP; ``port=0`` picks one) until
    cancelled. ``nursery.start(serve_discovery, ...)`` returns the :class:`GossipAgent` once it
    listens and has contacted its seeds."""
    agent = GossipAgent(name, host=host, port=port, seeds=seeds, key=key, meta=meta, config=config,
                        transport=transport, rng=rng)
    await agent.serve(task_status=task_status)
