"""The etcd store's wire and bookkeeping, as plain code. PURE: no I/O, no clock, no trio.

The Trio shell (:mod:`._etcd`) talks to etcd's v3 JSON gateway (grpc-gateway in front of the KV,
Watch and Lease services: ``POST /v3/kv/range``, ``/v3/kv/txn``, ``/v3/watch``). Everything that
can be decided without a socket lives here: parsing ``--store etcd://...``, where an object lives in
etcd's key space, the transaction bodies of the three writes, reading etcd's answers, and the
control's in-memory mirror of the prefix.

Key layout. One etcd key per object, ``PREFIX KIND/NAMESPACE/NAME`` (default prefix
``/trimesh/config/``; kind canonical, e.g. ``/trimesh/config/RouteRule/default/reviews-default``),
each part percent-encoded (``/`` and ``%`` cannot appear raw), so the mapping is injective and the
whole store is the range ``[PREFIX, PREFIX+1)``. The value is the object in the docs' shape, as
JSON, without ``resourceVersion``: the revision is etcd's, not the value's.

Revisions. etcd keeps one revision counter for its whole key space; every committed transaction
that changes something moves it. An object's revision is its key's ``mod_revision`` (the
revision of the transaction that last wrote it), and the store's revision is the highest revision
the control has seen on the prefix (the header revision of its first range, then every watch
event's ``mod_revision``). Both only increase, like the file store's counter, but they are not
dense: writes by other controls, and to keys outside the prefix, use revisions too. Clients should
treat a revision as an opaque, increasing number (``after=N`` long polls work unchanged).

Writes are single transactions (etcd's compare-and-swap):

- create: ``create_revision(key) == 0`` (absent) → put; else ConflictError;
- replace: ``version(key) > 0`` (present) → put, or, when the client sent a ``resourceVersion``,
  ``mod_revision(key) == that`` → put (optimistic concurrency, as Kubernetes' update); else
  NotFoundError / ConflictError;
- delete: ``version(key) > 0`` → delete-range of the key; else NotFoundError.

Every failure branch reads the key back (``request_range``), so one round trip both refuses the
write and says why. A write retried on another member after its answer was lost (the first member
died mid-request) may find its own earlier attempt committed; :func:`resolve_write` recognises that
(the stored value is exactly the one sent) and reports success instead of a false conflict.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

import msgspec

from ..config import ConfigObject, object_from_dict
from ..errors import ConfigError, ConflictError, NotFoundError
from ._state import CREATE, DELETE, REPLACE, Key, key_ref

SCHEME = "etcd://"
DEFAULT_PREFIX = "/trimesh/config/"
DEFAULT_ETCD_PORT = 2379  # etcd's IANA-registered client port


@dataclass(frozen=True)
class EtcdTarget:
    """What ``--store etcd://HOST:PORT[,HOST:PORT...][/PREFIX]`` names."""

    endpoints: tuple[tuple[str, int], ...]
    prefix: str = DEFAULT_PREFIX

    def __str__(self) -> str:
        hosts = ",".join(f"{h}:{p}" for h, p in self.endpoints)
        suffix = "" if self.prefix == DEFAULT_PREFIX else self.prefix.rstrip("/")
        return f"{SCHEME}{hosts}{suffix}"


def parse_store_url(url: str) -> EtcdTarget:
    """``etcd://127.0.0.1:2379,127.0.0.2:2379`` → the endpoints (in failover order) and the key
    prefix (the URL's path, ``/trimesh/config/`` without one). ConfigError saying what is wrong."""
    if not url.startswith(SCHEME):
        raise ConfigError(f"store {url!r}: expected etcd://HOST:PORT[,HOST:PORT...]")
    rest = url[len(SCHEME):]
    hosts, slash, path = rest.partition("/")
    prefix = f"/{path.strip('/')}/" if slash and path.strip("/") else DEFAULT_PREFIX
    endpoints: list[tuple[str, int]] = []
    for item in hosts.split(","):
        item = item.strip()
        if not item:
            raise ConfigError(f"store {url!r}: empty endpoint")
        if item.startswith("["):  # [IPv6]:port
            host, _, port_text = item[1:].partition("]")
            port_text = port_text.removeprefix(":")
        else:
            host, _, port_text = item.rpartition(":") if ":" in item else (item, "", "")
        try:
            port = int(port_text) if port_text else DEFAULT_ETCD_PORT
        except ValueError:
            raise ConfigError(f"store {url!r}: bad port in {item!r}") from None
        if not host or not 0 < port < 65536:
            raise ConfigError(f"store {url!r}: bad endpoint {item!r}")
        if (host, port) not in endpoints:
            endpoints.append((host, port))
    return EtcdTarget(tuple(endpoints), prefix)


