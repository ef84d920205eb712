"""Durations as the docs write them: ``10s``, ``1.5s``, ``100ms``, ``3m``, ``1h``, ``2h45m``.

A :class:`Duration` is a ``float`` of seconds, so code can use it as a number; it keeps the docs'
spelling when encoded back to YAML/JSON (see :func:`format_duration`). Istio requires every duration
to be at least 1 ms (route_rule.proto), which :func:`parse_duration` enforces.
"""

from __future__ import annotations

import re

MIN_DURATION = 0.001  # route_rule.proto: "MUST BE >=1ms"

_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ms|us|µs|ns|h|m|s)")


class Duration(float):
    """Seconds, as a float, parsed from and rendered to the docs' duration strings."""

    def __repr__(self) -> str:
        return f"Duration({format_duration(self)!r})"


def parse_duration(text: str) -> Duration:
    """Parse ``"1h2m3.5s"``/``"100ms"``; raise ``ValueError`` saying what is wrong."""
    if not isinstance(text, str):
        raise ValueError(f"expected a duration string like '10s', got {text!r}")
    s = text.strip()
    if not s:
        raise ValueError("empty duration")
    pos = 0
    total = 0.0
    for m in _PART.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s) or pos == 0:
        raise ValueError(
            f"invalid duration {text!r}: use a number and a unit, e.g. '10s', '1.5s', '100ms', '3m', '1h'"
        )
    if total < MIN_DURATION:
        raise ValueError(f"duration {text!r} is shorter than the minimum of 1ms")
    return Duration(total)


def format_duration(seconds: float) -> str:
    """Render seconds the way the docs write them: whole seconds as ``10s``, else ``ms``."""
    if seconds >= 1 and abs(seconds - round(seconds)) < 1e-9:
        whole = int(round(seconds))
        if whole % 3600 == 0:
            return f"{whole // 3600}h"
        if whole % 60 == 0:
            return f"{whole // 60}m"
        return f"{whole}s"
    ms = seconds * 1000
    if abs(ms - round(ms)) < 1e-6:
        return f"{int(round(ms))}ms"
    return f"{seconds:g}s"
