"""Public test kit: simulated network, fake upstreams, gossip cluster driver."""

from ._upstream import FakeUpstream as FakeUpstream
from ._upstream import serve_upstream as serve_upstream
from ._cluster import SimCluster as SimCluster
from ._simnet import SimNetwork as SimNetwork
from ._simnet import TrioSimNet as TrioSimNet
