"""Persisting the config store under ``--state-dir``: one file per object, atomic replace, fsync.

Layout (``STATE_DIR/config/``)::

    LOCK                       flock'ed by the running control: one control per state directory
    REVISION                   the store's revision, written by deletes (see below)
    RouteRule.default.reviews-default.json      one object, in the docs' shape (JSON), with
                                                metadata.resourceVersion = its revision
    .tmp-*                     a write in progress; removed at start-up

Every write follows the classic atomic-replace recipe (the one SQLite, etcd's bbolt and git rely on,
described in "Files are hard", Dan Luu 2015, and the ext4/XFS rename guarantees):

1. write the new content to a fresh temporary file in the same directory, ``fsync`` it;
2. ``rename`` it over the final name (POSIX ``rename`` is atomic: a reader, or a machine restarting
   after ``kill -9`` or a power cut, sees the old file or the new one, never a mix);
3. ``fsync`` the directory, so the rename itself is durable.

The control answers a write only after step 3, so an acknowledged write survives ``kill -9`` at any
moment, and a torn file cannot exist under a final name. A crash between steps leaves at most a
``.tmp-*`` file, which start-up deletes.

The revision counter needs no file of its own for creates and replaces: the object just written
carries the highest revision. Only a delete removes the carrier of a revision, so a delete first
writes ``REVISION`` (same recipe) and then unlinks the object file, before the one directory fsync.
At start-up the store's revision is ``max(REVISION, every object's revision)``, which is at least
every revision ever acknowledged: the highest acknowledged revision was either a create/replace
(that object is still on disk with it, since any later change to it has a higher revision) or a
delete (which wrote ``REVISION``). So revisions keep increasing across restarts.

File names encode the key (letters, digits and ``-`` kept, every other byte as ``_XX``), so every
key maps to a distinct name and none can escape the directory; very long keys use a SHA-256 name.
Loading trusts only the file's content for the key.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
from pathlib import Path
from typing import Any

import msgspec

from ..config import ConfigObject, object_from_dict
from ..errors import ConfigError, TrimeshError
from ._state import Change, Key

SUBDIR = "config"
REVISION_FILE = "REVISION"
LOCK_FILE = "LOCK"
TMP_PREFIX = ".tmp-"
OBJECT_SUFFIX = ".json"
MAX_FILE_NAME = 200  # below NAME_MAX (255 on ext4/XFS/btrfs), leaving room for the tmp prefix

_KEEP = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")


class StateError(TrimeshError):
    """The state directory cannot be used (locked by another control, unreadable, corrupt)."""


def _encode(part: str) -> str:
    return "".join(chr(b) if b in _KEEP else f"_{b:02X}" for b in part.encode("utf-8"))


def object_file_name(key: Key) -> str:
    """The file that holds the object ``key`` (an injective encoding of the key)."""
    name = ".".join(_encode(p) for p in key) + OBJECT_SUFFIX
    if len(name) > MAX_FILE_NAME:
        digest = hashlib.sha256("\0".join(key).encode("utf-8")).hexdigest()
        name = f"{_encode(key[0])[:60]}.sha256-{digest}{OBJECT_SUFFIX}"
    return name


def encode_object(obj: ConfigObject) -> bytes:
    return msgspec.json.format(msgspec.json.encode(obj.to_dict()), indent=2) + b"\n"


def decode_object(data: bytes, *, source: str) -> ConfigObject:
    """An object file back into a ConfigObject with its revision; ConfigError naming the file."""
    try:
        doc: Any = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise ConfigError(f"invalid JSON: {exc}", source=source) from None
    try:
        obj = object_from_dict(doc)
    except ConfigError as exc:
        raise ConfigError(exc.message, path=exc.path, source=source) from None
    raw = (doc.get("metadata") or {}).get("resourceVersion")
    try:
        revision = int(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"bad resourceVersion {raw!r}", path="$.metadata.resourceVersion",
                          source=source) from None
    return msgspec.structs.replace(obj, revision=revision)


class StateDir:
    """The on-disk half of the store. Blocking calls: the Trio shell runs :meth:`commit` in a
    worker thread, one at a time."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser()
        self.directory = self.root / SUBDIR
        self._lock_fd: int | None = None
        self._commits = 0
        self._fsyncs = 0

    def __repr__(self) -> str:
        return f"<StateDir {str(self.directory)!r} commits={self._commits}>"

    # -- start-up ------------------------------------------------------------------------------

    def open(self) -> tuple[list[ConfigObject], int]:
        """Lock the directory (creating it), delete leftover temporary files, and load every object
        and the REVISION counter. Raises StateError with the file at fault."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StateError(f"cannot use the state directory {self.root}: {exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise StateError(f"another control is using the state directory {self.root}") from None
            raise StateError(f"cannot lock {self.directory / LOCK_FILE}: {exc}") from None
        self._lock_fd = fd
        try:
            return self._load()
        except BaseException:
            self.close()
            raise

    def _load(self) -> tuple[list[ConfigObject], int]:
        objects: list[ConfigObject] = []
        revision = 0
        removed_tmp = False
        for entry in sorted(os.scandir(self.directory), key=lambda e: e.name):
            path = Path(entry.path)
            if entry.name.startswith(TMP_PREFIX):
                os.unlink(path)  # an unacknowledged write interrupted before its rename
                removed_tmp = True
            elif entry.name == REVISION_FILE:
                text = path.read_text("ascii", errors="replace").strip()
                if not text.isdigit():
                    raise StateError(f"{path}: not a revision number: {text[:40]!r}")
                revision = max(revision, int(text))
            elif entry.name.endswith(OBJECT_SUFFIX) and entry.is_file():
                try:
                    obj = decode_object(path.read_bytes(), source=str(path))
                except ConfigError as exc:
                    raise StateError(f"cannot load a stored object: {exc} (move the file away to "
                                     "start without it)") from None
                if object_file_name(obj.key) != entry.name:
                    raise StateError(f"{path}: holds {obj.ref}, which belongs in "
                                     f"{object_file_name(obj.key)}")
                objects.append(obj)
        if removed_tmp:
            self._fsync_dir()
        return objects, revision

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    # -- writes --------------------------------------------------------------------------------

    def commit(self, change: Change) -> None:
        """Make ``change`` durable (returns only once it is on disk)."""
        if self._lock_fd is None:
            raise StateError("the state directory is not open")
        final = self.directory / object_file_name(change.key)
        if change.object is not None:
            self._write_atomic(final, encode_object(change.object))
        else:
            self._write_atomic(self.directory / REVISION_FILE, f"{change.revision}\n".encode())
            try:
                os.unlink(final)
            except FileNotFoundError:
                pass
        self._fsync_dir()
        self._commits += 1

    def _write_atomic(self, final: Path, data: bytes) -> None:
        tmp = final.with_name(f"{TMP_PREFIX}{final.name}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
            self._fsyncs += 1
        finally:
            os.close(fd)
        os.replace(tmp, final)

    def _fsync_dir(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
            self._fsyncs += 1
        finally:
            os.close(fd)

    def statistics(self) -> dict[str, Any]:
        return {"directory": str(self.directory), "commits": self._commits, "fsyncs": self._fsyncs}
