"""Telemetry: the per-request record (Mixer's attribute vocabulary) and what reads it — the
access log, the sidecar's Prometheus metrics and Zipkin spans, fed in batches by the record
fan-out; B3 trace contexts for the proxy (docs/telemetry.md)."""

from ._access import AccessLog as AccessLog
from ._b3 import B3_HEADERS as B3_HEADERS
from ._b3 import DEFAULT_SAMPLING as DEFAULT_SAMPLING
from ._b3 import SpanContext as SpanContext
from ._b3 import Tracer as Tracer
from ._metrics import CONTENT_TYPE as CONTENT_TYPE
from ._metrics import DURATION_BUCKETS as DURATION_BUCKETS
from ._metrics import LABELS as LABELS
from ._metrics import SIZE_BUCKETS as SIZE_BUCKETS
from ._metrics import MeshMetrics as MeshMetrics
from ._metrics import RuntimeCollector as RuntimeCollector
from ._metrics import metrics_registry as metrics_registry
from ._metrics import render_metrics as render_metrics
from ._record import ATTRIBUTES as ATTRIBUTES
from ._record import RequestRecord as RequestRecord
from ._sinks import LocalIdentity as LocalIdentity
from ._sinks import RecordSinks as RecordSinks
from ._zipkin import ZipkinExporter as ZipkinExporter
from ._zipkin import zipkin_span as zipkin_span

__all__ = ["AccessLog", "ATTRIBUTES", "B3_HEADERS", "CONTENT_TYPE", "DEFAULT_SAMPLING",
           "DURATION_BUCKETS", "LABELS", "LocalIdentity", "MeshMetrics", "RecordSinks",
           "RequestRecord", "RuntimeCollector", "SIZE_BUCKETS", "SpanContext", "Tracer",
           "ZipkinExporter", "metrics_registry", "render_metrics", "zipkin_span"]
