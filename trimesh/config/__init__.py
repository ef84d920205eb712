"""Config: typed models of every kind, loading and validation, and the immutable Snapshot. PURE."""

from ._duration import Duration as Duration
from ._duration import format_duration as format_duration
from ._duration import parse_duration as parse_duration
from ._instances import ServiceInstance as ServiceInstance
from ._instances import make_instance as make_instance
from ._kinds import KindInfo as KindInfo
from ._kinds import all_kinds as all_kinds
from ._kinds import lookup_kind as lookup_kind
from ._load import load_text as load_text
from ._load import object_from_dict as object_from_dict
from ._names import DEFAULT_DOMAIN as DEFAULT_DOMAIN
from ._names import DEFAULT_NAMESPACE as DEFAULT_NAMESPACE
from ._names import host_to_fqdn as host_to_fqdn
from ._names import resolve_service as resolve_service
from ._names import service_fqdn as service_fqdn
from ._object import ConfigObject as ConfigObject
from ._snapshot import Snapshot as Snapshot
from ._traffic import *  # noqa: F401,F403  (the spec models: RouteRule, DestinationPolicy, ...)