# -- keys and values -------------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


def etcd_key(prefix: str, key: Key) -> bytes:
    return (prefix + "/".join(quote(p, safe="") for p in key)).encode("utf-8")


def key_of(prefix: str, raw: bytes) -> Key | None:
    """The object key an etcd key stands for; ``None`` for a key that is not one of ours."""
    text = raw.decode("utf-8", "replace")
    if not text.startswith(prefix):
        return None
    parts = text[len(prefix):].split("/")
    if len(parts) != 3 or not all(parts):
        return None
    return (unquote(parts[0]), unquote(parts[1]), unquote(parts[2]))


def prefix_range_end(prefix: str) -> bytes:
    """The exclusive end of the range of every key starting with ``prefix`` (etcd's
    ``clientv3.GetPrefixRangeEnd``: the prefix with its last byte incremented)."""
    raw = bytearray(prefix.encode("utf-8"))
    while raw and raw[-1] == 0xFF:
        raw.pop()
    if not raw:
        return b"\0"  # every key
    raw[-1] += 1
    return bytes(raw)


def encode_value(obj: ConfigObject) -> bytes:
    """An object as stored in etcd: its docs' shape without the revision."""
    return msgspec.json.encode(msgspec.structs.replace(obj, revision=0).to_dict())


@dataclass(frozen=True)
class KeyValue:
    """One ``mvccpb.KeyValue`` as the gateway sends it (int64 fields as strings, bytes base64)."""

    key: bytes
    value: bytes
    mod_revision: int
    create_revision: int

    @classmethod
    def from_json(cls, kv: dict[str, Any]) -> KeyValue:
        return cls(unb64(kv.get("key", "")), unb64(kv.get("value", "")),
                   int(kv.get("mod_revision", 0)), int(kv.get("create_revision", 0)))


def decode_object(prefix: str, kv: KeyValue) -> ConfigObject:
    """The stored object with its revision (the key's ``mod_revision``); ConfigError naming the
    etcd key if the value is not a valid object or is filed under another key."""
    source = f"etcd key {kv.key.decode('utf-8', 'replace')}"
    try:
        doc = msgspec.json.decode(kv.value)
    except msgspec.DecodeError as exc:
        raise ConfigError(f"invalid JSON: {exc}", source=source) from None
    try:
        obj = object_from_dict(doc)
    except ConfigError as exc:
        raise ConfigError(exc.message, path=exc.path, source=source) from None
    if key_of(prefix, kv.key) != obj.key:
        raise ConfigError(f"holds {obj.ref}, which belongs under another key", source=source)
    return msgspec.structs.replace(obj, revision=kv.mod_revision)


# -- requests --------------------------------------------------------------------------------------


def range_request(prefix: str) -> dict[str, Any]:
    return {"key": b64(prefix.encode("utf-8")), "range_end": b64(prefix_range_end(prefix))}


def watch_request(prefix: str, start_revision: int) -> dict[str, Any]:
    return {"create_request": {**range_request(prefix), "start_revision": str(start_revision)}}


def _compare(key: bytes, target: str, result: str, value: int) -> dict[str, Any]:
    field = {"CREATE": "create_revision", "MOD": "mod_revision", "VERSION": "version"}[target]
    return {"key": b64(key), "target": target, "result": result, field: str(value)}


def write_txn(op: str, key: bytes, value: bytes | None = None,
              expected_revision: int = 0) -> dict[str, Any]:
    """The ``/v3/kv/txn`` body of one write (see the module doc). ``expected_revision`` (replace
    only, 0 = none) is the ``mod_revision`` the client says it replaces."""
    if op == CREATE:
        compare = _compare(key, "CREATE", "EQUAL", 0)
    elif op == REPLACE and expected_revision:
        compare = _compare(key, "MOD", "EQUAL", expected_revision)
    elif op in (REPLACE, DELETE):
        compare = _compare(key, "VERSION", "GREATER", 0)
    else:
        raise ValueError(f"unknown write {op!r}")
    if op == DELETE:
        success = {"request_delete_range": {"key": b64(key)}}
    else:
        assert value is not None
        success = {"request_put": {"key": b64(key), "value": b64(value)}}
    return {"compare": [compare], "success": [success],
            "failure": [{"request_range": {"key": b64(key)}}]}


# -- answers ---------------------------------------------------------------------------------------


