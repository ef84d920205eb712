"""Where a sidecar's view of the mesh comes from: local files and the control's config API.

- ``--registry FILE``: a YAML list of instances ``{service, namespace, address, port, labels,
  protocol, serviceAccount}`` (CLI.md); :func:`load_registry_text` validates each entry and names the
  entry and field on error.
- ``--config FILE`` (repeatable): config documents, loaded with ``trimesh.config.load_text``.
- Both are re-read when they change: :class:`FileSource` polls each file's (mtime, size) every
  :data:`FILE_POLL_INTERVAL` seconds (cheap, and works where inotify does not; tests rely on it). A
  file that fails to load keeps the last good contents and the error is logged once.
- ``--control URL``: :class:`ControlSource` long-polls ``GET /v1/objects?after=N&timeout=30``
  (/work/briefs/control-api.md). The answer is the whole object list; on any failure it keeps the
  last list, logs once, and retries every :data:`CONTROL_RETRY_INTERVAL` seconds, so a sidecar keeps
  serving its last snapshot while the control is down.

Both sources call ``on_change()`` after updating their data; the sidecar rebuilds its snapshot.

With gossip on (:mod:`._gossip`), the gossip source takes the control's listing over and merges the
two views of the control's store with :func:`merge_control_and_gossip` (per key, the newer revision
wins, tombstones included); ``--registry`` / ``--config`` files override both for the same
endpoint or key (:func:`merge_instances`, the ``exclude`` argument). docs/gossip.md §7.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.parse
from typing import Any, Callable

import msgspec
import trio
import yaml

from ..config import (AUTH_ANNOTATION, PROTOCOLS, ConfigObject, annotation_problem, ServiceInstance, load_text, make_instance,
                      object_from_dict)
from ..errors import ConfigError, ProtocolError
from ..service import http_request

FILE_POLL_INTERVAL = 1.0  # seconds between mtime checks of --registry/--config files
LONG_POLL_TIMEOUT = 30  # seconds the control may hold a long poll (control-api.md's example)
CONTROL_RETRY_INTERVAL = 1.0  # seconds between attempts while the control is unreachable
CONTROL_CONNECT_TIMEOUT = 2.0  # seconds
CONTROL_MAX_RESPONSE = 64 * 1024 * 1024  # bytes
# What a poll of the control can fail with and be retried after (refused, reset, timed out, not
# HTTP, not JSON); anything else is a bug and propagates.
CONTROL_FAILURES = (OSError, trio.TooSlowError, trio.BrokenResourceError, ProtocolError, ValueError)

log = logging.getLogger("trimesh.sidecar")

_REGISTRY_FIELDS = {"service", "namespace", "address", "port", "labels", "protocol",
                    "serviceAccount", "service_account", "version", "annotations"}


def load_registry_text(text: str, *, source: str = "<registry>") -> list[ServiceInstance]:
    """Instances from a registry file's YAML text; ConfigError names the entry and field."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(f"invalid YAML: {getattr(exc, 'problem', exc)}", source=source,
                          line=mark.line + 1 if mark else None) from None
    if data is None:
        return []
    if not isinstance(data, list):
        raise ConfigError("a registry file is a YAML list of instances", source=source, path="$")
    out = []
    for i, entry in enumerate(data):
        where = f"$[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError("an instance is a mapping", source=source, path=where)
        unknown = set(entry) - _REGISTRY_FIELDS
        if unknown:
            raise ConfigError(f"unknown field {sorted(unknown)[0]!r}", source=source,
                              path=f"{where}.{sorted(unknown)[0]}")
        for req in ("service", "address", "port"):
            if req not in entry:
                raise ConfigError(f"missing {req!r}", source=source, path=f"{where}.{req}")
        port = entry["port"]
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise ConfigError(f"port must be 1..65535, got {port!r}", source=source,
                              path=f"{where}.port")
        labels = entry.get("labels") or {}
        if not isinstance(labels, dict):
            raise ConfigError("labels must be a mapping", source=source, path=f"{where}.labels")
        labels = {str(k): str(v) for k, v in labels.items()}
        if entry.get("version") is not None:
            labels.setdefault("version", str(entry["version"]))
        annotations = entry.get("annotations") or {}
        bad = annotation_problem(annotations)
        if bad is not None:
            key, message = bad
            raise ConfigError(message, source=source,
                              path=f"{where}.annotations" + (f"[{key!r}]" if key else ""))
        protocol = str(entry.get("protocol") or "http").lower()
        if protocol not in PROTOCOLS:
            raise ConfigError(f"protocol must be one of {', '.join(PROTOCOLS)}", source=source,
                              path=f"{where}.protocol")
        out.append(make_instance(
            str(entry["service"]), str(entry["address"]), port, labels=labels,
            namespace=str(entry.get("namespace") or "default"), protocol=protocol,
            service_account=str(entry.get("serviceAccount") or entry.get("service_account")
                                or "default"),
            annotations={k: v.upper() if k.startswith(AUTH_ANNOTATION) else v
                         for k, v in annotations.items()}))
    return out


