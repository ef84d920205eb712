"""Durations as the docs write them: ``10s``, ``1.5s``, ``100ms``, ``3m``, ``1h``, ``2h45m``, ``7.000s``.

A :class:`Duration` is a ``float`` of seconds, so code can use it as a number. The text form is Go's
``time.ParseDuration`` syntax, which is what Istio's protos accept (route_rule.proto: "format:
1h/1m/1s/1ms. MUST BE >=1ms"): a sequence of decimal numbers, each with a unit ``h``, ``m``, ``s``,
``ms``, ``us``/``µs`` or ``ns``. :func:`parse_duration` enforces the 1 ms minimum and Go's maximum
(2^63 ns, about 292 years).

Rendering (:func:`format_duration`) picks the shortest of the docs' spellings that parses back to
*exactly* the same float (``3m``, ``10s``, ``100ms``), and otherwise falls back to Python's shortest
round-tripping ``repr`` in seconds (``1.5s``, ``0.10020000000000001s``); so
``parse_duration(format_duration(d)) == d`` holds for every duration ``parse_duration`` returns. Units
are applied by *division* of the written number (``1500ms`` → ``1500 / 1000``), which is correctly
rounded, so ``1500ms`` and ``1.5s`` give the same float.
"""

from __future__ import annotations

import re

MIN_DURATION = 0.001  # route_rule.proto: "MUST BE >=1ms"
MAX_DURATION = 9223372036.854775807  # Go's time.Duration: 2^63 - 1 ns

# unit -> (multiplier, divisor): the value is number * multiplier / divisor
_UNITS = {"h": (3600.0, 1.0), "m": (60.0, 1.0), "s": (1.0, 1.0), "ms": (1.0, 1e3),
          "us": (1.0, 1e6), "µs": (1.0, 1e6), "μs": (1.0, 1e6), "ns": (1.0, 1e9)}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|us|µs|μs|ns|h|m|s)")


class Duration(float):
    """Seconds, as a float, parsed from and rendered to the docs' duration strings."""

    def __repr__(self) -> str:
        return f"Duration({format_duration(self)!r})"


def _scaled(number: str, unit: str) -> float:
    mul, div = _UNITS[unit]
    return float(number) * mul / div if div != 1.0 else float(number) * mul


def parse_duration(text: str) -> Duration:
    """Parse ``"1h2m3.5s"``/``"100ms"``; raise ``ValueError`` saying what is wrong."""
    if not isinstance(text, str):
        raise ValueError(f"expected a duration string like '10s', got {text!r}")
    s = text.strip()
    if not s:
        raise ValueError("empty duration: use a number and a unit, e.g. '10s'")
    pos = 0
    total = 0.0
    for m in _PART.finditer(s):
        if m.start() != pos:
            break
        total += _scaled(m.group(1), m.group(2))
        pos = m.end()
    if pos != len(s) or pos == 0:
        hint = " (a unit is required)" if re.fullmatch(r"\d+(\.\d+)?", s) else ""
        raise ValueError(
            f"invalid duration {text!r}{hint}: use a number and a unit, e.g. '10s', '1.5s', '100ms',"
            " '3m', '1h'")
    if total < MIN_DURATION:
        raise ValueError(f"duration {text!r} is shorter than the minimum of 1ms")
    if total > MAX_DURATION:
        raise ValueError(f"duration {text!r} is longer than the maximum of 2562047h")
    return Duration(total)


def format_duration(seconds: float) -> str:
    """Render seconds the way the docs write them (``3m``, ``10s``, ``100ms``, ``1.5s``); the result
    always parses back to exactly ``seconds``. Whole hours, minutes and seconds use those units, whole
    milliseconds below one second use ``ms``, anything else is seconds with a decimal point."""
    value = float(seconds)
    candidates = []
    if value >= 1 and value == int(value):
        whole = int(value)
        if whole % 3600 == 0:
            candidates.append(f"{whole // 3600}h")
        if whole % 60 == 0:
            candidates.append(f"{whole // 60}m")
        candidates.append(f"{whole}s")
    elif value < 1:
        ms = round(value * 1000)
        if ms > 0 and ms / 1e3 == value:
            candidates.append(f"{ms}ms")
    for text in candidates:
        if _quick_parse(text) == value:
            return text
    return f"{value!r}s"


def _quick_parse(text: str) -> float:
    m = _PART.fullmatch(text)
    assert m is not None
    return _scaled(m.group(1), m.group(2))
