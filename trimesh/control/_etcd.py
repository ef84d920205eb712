"""The config store kept in an etcd cluster (``trimesh run control --store etcd://...``).

Theory of operation
-------------------

:class:`EtcdStore` has the file store's interface (``get``/``list``/``revision``/``wait_revision``
and the three async writes), so the config API and the gossip publisher run on either unchanged.
The decisions and the wire format are pure (:mod:`._etcd_wire`: key layout, revisions, the write
transactions); this module is the I/O.

- **Reads** come from an in-memory :class:`~._etcd_wire.Mirror` of the key prefix, never from a
  round trip: it is loaded with one ``/v3/kv/range`` at start and kept current by one
  ``/v3/watch`` stream from the revision after it. Changes made through *other* controls arrive
  on the same stream, so the long-poll listing (``GET /v1/objects?after=N``) and the publisher wake
  for them as for local writes.
- **Writes** are one ``/v3/kv/txn`` each (compare-and-swap, see :mod:`._etcd_wire`). etcd answers
  only once the transaction is committed by a quorum (raft), so an acknowledged write survives
  the control, and any minority of members. The control then waits (at most
  :data:`VISIBLE_TIMEOUT`) for its own write to come back on the watch before answering, so a
  client reads its write through the same control; if the watch is late, it is restarted.
  Writes need no lock here: etcd orders them, and any number of controls may write at once.
- **Failover**: the endpoints are tried in the order given, starting at the last one that worked.
  A refused connection, a timeout or a 5xx (no leader during an election) moves on to the next;
  a full round of failures is retried after a pause until :data:`CALL_DEADLINE`, then the write
  fails with :class:`StoreIOError` (the API answers 500). A write whose answer was lost is
  retried like any other, and its outcome judged knowing that (``resolve_write(retried=True)``).
  The watch stream reconnects the same way, from the revision after the last one it saw, so no
  event is missed; if etcd has compacted that history away, the mirror is reloaded with a range.

HTTP is the project's own h11 client (:func:`trimesh.service.http_request`) for the unary calls,
one connection per call (a few calls a second; no pool to go stale across member failures), and a
small streaming reader on h11 here for the watch, whose answer never ends.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from pathlib import Path
from typing import Any

import h11
import msgspec
import trio

from ..config import ConfigObject
from ..errors import ProtocolError
from ..service import http_request
from ._etcd_wire import (
    EtcdTarget,
    JsonLines,
    Mirror,
    encode_value,
    etcd_key,
    header_revision,
    parse_store_url,
    range_kvs,
    range_request,
    resolve_write,
    watch_request,
    watch_result,
    write_txn,
)
from ._state import CREATE, DELETE, REPLACE, Key
from ._store import ConfigStore, StoreIOError

log = logging.getLogger("trimesh.control.etcd")

CONNECT_TIMEOUT = 1.0  # seconds to connect to one member (a loopback/LAN peer answers in ms)
REQUEST_TIMEOUT = 5.0  # seconds one call may take on one member (etcdctl's --command-timeout)
CALL_DEADLINE = 15.0  # seconds a call keeps trying the members (covers a leader election:
#                       etcd's default election timeout is 1 s, a few rounds of it)
ROUND_PAUSE = 0.2  # seconds between rounds over every member
VISIBLE_TIMEOUT = 5.0  # seconds a write waits to see itself on the watch before answering
WATCH_BACKOFF = (0.1, 2.0)  # seconds between watch reconnections: first, then doubling up to
MAX_ANSWER = 256 * 1024 * 1024  # bytes of one range answer (every object of the store)
READ_SIZE = 64 * 1024


class EtcdUnavailableError(StoreIOError):
    """No etcd member answered within the call's deadline."""


