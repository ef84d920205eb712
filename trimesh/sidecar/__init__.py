"""The sidecar: one supervision tree of config sources, snapshot builder, proxies, telemetry and
admin server (docs/sidecar.md); hooks for other subsystems are documented in ``_sidecar.py``;
gossip discovery (``install_gossip``, docs/gossip.md §7) in ``_gossip.py``; the cert agent
(``install_cert_agent``, docs/identity.md) in ``_certs.py``."""

from ._admin import AdminApp as AdminApp
from ._certs import CertOptions as CertOptions
from ._certs import install_cert_agent as install_cert_agent
from ._gossip import COALESCE_INTERVAL as COALESCE_INTERVAL
from ._gossip import JOIN_WAIT as JOIN_WAIT
from ._gossip import OWN_INSTANCE_POLL as OWN_INSTANCE_POLL
from ._gossip import GossipOptions as GossipOptions
from ._gossip import GossipSource as GossipSource
from ._gossip import install_gossip as install_gossip
from ._gossip import member_name as member_name
from ._health import HEALTH_INTERVAL as HEALTH_INTERVAL
from ._health import HEALTH_PATH as HEALTH_PATH
from ._health import HEALTH_TIMEOUT as HEALTH_TIMEOUT
from ._health import HealthCheckConfig as HealthCheckConfig
from ._health import HealthChecker as HealthChecker
from ._health import serve_health_checker as serve_health_checker
from ._ingress import DEFAULT_INGRESS_PORT as DEFAULT_INGRESS_PORT
from ._ingress import DEFAULT_INGRESS_TLS_PORT as DEFAULT_INGRESS_TLS_PORT
from ._ingress import IngressOptions as IngressOptions
from ._ingress import install_ingress as install_ingress
from ._sidecar import DEFAULT_ADMIN_PORT as DEFAULT_ADMIN_PORT
from ._sidecar import DEFAULT_CONTROL_URL as DEFAULT_CONTROL_URL
from ._sidecar import DEFAULT_DRAIN_TIMEOUT as DEFAULT_DRAIN_TIMEOUT
from ._sidecar import DEFAULT_PROXY_PORT as DEFAULT_PROXY_PORT
from ._sidecar import SIDECAR_INTENSITY as SIDECAR_INTENSITY
from ._sidecar import Sidecar as Sidecar
from ._sidecar import SidecarConfig as SidecarConfig
from ._sidecar import app_environment as app_environment
from ._sidecar import serve_sidecar as serve_sidecar
from ._sources import ControlSource as ControlSource
from ._sources import FileSource as FileSource
from ._sources import load_registry_text as load_registry_text
from ._mixer import MixerOptions as MixerOptions
from ._mixer import install_mixer as install_mixer
