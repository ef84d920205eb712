"""Telemetry: the per-request record (Mixer's attribute vocabulary) and what reads it — today the
access log; metrics, Mixer reports and spans read the same record (docs/telemetry.md)."""

from ._access import AccessLog as AccessLog
from ._record import ATTRIBUTES as ATTRIBUTES
from ._record import RequestRecord as RequestRecord

__all__ = ["AccessLog", "ATTRIBUTES", "RequestRecord"]
