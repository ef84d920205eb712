"""Mixer's telemetry adapters on the report path: ``prometheus`` and ``stdio`` — PURE.

The Mixer service hands every reported attribute bag to :meth:`MixerConfig.report
<trimesh.mixer.MixerConfig.report>`, which evaluates the ``metric`` and ``logentry`` instances of
the rules that match and gives them to their handlers (telemetry-security.md §15.2–15.3):

* :class:`PrometheusHandler` keeps one aggregate per metric and label tuple — ``COUNTER`` adds
  the value, ``GAUGE`` sets it, ``DISTRIBUTION`` observes it into buckets (explicit, linear,
  exponential, or Prometheus' defaults) — and :meth:`~PrometheusHandler.families` renders them as
  prometheus-client metric families, exported as ``istio_<name>`` (the metric's ``namespace``
  overrides ``istio``; ``/``, ``.`` and spaces become ``_``, ``-`` is dropped, as upstream).
  Values: numbers as they are, durations in seconds, numeric strings parsed; anything else is
  counted in ``value_errors`` and skipped. Label values are strings (``true``/``false`` for
  booleans, Go's duration text for durations). Counters are exposed with prometheus-client's
  ``_total`` suffix (the text format's rule that ``promtool check metrics`` enforces):
  ``istio_request_count_total`` (docs/telemetry.md tells how the docs' queries read it).
* :class:`StdioHandler` turns a logentry into one line: JSON (``outputAsJson``, the default)
  with ``level``, ``ts``, ``instance`` first and the variables in alphabetical order — the docs'
  ``{"level":"warn","ts":"2017-09-21T04:33:31.249Z","instance":"newlog.logentry.istio-system",
  "destination":"details","latency":"6.848ms",…}`` — or a tab-separated console line. Levels
  come from ``severityLevels`` (else upstream's default map), lines under ``outputLevel`` are
  dropped; durations print as Go's ``time.Duration`` does (``6.848ms``, ``1.5s``, ``12.5µs``).
  The handler only formats and counts; where lines go is the shell's (``write``).
"""

from __future__ import annotations

import datetime
import json
import math
import re
from bisect import bisect_left
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["PrometheusHandler", "StdioHandler", "go_duration", "prometheus_name",
           "DEFAULT_BUCKETS"]

DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DEFAULT_NAMESPACE = "istio"
MAX_SERIES = 10000  # label tuples kept per metric; beyond, new tuples are counted and dropped
_SANITIZE = re.compile(r"[/. ]")
LEVELS = {"INFO": 0, "WARNING": 1, "ERROR": 2}
LEVEL_NAMES = {0: "info", 1: "warn", 2: "error"}  # zap's, as upstream's JSON lines show
DEFAULT_SEVERITY_LEVELS = {  # stdio's default map (telemetry-security.md §15.3)
    "INFORMATIONAL": 0, "informational": 0, "INFO": 0, "info": 0,
    "WARNING": 1, "warning": 1, "WARN": 1,
    "ERROR": 2, "error": 2, "ERR": 2, "err": 2, "FATAL": 2, "fatal": 2,
}


def prometheus_name(text: str) -> str:
    """Upstream's sanitising of metric and label names: leading ``/`` trimmed, ``/``, ``.`` and
    spaces to ``_``, ``-`` removed."""
    return _SANITIZE.sub("_", text.lstrip("/")).replace("-", "")


def go_duration(seconds: float) -> str:
    """``seconds`` as Go's ``time.Duration.String()`` prints it: ``0s``, ``850ns``, ``12.5µs``,
    ``6.848ms``, ``1.5s``, ``2m3.5s``, ``1h0m0s``."""
    ns = int(round(seconds * 1e9))
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{_trim(ns / 1e3)}µs"
    if ns < 1_000_000_000:
        return f"{sign}{_trim(ns / 1e6)}ms"
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    text = f"{_trim(rest / 1e9)}s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return f"{sign}{text}"


def _trim(value: float) -> str:
    return f"{value:.9f}".rstrip("0").rstrip(".")