class FileSource:
    """The ``--registry`` file and ``--config`` files, re-read when they change."""

    def __init__(self, registry: str | None, configs: list[str], on_change: Callable[[], None],
                 *, poll_interval: float = FILE_POLL_INTERVAL) -> None:
        self.registry = registry
        self.configs = list(configs)
        self.on_change = on_change
        self.poll_interval = poll_interval
        self.instances: list[ServiceInstance] = []
        self.objects: list[ConfigObject] = []
        self._per_file_objects: dict[str, list[ConfigObject]] = {}
        self._stamps: dict[str, tuple[int, int] | None] = {}
        self.reloads = 0
        self.errors = 0
        self.last_error: str | None = None

    def _stamp(self, path: str) -> tuple[int, int] | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _read(self, path: str) -> str:
        try:
            with open(path, encoding="utf-8") as f:
                return f.read()
        except OSError as exc:
            raise ConfigError(f"cannot read: {exc.strerror}", source=path) from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"not UTF-8 text (byte {exc.start})", source=path) from None

    def load_initial(self) -> None:
        """Load every file; raise ConfigError (a user error at startup)."""
        if self.registry:
            self._stamps[self.registry] = self._stamp(self.registry)
            self.instances = load_registry_text(self._read(self.registry), source=self.registry)
        for path in self.configs:
            self._stamps[path] = self._stamp(path)
            self._per_file_objects[path] = load_text(self._read(path), source=path)
        self._merge()

    def _merge(self) -> None:
        objs: list[ConfigObject] = []
        for path in self.configs:
            objs.extend(self._per_file_objects.get(path, ()))
        self.objects = objs

    def poll(self) -> bool:
        """Re-read changed files; True when something changed (bad files keep the last good)."""
        changed = False
        for path in ([self.registry] if self.registry else []) + self.configs:
            stamp = self._stamp(path)
            if stamp == self._stamps.get(path):
                continue
            self._stamps[path] = stamp
            try:
                if path == self.registry:
                    self.instances = load_registry_text(self._read(path), source=path)
                else:
                    self._per_file_objects[path] = load_text(self._read(path), source=path)
            except ConfigError as exc:
                self.errors += 1
                self.last_error = str(exc)
                log.error("sidecar: keeping the previous contents of %s: %s", path, exc)
                continue
            changed = True
        if changed:
            self._merge()
            self.reloads += 1
        return changed

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await trio.sleep(self.poll_interval)
            if self.poll():
                self.on_change()

    def statistics(self) -> dict[str, Any]:
        return {"registry": self.registry, "configs": self.configs, "reloads": self.reloads,
                "errors": self.errors, "last_error": self.last_error,
                "instances": len(self.instances), "objects": len(self.objects)}

    def __repr__(self) -> str:
        return f"<FileSource registry={self.registry} configs={self.configs} reloads={self.reloads}>"


