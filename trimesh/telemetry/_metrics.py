"""The sidecar's own Prometheus metrics: Istio's default request metrics for its traffic, and its
runtime statistics as typed, labelled metrics.

**Request metrics** (Istio's default ``metric`` instances, ``../shared/spec/telemetry-security.md``
§15.1; the prometheus adapter's semantics, §15.2): ``istio_request_count`` (counter),
``istio_request_duration`` (histogram, seconds, :data:`DURATION_BUCKETS`), ``istio_request_size``
and ``istio_response_size`` (histograms, bytes, :data:`SIZE_BUCKETS`), labelled with Istio's
dimensions (:data:`LABELS`) and the defaults its instances use when an attribute is missing
(``"unknown"``; ``response_code`` ``200``); ``connection_mtls`` is ``true`` for a hop that used
mutual TLS. Beyond 0.x, where only
Mixer's adapter exported them, each sidecar serves them for its own traffic, as Istio's later
in-proxy telemetry does — and, like it, with a ``reporter`` label (``source`` for the caller's
outbound, ``destination`` for the callee's inbound) so a sum over sidecars does not count a
request twice. prometheus-client writes a counter's samples with a ``_total`` suffix (the text
format's rule, which ``promtool check metrics`` enforces): the count is
``istio_request_count_total``.

:class:`MeshMetrics` is a record sink: ``log_batch(records)`` folds a batch into plain dicts keyed
by the label tuple (one dict lookup and a few ``bisect`` calls per record, no lock, no
prometheus-client call); the registry reads them when ``/metrics`` is scraped (``collect``).

**Runtime statistics** (:class:`RuntimeCollector`): the sidecar's ``statistics()`` as typed
metrics — ``trimesh_proxy_requests_total{direction}``,
``trimesh_proxy_responses_total{direction,code_class}``,
``trimesh_proxy_events_total{direction,event}`` (response flags, retries, mirrors),
``trimesh_cluster_<stat>{cluster}`` (Envoy's ``cluster.<name>.upstream_rq_*`` family: its
``*_total`` statistics as counters, the rest as gauges),
``trimesh_telemetry_*`` and, for every other numeric statistic, ``trimesh_sidecar_stat{path}``.

:func:`render_metrics` is prometheus-client's ``generate_latest`` over a registry.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any, Callable, Iterable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from ._record import RequestRecord

# Istio's request_duration explicit bounds (= Prometheus' default buckets), seconds (§15.1).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Istio's size buckets: exponentialBuckets{numFiniteBuckets: 8, scale: 1, growthFactor: 10}.
SIZE_BUCKETS = tuple(float(10 ** i) for i in range(9))
LABELS = ("reporter", "source_service", "source_version", "destination_service",
          "destination_version", "response_code", "connection_mtls")
UNKNOWN = "unknown"  # Istio's instance default for a missing service or version
REPORTER = {"outbound": "source", "inbound": "destination"}
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Envoy's cluster statistics named *_total are counters, but for these gauges (hosts in the
# cluster); both are exported without the suffix (the text format reserves it for counters).
GAUGE_TOTALS = frozenset({"membership_total"})


class _Series:
    """One label set's aggregates: count, and per histogram its non-cumulative buckets and sum."""

    __slots__ = ("count", "duration", "duration_sum", "request", "request_sum", "response",
                 "response_sum")

    def __init__(self) -> None:
        self.count = 0
        self.duration = [0] * (len(DURATION_BUCKETS) + 1)
        self.duration_sum = 0.0
        self.request = [0] * (len(SIZE_BUCKETS) + 1)
        self.request_sum = 0.0
        self.response = [0] * (len(SIZE_BUCKETS) + 1)
        self.response_sum = 0.0


def _histogram(name: str, doc: str, bounds: tuple[float, ...],
               series: Iterable[tuple[tuple[str, ...], list[int], float]]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=LABELS)
    les = [*(str(b) for b in bounds), "+Inf"]
    for labels, buckets, total in series:
        acc = 0
        cumulative = []
        for le, n in zip(les, buckets):
            acc += n
            cumulative.append((le, acc))
        family.add_metric(list(labels), cumulative, total)
    return family


