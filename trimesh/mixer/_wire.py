"""Mixer's wire: length-prefixed MessagePack frames over a kept-alive TCP connection. PURE.

Why not HTTP: a Check is on the request path of every uncached request; an HTTP/1.1 exchange on
h11 costs more CPU than the check itself, and Check/Quota/Report are three fixed operations, not
resources. So the frame is the whole protocol (docs/mixer.md "Wire"):

* a **frame** is a 4-byte big-endian length followed by that many bytes of one MessagePack map;
  a frame larger than :data:`MAX_FRAME` is a protocol error and closes the connection;
* the client sends one request frame and reads one answer frame, in order, on each connection
  (no multiplexing; a client wanting concurrency opens several connections and keeps them);
* a **request** is ``{"op": "check" | "quota" | "report" | "stats", ...}``:

  - ``check``: ``attrs`` (the attribute bag: strings, ints, floats, bools and string maps; IP
    addresses as text), optional ``dedup`` (the request id, making quota charges idempotent on a
    retry) → ``{"rev", "keys", "quotas", "check": STATUS, "result": STATUS, "granted"}``, where
    STATUS is ``[code, message, valid_duration, valid_use_count, handler | None]``, ``check``
    the cacheable check alone, ``result`` with the quotas applied, ``keys`` the attributes the
    config's checks read (the client's cache key) and ``quotas`` whether any quota rule exists;
  - ``quota``: ``attrs``, ``name``, ``amount``, ``dedup``, ``best_effort`` →
    ``{"rev", "granted", "duration"}``;
  - ``report``: ``records`` (a list of attribute bags) → ``{"accepted": n}``;
  - ``stats`` → the service's statistics;
* an **error** answer is ``{"error": message}`` (an unknown op, a malformed request).
"""

from __future__ import annotations

import struct
from typing import Any

import msgspec

from trimesh.errors import ProtocolError

from ._status import CheckResult

__all__ = ["MAX_FRAME", "encode_frame", "FrameReader", "status_to_wire", "status_from_wire"]

MAX_FRAME = 1 << 20  # 1 MiB: a report batch of a few thousand records fits
_LEN = struct.Struct(">I")
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder()


def encode_frame(message: Any) -> bytes:
    body = _encoder.encode(message)
    if len(body) > MAX_FRAME:
        raise ProtocolError(f"mixer frame of {len(body)} bytes is over {MAX_FRAME}")
    return _LEN.pack(len(body)) + body


class FrameReader:
    """Incremental frame decoder: ``feed(data)`` then ``next()`` until it returns ``None``."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        self._buf += data

    def next(self) -> Any:
        buf = self._buf
        if len(buf) < 4:
            return None
        (size,) = _LEN.unpack_from(buf)
        if size > MAX_FRAME:
            raise ProtocolError(f"mixer frame of {size} bytes is over {MAX_FRAME}")
        if len(buf) < 4 + size:
            return None
        body = bytes(buf[4:4 + size])
        del buf[:4 + size]
        try:
            return _decoder.decode(body)
        except msgspec.DecodeError as exc:
            raise ProtocolError(f"bad mixer frame: {exc}") from None

    def __len__(self) -> int:
        return len(self._buf)


def status_to_wire(r: CheckResult) -> list[Any]:
    return [int(r.code), r.message, r.valid_duration, r.valid_use_count, r.handler]


def status_from_wire(v: Any) -> CheckResult:
    try:
        code, message, duration, uses, handler = v
        return CheckResult(int(code), str(message), float(duration), int(uses),
                           None if handler is None else str(handler))
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"bad mixer status {v!r}: {exc}") from None
