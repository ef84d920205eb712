"""Discovery: SWIM + Lifeguard membership (pure), the service registry carried in member metadata,
and config dissemination as last-writer-wins entries. See docs/gossip.md."""

from ._broadcast import BroadcastQueue as BroadcastQueue
from ._config import PROFILES as PROFILES
from ._config import GossipConfig as GossipConfig
from ._config import gossip_profile as gossip_profile
from ._keyring import Keyring as Keyring
from ._keyring import KeyringError as KeyringError
from ._messages import ALIVE as ALIVE
from ._messages import DEAD as DEAD
from ._messages import LEFT as LEFT
from ._messages import MAX_INCARNATION as MAX_INCARNATION
from ._messages import SUSPECT as SUSPECT
from ._messages import PROTOCOL_VERSION as PROTOCOL_VERSION
from ._messages import ConfigEntry as ConfigEntry
from ._messages import WireCodec as WireCodec
from ._serve import DEFAULT_PORT as DEFAULT_PORT
from ._serve import GossipAgent as GossipAgent
from ._serve import parse_addr as parse_addr
from ._serve import serve_discovery as serve_discovery
from ._swim import INSTANCE_KIND as INSTANCE_KIND
from ._swim import ConfigEvent as ConfigEvent
from ._swim import Member as Member
from ._swim import MemberEvent as MemberEvent
from ._swim import Notify as Notify
from ._swim import Schedule as Schedule
from ._swim import Send as Send
from ._swim import Stream as Stream
from ._swim import SwimNode as SwimNode