async def http_get_json(url: str, *, timeout: float) -> tuple[int, Any]:
    """GET ``url`` (http only) on a fresh connection; returns (status, parsed JSON body)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ProtocolError(f"unsupported control URL {url!r} (expected http://HOST:PORT)")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    with trio.fail_after(timeout):
        stream = await trio.open_tcp_stream(parts.hostname, parts.port or 80)
        async with stream:
            answer = await http_request(stream, "GET", target, host=parts.netloc,
                                        max_body=CONTROL_MAX_RESPONSE,
                                        headers=[("accept", "application/json"),
                                                 ("connection", "close")])
    try:
        return answer.status, json.loads(answer.body) if answer.body else None
    except ValueError as exc:
        raise ProtocolError(f"control sent invalid JSON: {exc}") from None


def objects_from_control(docs: list[Any]) -> tuple[list[ConfigObject], list[str]]:
    """Typed objects (revision from ``metadata.resourceVersion``) and errors for bad ones."""
    out = []
    errors = []
    for doc in docs:
        try:
            obj = object_from_dict(doc)
        except ConfigError as exc:
            errors.append(str(exc))
            continue
        rv = (doc.get("metadata") or {}).get("resourceVersion")
        if rv is not None and str(rv).isdigit():
            obj = msgspec.structs.replace(obj, revision=int(rv))
        out.append(obj)
    return out, errors


class ControlSource:
    """Long-polls the control's config API and keeps the last object list it received."""

    def __init__(self, url: str, on_change: Callable[[], None], *,
                 long_poll_timeout: float = LONG_POLL_TIMEOUT,
                 retry_interval: float = CONTROL_RETRY_INTERVAL) -> None:
        self.url = url.rstrip("/")
        self.on_change = on_change
        self.long_poll_timeout = long_poll_timeout
        self.retry_interval = retry_interval
        self.revision = -1
        self.objects: list[ConfigObject] = []
        self.connected = False
        self.polls = 0
        self.updates = 0
        self.failures = 0
        self.last_error: str | None = None

    async def _poll_once(self) -> None:
        if self.revision < 0:
            url = f"{self.url}/v1/objects"
            timeout = CONTROL_CONNECT_TIMEOUT + 5
        else:
            url = f"{self.url}/v1/objects?after={self.revision}&timeout={int(self.long_poll_timeout)}"
            timeout = self.long_poll_timeout + 10
        self.polls += 1
        status, body = await http_get_json(url, timeout=timeout)
        if status != 200 or not isinstance(body, dict):
            raise ProtocolError(f"control answered {status}")
        revision = int(body.get("revision", 0))
        if revision != self.revision:
            objs, errors = objects_from_control(body.get("objects") or [])
            for err in errors:
                log.error("sidecar: ignoring an invalid object from the control: %s", err)
            self.revision = revision
            self.objects = objs
            self.updates += 1
            self.on_change()

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED,
                    initial_wait: float = CONTROL_CONNECT_TIMEOUT) -> None:
        """Poll forever; report started after the first answer or ``initial_wait`` seconds."""
        started = False
        with trio.move_on_after(initial_wait):
            try:
                await self._poll_once()
                self.connected = True
            except CONTROL_FAILURES as exc:
                self._failed(exc)
        task_status.started()
        started = True
        while started:
            try:
                await self._poll_once()
                if not self.connected:
                    log.info("sidecar: control %s reachable again (revision %d)", self.url,
                             self.revision)
                self.connected = True
            except CONTROL_FAILURES as exc:
                self._failed(exc)
                await trio.sleep(self.retry_interval)

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        if self.connected or self.failures == 1:
            log.warning("sidecar: control %s unreachable (%s); serving the last snapshot",
                        self.url, self.last_error)
        self.connected = False

    def statistics(self) -> dict[str, Any]:
        return {"url": self.url, "connected": self.connected, "revision": self.revision,
                "polls": self.polls, "updates": self.updates, "failures": self.failures,
                "last_error": self.last_error}

    def __repr__(self) -> str:
        return f"<ControlSource {self.url} revision={self.revision} connected={self.connected}>"


# -- combining the control's listing with gossip (docs/gossip.md §7) ----------------------------

def merge_control_and_gossip(control_objects: list[ConfigObject], control_revision: int,
                             gossip_objects: list[ConfigObject],
                             gossip_tombstones: dict[tuple[str, str, str], int],
                             *, exclude: set[tuple[str, str, str]] = frozenset()
                             ) -> list[ConfigObject]:
    """One config view from two views of the same store (the control's). PURE.

    Both carry the control's revisions, so per key the newer knowledge wins:

    - an object present in both: the higher revision;
    - an object only gossip has: kept if its revision is above the control listing's revision
      (created after that listing), dropped otherwise (the listing is complete at its revision,
      so the object was deleted by then); with no listing yet (``control_revision < 0``) kept;
    - an object only the listing has: dropped if gossip holds a tombstone for it at a higher
      revision (deleted since), kept otherwise.

    Keys in ``exclude`` (the sidecar's own ``--config`` files, which override both) are left out.
    Output order: sorted by key, so equal inputs give equal snapshots.
    """
    merged: dict[tuple[str, str, str], ConfigObject] = {}
    listed = {o.key: o for o in control_objects}
    for key, obj in listed.items():
        if gossip_tombstones.get(key, -1) > obj.revision:
            continue
        merged[key] = obj
    for obj in gossip_objects:
        key = obj.key
        held = merged.get(key)
        if held is not None:
            if obj.revision > held.revision:
                merged[key] = obj
        elif key not in listed and (control_revision < 0 or obj.revision > control_revision):
            merged[key] = obj
    for key in exclude:
        merged.pop(key, None)
    return [merged[k] for k in sorted(merged)]


def endpoint_key(instance: ServiceInstance) -> tuple[str, str, int]:
    return (instance.fqdn, instance.address, instance.port)


def merge_instances(static: list[ServiceInstance], gossip: list[ServiceInstance]
                    ) -> list[ServiceInstance]:
    """Gossip's instances minus those whose endpoint (service FQDN, address, port) a
    ``--registry`` file already lists: the file overrides gossip for the same endpoint, and no
    endpoint is counted twice. PURE."""
    taken = {endpoint_key(i) for i in static}
    out = []
    for inst in gossip:
        key = endpoint_key(inst)
        if key not in taken:
            taken.add(key)
            out.append(inst)
    return out