class EtcdClient:
    """Unary gateway calls with failover over ``endpoints``, and the watch stream."""

    def __init__(self, endpoints: tuple[tuple[str, int], ...], *,
                 deadline: float = CALL_DEADLINE) -> None:
        if not endpoints:
            raise ValueError("no etcd endpoints")
        self.endpoints = endpoints
        self.deadline = deadline
        self._current = 0
        self.calls = 0
        self.failovers = 0
        self.failures = 0

    def __repr__(self) -> str:
        return f"<EtcdClient current={self.endpoint} calls={self.calls} failovers={self.failovers}>"

    @property
    def endpoint(self) -> str:
        host, port = self.endpoints[self._current]
        return f"{host}:{port}"

    def rotate(self) -> None:
        """Move on to the next member (after a failure on the current one)."""
        self._current = (self._current + 1) % len(self.endpoints)
        self.failovers += 1

    async def call(self, path: str, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """POST ``body`` to ``path`` on a member that answers; (answer, whether an earlier
        attempt may have reached etcd). EtcdUnavailableError after :attr:`deadline`."""
        payload = msgspec.json.encode(body)
        sent = False
        errors: list[str] = []
        self.calls += 1
        with trio.move_on_after(self.deadline):
            while True:
                for _ in range(len(self.endpoints)):
                    endpoint = self.endpoint
                    try:
                        status, data, reached = await self._once(path, payload)
                    except _Attempt as exc:
                        sent = sent or exc.reached
                        errors.append(f"{endpoint}: {exc}")
                        self.rotate()
                        continue
                    if status == 200:
                        return msgspec.json.decode(data), sent
                    message = _error_text(data)
                    if status >= 500:  # unavailable, no leader, timed out inside etcd
                        sent = sent or reached
                        errors.append(f"{endpoint}: {status} {message}")
                        self.rotate()
                        continue
                    raise StoreIOError(f"etcd {endpoint} refused {path}: {status} {message}")
                await trio.sleep(ROUND_PAUSE)
        self.failures += 1
        tried = "; ".join(errors[-len(self.endpoints):]) or "no answer"
        raise EtcdUnavailableError(f"etcd unavailable ({path}, {self.deadline:g} s): {tried}")

    async def _once(self, path: str, payload: bytes) -> tuple[int, bytes, bool]:
        host, port = self.endpoints[self._current]
        reached = False
        try:
            with trio.fail_after(CONNECT_TIMEOUT):
                stream = await trio.open_tcp_stream(host, port)
            async with stream:
                reached = True  # from here, the request may have been executed
                with trio.fail_after(REQUEST_TIMEOUT):
                    answer = await http_request(stream, "POST", path, host=f"{host}:{port}",
                                                headers=[("content-type", "application/json")],
                                                body=payload, max_body=MAX_ANSWER)
        except trio.TooSlowError:
            raise _Attempt("timed out", reached) from None
        except (OSError, trio.BrokenResourceError, ProtocolError) as exc:
            raise _Attempt(str(exc) or type(exc).__name__, reached) from None
        return answer.status, answer.body, reached

    async def watch(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """The messages of one watch stream on the current member, until it breaks (OSError,
        ProtocolError or trio's stream errors; the caller rotates and reconnects)."""
        host, port = self.endpoints[self._current]
        with trio.fail_after(CONNECT_TIMEOUT):
            stream = await trio.open_tcp_stream(host, port)
        async with stream:
            conn = h11.Connection(h11.CLIENT)
            payload = msgspec.json.encode(body)
            await stream.send_all(
                conn.send(h11.Request(method="POST", target="/v3/watch", headers=[
                    ("host", f"{host}:{port}"), ("content-type", "application/json"),
                    ("content-length", str(len(payload)))]))
                + conn.send(h11.Data(data=payload)) + conn.send(h11.EndOfMessage()))
            lines = JsonLines()
            try:
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        conn.receive_data(await stream.receive_some(READ_SIZE))
                    elif isinstance(event, h11.Response):
                        if event.status_code != 200:
                            raise ProtocolError(f"etcd {host}:{port} answered the watch with "
                                                f"{event.status_code}")
                    elif isinstance(event, h11.Data):
                        for message in lines.feed(bytes(event.data)):
                            yield message
                    elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                        raise ProtocolError(f"etcd {host}:{port} ended the watch")
            except h11.ProtocolError as exc:
                raise ProtocolError(f"bad HTTP answer from etcd {host}:{port}: {exc}") from None
            except msgspec.DecodeError as exc:
                raise ProtocolError(f"bad watch message from etcd {host}:{port}: {exc}") from None

    def statistics(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "calls": self.calls, "failovers": self.failovers,
                "failures": self.failures}


class _Attempt(Exception):
    """One member did not answer (internal): ``reached`` if the request may have been sent."""

    def __init__(self, message: str, reached: bool) -> None:
        super().__init__(message)
        self.reached = reached


def _error_text(data: bytes) -> str:
    try:
        doc = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return data[:200].decode("utf-8", "replace")
    return str(doc.get("message") or doc.get("error") or doc) if isinstance(doc, dict) else str(doc)


class EtcdStore:
    """The config store in etcd (see the module doc). Make one with :func:`open_etcd_store`."""

    shared = True  # other controls publish the same objects into gossip (see ._publish)

    def __init__(self, target: EtcdTarget, *, state_dir: str | os.PathLike[str] | None = None,
                 client: EtcdClient | None = None) -> None:
        self.target = target
        self.client = client if client is not None else EtcdClient(target.endpoints)
        self._mirror = Mirror(target.prefix)
        self._state_dir = str(state_dir) if state_dir is not None else None
        self._changed = trio.Event()
        self._restart_watch = trio.Event()
        self._watching = False
        self._reconnects = 0
        self._late_writes = 0
        self._writes = {CREATE: 0, REPLACE: 0, DELETE: 0}
        self._refused = 0

    def __repr__(self) -> str:
        return (f"<EtcdStore {self.target} revision={self.revision} "
                f"objects={len(self._mirror)}>")

    # -- reads (the mirror) --------------------------------------------------------------------

    @property
    def revision(self) -> int:
        return self._mirror.revision

    @property
    def state_dir(self) -> str | None:
        """The control's local state directory (mesh key, remembered gossip members)."""
        return self._state_dir

    def get(self, key: Key) -> ConfigObject | None:
        return self._mirror.get(key)

    def list(self, *, kind: str | None = None, namespace: str | None = None) -> list[ConfigObject]:
        return self._mirror.objects(kind=kind, namespace=namespace)

    async def wait_revision(self, after: int, *, timeout: float = math.inf) -> int:
        with trio.move_on_after(timeout):
            while self._mirror.revision <= after:
                await self._changed.wait()
        return self._mirror.revision

    # -- writes --------------------------------------------------------------------------------

    async def create(self, obj: ConfigObject) -> ConfigObject:
        """Store a new object; ConflictError if it exists (in etcd, whoever wrote it)."""
        return await self._put(CREATE, obj, 0)

    async def replace(self, obj: ConfigObject) -> ConfigObject:
        """Replace an object; NotFoundError if it does not exist, ConflictError if the client gave
        a revision (``metadata.resourceVersion``) and the object has changed since."""
        return await self._put(REPLACE, obj, obj.revision)

    async def delete(self, key: Key) -> int:
        """Delete an object; NotFoundError if it does not exist. Returns the delete's revision."""
        doc, retried = await self.client.call(
            "/v3/kv/txn", _txn(self.target.prefix, DELETE, key))
        revision = self._resolve(DELETE, key, doc, retried=retried)
        await self._visible(revision)
        return revision

    async def _put(self, op: str, obj: ConfigObject, expected: int) -> ConfigObject:
        value = encode_value(obj)
        doc, retried = await self.client.call(
            "/v3/kv/txn", _txn(self.target.prefix, op, obj.key, value, expected))
        revision = self._resolve(op, obj.key, doc, value=value, expected_revision=expected,
                                 retried=retried)
        await self._visible(revision)
        return msgspec.structs.replace(obj, revision=revision)

    def _resolve(self, op: str, key: Key, doc: dict[str, Any], **how: Any) -> int:
        try:
            revision = resolve_write(op, key, doc, **how)
        except Exception:
            self._refused += 1
            raise
        self._writes[op] += 1
        return revision

    async def _visible(self, revision: int) -> None:
        """Wait until the mirror shows ``revision`` (read-your-writes through this control)."""
        for _ in range(2):
            if await self.wait_revision(revision - 1, timeout=VISIBLE_TIMEOUT) >= revision:
                return
            self._restart_watch.set()  # the stream may be stuck on a partitioned member
        self._late_writes += 1
        log.warning("control: write at revision %d not yet seen on the etcd watch", revision)

    # -- following etcd ------------------------------------------------------------------------

    async def load(self) -> None:
        """Reload the mirror with one range read."""
        doc, _ = await self.client.call("/v3/kv/range", range_request(self.target.prefix))
        for problem in self._mirror.reset(range_kvs(doc), header_revision(doc)):
            log.warning("control: skipping a stored object: %s", problem)
        self._notify()

    async def follow(self, *,
                     task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep the mirror current until cancelled (reconnecting on every failure); reports
        started once the first stream is established."""
        backoff = WATCH_BACKOFF[0]

        def established() -> None:
            nonlocal task_status
            task_status.started()
            task_status = trio.TASK_STATUS_IGNORED

        while True:
            endpoint = self.client.endpoint
            self._restart_watch = trio.Event()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_cancel_when, nursery.cancel_scope, self._restart_watch)
                try:
                    if await self._follow_stream(established):
                        backoff = WATCH_BACKOFF[0]
                except (OSError, trio.BrokenResourceError, trio.TooSlowError, ProtocolError,
                        ValueError) as exc:
                    log.info("control: etcd watch on %s broke (%s); reconnecting", endpoint,
                             exc or type(exc).__name__)
                    self.client.rotate()
                nursery.cancel_scope.cancel()
            self._watching = False
            self._reconnects += 1
            if self._restart_watch.is_set():  # a late write asked for a fresh stream
                self.client.rotate()
                continue
            await trio.sleep(backoff)
            backoff = min(backoff * 2, WATCH_BACKOFF[1])

    async def _follow_stream(self, established: Callable[[], None]) -> bool:
        """Apply one watch stream's events until it breaks (raises) or etcd compacted the
        history it needs (reloads, returns). True once the stream was established."""
        messages = self.client.watch(watch_request(self.target.prefix, self._mirror.revision + 1))
        async with aclosing(messages):
            async for message in messages:
                result = watch_result(message)
                if result.get("created"):
                    self._watching = True
                    established()
                if int(result.get("compact_revision", 0)) or result.get("canceled"):
                    log.warning("control: etcd compacted the watched history; reloading the store")
                    await self.load()
                    return True
                if result.get("events"):
                    for problem in self._mirror.apply_events(result["events"]):
                        log.warning("control: skipping a stored object: %s", problem)
                    self._notify()
        return self._watching

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def close(self) -> None:
        pass

    def statistics(self) -> dict[str, Any]:
        return {**self._mirror.statistics(), "store": str(self.target),
                "created": self._writes[CREATE], "replaced": self._writes[REPLACE],
                "deleted": self._writes[DELETE], "refused": self._refused,
                "watching": self._watching, "watch_reconnects": self._reconnects,
                "late_writes": self._late_writes, "client": self.client.statistics()}


async def _cancel_when(scope: trio.CancelScope, event: trio.Event) -> None:
    await event.wait()
    scope.cancel()


def _txn(prefix: str, op: str, key: Key, value: bytes | None = None,
         expected: int = 0) -> dict[str, Any]:
    return write_txn(op, etcd_key(prefix, key), value, expected)


@asynccontextmanager
async def open_etcd_store(target: EtcdTarget, *, state_dir: str | os.PathLike[str] | None = None
                          ) -> AsyncIterator[EtcdStore]:
    """Load the store from etcd and follow it while the block runs. EtcdUnavailableError if no
    member answers."""
    store = EtcdStore(target, state_dir=state_dir)
    await store.load()
    async with trio.open_nursery() as nursery:
        await nursery.start(store.follow)
        try:
            yield store
        finally:
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def open_config_store(store_url: str | None, state_dir: Path
                            ) -> AsyncIterator[ConfigStore | EtcdStore]:
    """The store ``--store`` names: the file store under ``state_dir`` when ``None``, else the
    etcd cluster of the ``etcd://`` URL."""
    if store_url is None:
        store = await trio.to_thread.run_sync(ConfigStore.open, state_dir)
        with store:
            yield store
        return
    async with open_etcd_store(parse_store_url(store_url), state_dir=state_dir) as etcd:
        yield etcd