def header_revision(doc: dict[str, Any]) -> int:
    return int((doc.get("header") or {}).get("revision", 0))


def range_kvs(doc: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue.from_json(kv) for kv in doc.get("kvs") or ()]


def resolve_write(op: str, key: Key, doc: dict[str, Any], *, value: bytes | None = None,
                  expected_revision: int = 0, retried: bool = False) -> int:
    """The revision of a committed write, from its ``/v3/kv/txn`` answer, or raise the refusal
    (ConflictError / NotFoundError). ``retried``: an earlier attempt's answer was lost, so a
    refusal may be that attempt's own success (the stored value is ours, or the key is gone)."""
    revision = header_revision(doc)
    if doc.get("succeeded"):  # the gateway omits false
        return revision
    found: KeyValue | None = None
    for response in doc.get("responses") or ():
        kvs = range_kvs(response.get("response_range") or {})
        if kvs:
            found = kvs[0]
    ref = key_ref(key)
    if retried and op != DELETE and found is not None and found.value == value:
        return found.mod_revision
    if retried and op == DELETE and found is None:
        return revision
    if op == CREATE:
        raise ConflictError(f"{ref} already exists")
    if found is None:
        raise NotFoundError(f"{ref} does not exist")
    raise ConflictError(f"{ref} is at revision {found.mod_revision}, not {expected_revision}: "
                        "it was changed since it was read")


class JsonLines:
    """Splits the watch stream (newline-delimited JSON messages, grpc-gateway's framing for a
    server stream) into decoded messages, whatever the chunking."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        return [msgspec.json.decode(line) for line in lines if line.strip()]


def watch_result(message: dict[str, Any]) -> dict[str, Any]:
    """The ``WatchResponse`` inside one stream message; ProtocolError-worthy cases raise
    ValueError (an ``error`` message from the gateway)."""
    if "error" in message and "result" not in message:
        error = message["error"]
        text = error.get("message") if isinstance(error, dict) else error
        raise ValueError(f"etcd watch failed: {text}")
    return message.get("result") or {}


# -- the mirror ------------------------------------------------------------------------------------


class Mirror:
    """The control's copy of the prefix: every object by key and the store's revision. Loaded from
    a range (:meth:`reset`), then kept current by watch events (:meth:`apply_events`)."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = prefix
        self.revision = 0
        self._objects: dict[Key, ConfigObject] = {}
        self.events = 0
        self.resets = 0
        self.bad_values = 0

    def __repr__(self) -> str:
        return f"<Mirror {self.prefix} revision={self.revision} objects={len(self._objects)}>"

    def __len__(self) -> int:
        return len(self._objects)

    def get(self, key: Key) -> ConfigObject | None:
        return self._objects.get(key)

    def objects(self, *, kind: str | None = None,
                namespace: str | None = None) -> list[ConfigObject]:
        return sorted(
            (o for o in self._objects.values()
             if (kind is None or o.kind == kind)
             and (namespace is None or o.namespace == namespace)),
            key=lambda o: o.key)

    def reset(self, kvs: Iterable[KeyValue], revision: int) -> list[str]:
        """Replace the copy with a range read at ``revision``; returns the problems (values that
        are not valid objects are skipped, each named)."""
        objects: dict[Key, ConfigObject] = {}
        problems = []
        for kv in kvs:
            try:
                obj = decode_object(self.prefix, kv)
            except ConfigError as exc:
                self.bad_values += 1
                problems.append(str(exc))
                continue
            objects[obj.key] = obj
        self._objects = objects
        self.revision = max(self.revision, revision)
        self.resets += 1
        return problems

    def apply_events(self, events: Iterable[dict[str, Any]]) -> list[str]:
        """Apply one watch response's events (``PUT`` is the default type, so the gateway omits
        it); returns the problems, as :meth:`reset`."""
        problems = []
        for event in events:
            kv = KeyValue.from_json(event.get("kv") or {})
            self.revision = max(self.revision, kv.mod_revision)
            self.events += 1
            key = key_of(self.prefix, kv.key)
            if key is None:
                continue
            if event.get("type") == "DELETE":
                self._objects.pop(key, None)
                continue
            try:
                self._objects[key] = decode_object(self.prefix, kv)
            except ConfigError as exc:
                self.bad_values += 1
                self._objects.pop(key, None)
                problems.append(str(exc))
        return problems

    def statistics(self) -> dict[str, int]:
        return {"objects": len(self._objects), "revision": self.revision, "events": self.events,
                "resets": self.resets, "bad_values": self.bad_values}