class MeshMetrics:
    """Istio's default request metrics for one sidecar's records (module docstring)."""

    def __init__(self) -> None:
        self._series: dict[tuple[str, ...], _Series] = {}  # label values -> aggregates
        # the records' own fields -> the same aggregates: a batch needs no label defaults per
        # record, only one tuple and one lookup
        self._by_fields: dict[tuple[Any, ...], _Series] = {}
        self.records = 0

    def _series_of(self, fields: tuple[Any, ...]) -> _Series:
        direction, source, source_version, destination, destination_version, status, mtls = fields
        key = (REPORTER.get(direction, direction), source or UNKNOWN, source_version or UNKNOWN,
               destination or UNKNOWN, destination_version or UNKNOWN,
               str(status) if status else "200", "true" if mtls else "false")
        s = self._series.get(key)
        if s is None:
            s = self._series[key] = _Series()
        self._by_fields[fields] = s
        return s

    def log_batch(self, records: list[RequestRecord]) -> None:
        by_fields = self._by_fields
        for r in records:
            fields = (r.direction, r.source_service, r.source_version, r.destination_service,
                      r.destination_version, r.status, r.connection_mtls)
            s = by_fields.get(fields)
            if s is None:
                s = self._series_of(fields)
            s.count += 1
            d = r.duration
            s.duration[bisect_left(DURATION_BUCKETS, d)] += 1
            s.duration_sum += d
            size = r.request_size
            if size > 1:
                s.request[bisect_left(SIZE_BUCKETS, size)] += 1
                s.request_sum += size
            else:  # none, unknown (-1) or one byte: the first bucket (le 1)
                s.request[0] += 1
                s.request_sum += size if size > 0 else 0
            size = r.response_size
            if size > 1:
                s.response[bisect_left(SIZE_BUCKETS, size)] += 1
                s.response_sum += size
            else:
                s.response[0] += 1
                s.response_sum += size if size > 0 else 0
        self.records += len(records)

    def collect(self):
        items = list(self._series.items())
        count = CounterMetricFamily("istio_request_count", "requests (Istio's requestcount)",
                                    labels=LABELS)
        for labels, s in items:
            count.add_metric(list(labels), s.count)
        yield count
        yield _histogram("istio_request_duration", "request duration in seconds "
                         "(Istio's requestduration)", DURATION_BUCKETS,
                         ((k, s.duration, s.duration_sum) for k, s in items))
        yield _histogram("istio_request_size", "request body bytes (Istio's requestsize)",
                         SIZE_BUCKETS, ((k, s.request, s.request_sum) for k, s in items))
        yield _histogram("istio_response_size", "response body bytes (Istio's responsesize)",
                         SIZE_BUCKETS, ((k, s.response, s.response_sum) for k, s in items))

    def statistics(self) -> dict[str, object]:
        return {"records": self.records, "series": len(self._series)}

    def __repr__(self) -> str:
        return f"<MeshMetrics records={self.records} series={len(self._series)}>"


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _name(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_").lower()


class RuntimeCollector:
    """The sidecar's ``statistics()`` (a callable returning its /stats dict) as typed metrics."""

    def __init__(self, statistics: Callable[[], dict[str, Any]]) -> None:
        self.statistics = statistics

    def collect(self):
        stats = self.statistics()
        requests = CounterMetricFamily("trimesh_proxy_requests", "requests the proxy finished",
                                       labels=["direction"])
        responses = CounterMetricFamily("trimesh_proxy_responses", "responses by status class",
                                        labels=["direction", "code_class"])
        events = CounterMetricFamily("trimesh_proxy_events", "proxy events (response flags, "
                                     "retries, mirrors)", labels=["direction", "event"])
        for direction in ("outbound", "inbound"):
            side = stats.get(direction) or {}
            for key, value in side.items():
                if not _number(value):
                    continue
                if key == "requests":
                    requests.add_metric([direction], value)
                elif key.startswith("status_"):
                    responses.add_metric([direction, key[len("status_"):]], value)
                elif key != "mirrors_in_flight":
                    events.add_metric([direction, key], value)
        yield requests
        yield responses
        yield events
        families: dict[str, Any] = {}
        for cluster, cstats in (stats.get("clusters") or {}).items():
            for key, value in cstats.items():
                if not _number(value):
                    continue
                name = _name(key)
                counter = name.endswith("_total") and name not in GAUGE_TOTALS
                name = f"trimesh_cluster_{name.removesuffix('_total')}"
                family = families.get(name)
                if family is None:
                    kind = CounterMetricFamily if counter else GaugeMetricFamily
                    family = families[name] = kind(
                        name, f"the cluster's {key} (Envoy's cluster.<name>.{key})",
                        labels=["cluster"])
                family.add_metric([cluster], value)
        yield from families.values()
        rest = GaugeMetricFamily("trimesh_sidecar_stat", "every other numeric /stats entry, "
                                 "by its path", labels=["path"])
        skip = {"outbound", "inbound", "clusters", "tree", "name"}

        def walk(path: str, value: Any) -> None:
            if isinstance(value, bool):
                rest.add_metric([path], int(value))
            elif _number(value):
                rest.add_metric([path], value)
            elif isinstance(value, dict):
                for k, v in value.items():
                    walk(f"{path}.{k}" if path else str(k), v)

        for key, value in stats.items():
            if key not in skip:
                walk(key, value)
        tree = stats.get("tree") or {}
        restarts = GaugeMetricFamily("trimesh_child_restarts", "restarts of each child of the "
                                     "sidecar's tree", labels=["child"])
        for child, cstate in (tree.get("children") or {}).items():
            if isinstance(cstate, dict) and _number(cstate.get("restarts")):
                restarts.add_metric([child], cstate["restarts"])
        yield restarts
        yield rest


def metrics_registry(*collectors: object) -> CollectorRegistry:
    """A fresh registry (never the process-global one) holding ``collectors``."""
    registry = CollectorRegistry(auto_describe=False)
    for c in collectors:
        registry.register(c)
    return registry


def render_metrics(registry: CollectorRegistry) -> bytes:
    """The text exposition (format 0.0.4) of ``registry``."""
    return generate_latest(registry)
