"""The control process: the config store (one revision counter, atomic persistence under
``--state-dir``, or in etcd with ``--store etcd://...``), its HTTP config API on h11, and a blocking client for the CLI.

The store's decisions are pure (:mod:`._state`); persistence (:mod:`._disk`) and the API are the
Trio shell. See docs/control.md.
"""

from ._api import DEFAULT_CONFIG_PORT as DEFAULT_CONFIG_PORT
from ._api import MAX_REQUEST_BYTES as MAX_REQUEST_BYTES
from ._api import Mesh as Mesh
from ._api import handle_api_connection as handle_api_connection
from ._api import serve_config_api as serve_config_api
from ._client import DEFAULT_CONTROL_URL as DEFAULT_CONTROL_URL
from ._client import ControlClient as ControlClient
from ._client import ControlUnreachableError as ControlUnreachableError
from ._disk import StateDir as StateDir
from ._disk import StateError as StateError
from ._etcd import EtcdClient as EtcdClient
from ._etcd import EtcdStore as EtcdStore
from ._etcd import EtcdUnavailableError as EtcdUnavailableError
from ._etcd import open_config_store as open_config_store
from ._etcd import open_etcd_store as open_etcd_store
from ._etcd_wire import EtcdTarget as EtcdTarget
from ._etcd_wire import parse_store_url as parse_store_url
from ._gossip import MESH_KEY_FILE as MESH_KEY_FILE
from ._gossip import MeshKeyError as MeshKeyError
from ._gossip import Publisher as Publisher
from ._gossip import load_or_create_mesh_key as load_or_create_mesh_key
from ._gossip import member_rows as member_rows
from ._gossip import mesh_key_path as mesh_key_path
from ._gossip import read_mesh_key as read_mesh_key
from ._instances import InstanceStore as InstanceStore
from ._instances import Registration as Registration
from ._instances import parse_registration as parse_registration
from ._process import default_mesh_key_file as default_mesh_key_file
from ._process import default_state_dir as default_state_dir
from ._process import serve_control as serve_control
from ._publish import Plan as Plan
from ._publish import Put as Put
from ._publish import plan_publication as plan_publication
from ._state import WRITE_RULES as WRITE_RULES
from ._state import Change as Change
from ._state import StoreState as StoreState
from ._state import key_ref as key_ref
from ._store import ConfigStore as ConfigStore
from ._store import StoreIOError as StoreIOError
