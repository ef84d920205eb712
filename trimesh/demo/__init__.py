"""``trimesh demo``: the BookInfo mesh on one machine, and the docs' traffic tasks as checks.

The launcher (:mod:`._mesh`) starts a control and every instance with its sidecar on loopback
addresses (:mod:`._layout`), the sidecars finding each other by gossip through the control;
:mod:`._page` reads what a product page shows; :mod:`._scenarios` walks the docs' tasks
(traffic-tasks.md §2–5) against a running mesh for ``trimesh demo --check``.
"""

from ._layout import CONTROL_PORT as CONTROL_PORT
from ._layout import DEMO_BLOCK as DEMO_BLOCK
from ._layout import GOSSIP_PORT as GOSSIP_PORT
from ._layout import GOSSIP_PROFILE as GOSSIP_PROFILE
from ._layout import SLEEP as SLEEP
from ._layout import ClientWorkload as ClientWorkload
from ._layout import GossipProgress as GossipProgress
from ._layout import Member as Member
from ._layout import MeshPlan as MeshPlan
from ._layout import check_block as check_block
from ._layout import gossip_progress as gossip_progress
from ._layout import plan_mesh as plan_mesh
from ._mesh import DemoError as DemoError
from ._mesh import DemoMesh as DemoMesh
from ._mesh import PageLoad as PageLoad
from ._mesh import Process as Process
from ._mesh import StopSummary as StopSummary
from ._mesh import default_control_address as default_control_address
from ._mesh import open_demo_mesh as open_demo_mesh
from ._page import PageView as PageView
from ._page import read_page as read_page
from ._run import run_demo as run_demo
from ._run import try_commands as try_commands
from ._run import write_rule_files as write_rule_files
from ._scenarios import ScenarioResult as ScenarioResult
from ._scenarios import run_scenarios as run_scenarios
from ._verdicts import Verdict as Verdict