def _label(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def bucket_bounds(buckets: Any) -> tuple[float, ...]:
    """The finite upper bounds of a ``BucketsDefinition`` (upstream's reading; §15.2)."""
    if buckets is None:
        return DEFAULT_BUCKETS
    if buckets.explicit_buckets is not None:
        return tuple(sorted(float(b) for b in buckets.explicit_buckets.bounds))
    if buckets.linear_buckets is not None:
        lb = buckets.linear_buckets
        return tuple(lb.offset + i * lb.width for i in range(lb.num_finite_buckets + 1))
    if buckets.exponential_buckets is not None:
        eb = buckets.exponential_buckets
        return tuple(eb.scale * eb.growth_factor ** i for i in range(eb.num_finite_buckets + 1))
    return DEFAULT_BUCKETS


class _Metric:
    __slots__ = ("name", "kind", "help", "labels", "bounds", "series", "dropped")

    def __init__(self, spec: Any) -> None:
        base = spec.name or spec.instance_name
        self.name = prometheus_name(f"{spec.namespace or DEFAULT_NAMESPACE}_{base}")
        self.kind = spec.kind
        self.help = spec.description or base
        self.labels = tuple(prometheus_name(n) for n in spec.label_names)
        self.bounds = bucket_bounds(spec.buckets) if spec.kind == "DISTRIBUTION" else ()
        # label values -> float (COUNTER, GAUGE) or [bucket counts..., +Inf, sum] (DISTRIBUTION)
        self.series: dict[tuple[str, ...], Any] = {}
        self.dropped = 0


class PrometheusHandler:
    """``kind: prometheus`` (module docstring). ``record(instance_fqn, value, dimensions)``."""

    def __init__(self, fqn: str, params: Any) -> None:
        self.fqn = fqn
        self.params = params
        self._by_instance: dict[str, list[_Metric]] = {}
        self.metrics: list[_Metric] = []
        for spec in params.metrics:
            m = _Metric(spec)
            self.metrics.append(m)
            self._by_instance.setdefault(spec.instance_name, []).append(m)
        self._stats = {"records": 0, "value_errors": 0}

    @property
    def instances(self) -> tuple[str, ...]:
        return tuple(self._by_instance)

    def record(self, instance: str, value: Any, dimensions: dict[str, Any]) -> None:
        metrics = self._by_instance.get(instance)
        if not metrics:
            return
        number = _number(value)
        if number is None or math.isnan(number):
            self._stats["value_errors"] += 1
            return
        self._stats["records"] += 1
        for m in metrics:
            key = tuple(_label(dimensions.get(n, "")) for n in m.labels)
            series = m.series
            entry = series.get(key)
            if entry is None:
                if len(series) >= MAX_SERIES:
                    m.dropped += 1
                    continue
                entry = series[key] = ([0] * (len(m.bounds) + 1) + [0.0]
                                       if m.kind == "DISTRIBUTION" else 0.0)
            if m.kind == "COUNTER":
                series[key] = entry + number
            elif m.kind == "GAUGE":
                series[key] = number
            else:
                entry[bisect_left(m.bounds, number)] += 1
                entry[-1] += number

    def families(self) -> list[Any]:
        """The aggregates as prometheus-client metric families (imported here: only a scrape
        needs prometheus-client)."""
        from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                            HistogramMetricFamily)

        out = []
        for m in self.metrics:
            labels = list(m.labels)
            if m.kind == "COUNTER":
                fam = CounterMetricFamily(m.name, m.help, labels=labels)
                for key, v in m.series.items():
                    fam.add_metric(list(key), v)
            elif m.kind == "GAUGE":
                fam = GaugeMetricFamily(m.name, m.help, labels=labels)
                for key, v in m.series.items():
                    fam.add_metric(list(key), v)
            else:
                fam = HistogramMetricFamily(m.name, m.help, labels=labels)
                for key, entry in m.series.items():
                    cumulative, buckets = 0, []
                    for bound, n in zip((*m.bounds, math.inf), entry[:-1]):
                        cumulative += n
                        buckets.append((_bound_text(bound), cumulative))
                    fam.add_metric(list(key), buckets, entry[-1])
            out.append(fam)
        return out

    def statistics(self) -> dict[str, Any]:
        return {**self._stats, "series": sum(len(m.series) for m in self.metrics),
                "dropped_series": sum(m.dropped for m in self.metrics)}

    def __repr__(self) -> str:
        return f"<PrometheusHandler {self.fqn} {len(self.metrics)} metrics>"


def _bound_text(bound: float) -> str:
    if math.isinf(bound):
        return "+Inf"
    return repr(float(bound)) if not float(bound).is_integer() else f"{bound:.1f}"


def _level(value: Any, default: int = 0) -> int:
    if isinstance(value, int):
        return value
    return LEVELS.get(str(value).upper(), default)


class StdioHandler:
    """``kind: stdio`` (module docstring). ``log(instance_fqn, severity, timestamp, variables)``
    formats a line and gives it to ``write`` (set by the shell; by default lines are kept in
    ``lines``, a test's view)."""

    def __init__(self, fqn: str, params: Any) -> None:
        self.fqn = fqn
        self.params = params
        levels = params.severity_levels
        self.levels = ({k: _level(v) for k, v in levels.items()} if levels
                       else dict(DEFAULT_SEVERITY_LEVELS))
        self.output_level = _level(params.output_level)
        self.json = params.output_as_json
        self.lines: list[str] = []
        self.write: Callable[[str], None] = self.lines.append
        self._stats = {"entries": 0, "filtered": 0}

    def log(self, instance: str, severity: Any, timestamp: float,
            variables: Iterable[tuple[str, Any]]) -> None:
        """One logentry; ``timestamp`` in Unix seconds (the caller's ``now`` when the entry's own
        cannot be read: this module reads no clock)."""
        level = self.levels.get(str(severity), 0) if severity is not None else 0
        if level < self.output_level:
            self._stats["filtered"] += 1
            return
        self._stats["entries"] += 1
        ts = _rfc3339(timestamp)
        fields = sorted(variables)
        if self.json:
            doc = {"level": LEVEL_NAMES.get(level, "info"), "ts": ts, "instance": instance}
            doc.update((k, _json_value(v)) for k, v in fields)
            self.write(json.dumps(doc, ensure_ascii=False, separators=(",", ":")))
        else:
            rest = "\t".join(f"{k}={_text_value(v)}" for k, v in fields)
            self.write(f"{ts}\t{LEVEL_NAMES.get(level, 'info')}\t{instance}\t{rest}")

    def statistics(self) -> dict[str, Any]:
        return dict(self._stats)

    def __repr__(self) -> str:
        return f"<StdioHandler {self.fqn}>"


class Duration(float):
    """A float of seconds that prints as Go's duration (logentry variables typed DURATION)."""

    __slots__ = ()


def _json_value(v: Any) -> Any:
    if isinstance(v, Duration):
        return go_duration(v)
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)


def _text_value(v: Any) -> str:
    if isinstance(v, Duration):
        return go_duration(v)
    return _label(v)


def _rfc3339(seconds: float) -> str:
    """RFC 3339 UTC with milliseconds and ``Z`` (the docs' ``2017-09-21T04:33:31.249Z``)."""
    t = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
