"""Config: typed models of every kind, loading and validation, and the immutable Snapshot. PURE."""

from ._duration import Duration as Duration
from ._duration import format_duration as format_duration
from ._duration import parse_duration as parse_duration
from ._instances import AUTH_ANNOTATION as AUTH_ANNOTATION
from ._instances import AUTH_MODES as AUTH_MODES
from ._instances import PROTOCOLS as PROTOCOLS
from ._instances import annotation_problem as annotation_problem
from ._instances import ServiceInstance as ServiceInstance
from ._instances import make_instance as make_instance
from ._kinds import KindInfo as KindInfo
from ._kinds import all_kinds as all_kinds
from ._kinds import lookup_kind as lookup_kind
from ._adapters import *  # noqa: F401,F403  (Mixer adapter models: DenierParams, ...)
from ._diff import SnapshotDiff as SnapshotDiff
from ._diff import diff_snapshots as diff_snapshots
from ._dump import dump_json as dump_json
from ._dump import dump_yaml as dump_yaml
from ._kinds import register_kind as register_kind
from ._load import MAX_INPUT_BYTES as MAX_INPUT_BYTES
from ._load import format_path as format_path
from ._load import infer_kind as infer_kind
from ._load import load_file as load_file
from ._load import load_mesh_config as load_mesh_config
from ._load import load_text as load_text
from ._load import object_from_dict as object_from_dict
from ._mesh import *  # noqa: F401,F403  (MeshConfig, ProxyConfig)
from ._mixer import *  # noqa: F401,F403  (Mixer rule, templates, attributemanifest, FQN helpers)
from ._protocols import DEFAULT_REGISTER_PROTOCOL as DEFAULT_REGISTER_PROTOCOL
from ._protocols import HTTP_PROTOCOLS as HTTP_PROTOCOLS
from ._protocols import PORT_PROTOCOLS as PORT_PROTOCOLS
from ._protocols import TCP_PROTOCOLS as TCP_PROTOCOLS
from ._protocols import UNKNOWN_PORT_PROTOCOL as UNKNOWN_PORT_PROTOCOL
from ._protocols import WELL_KNOWN_PORTS as WELL_KNOWN_PORTS
from ._protocols import is_tcp_protocol as is_tcp_protocol
from ._protocols import port_protocol as port_protocol
from ._protocols import register_port_protocol as register_port_protocol
from ._names import DEFAULT_DOMAIN as DEFAULT_DOMAIN
from ._names import DEFAULT_NAMESPACE as DEFAULT_NAMESPACE
from ._names import host_to_fqdn as host_to_fqdn
from ._names import resolve_service as resolve_service
from ._names import service_domain as service_domain
from ._names import service_fqdn as service_fqdn
from ._object import ConfigObject as ConfigObject
from ._quota_spec import *  # noqa: F401,F403  (QuotaSpec, QuotaSpecBinding)
from ._snapshot import Snapshot as Snapshot
from ._validate import check_references as check_references
from ._validate import set_expression_checker as set_expression_checker
from ._traffic import *  # noqa: F401,F403  (the spec models: RouteRule, DestinationPolicy, ...)
