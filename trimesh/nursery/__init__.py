"""Supervision: child specs, dependency-ordered start, restart policy and intensity, graceful stop.

The restart decisions (:mod:`._policy`) and the start order (:mod:`._spec`) are PURE; the Trio
supervisor (:mod:`._supervisor`) applies them. Child processes run in their own process group and
are stopped as a group (:mod:`._group`: the stop sequence and the exit status, PURE; the Trio
:class:`AppProcess` and the synchronous :class:`GroupPopen` apply them). See docs/supervision.md.
"""

from ._errors import ChildStartError as ChildStartError
from ._errors import RestartIntensityError as RestartIntensityError
from ._errors import SupervisorError as SupervisorError
from ._policy import DECISIONS as DECISIONS
from ._policy import DEFAULT_MAX_RESTARTS as DEFAULT_MAX_RESTARTS
from ._policy import DEFAULT_RESTART_WINDOW as DEFAULT_RESTART_WINDOW
from ._policy import Action as Action
from ._policy import Decision as Decision
from ._policy import ExitKind as ExitKind
from ._policy import RestartPolicy as RestartPolicy
from ._policy import RestartTracker as RestartTracker
from ._policy import RestartTrackerStatistics as RestartTrackerStatistics
from ._group import DEFAULT_APP_STOP_TIMEOUT as DEFAULT_APP_STOP_TIMEOUT
from ._group import KILL_TIMEOUT as KILL_TIMEOUT
from ._group import StopStep as StopStep
from ._group import child_pids as child_pids
from ._group import describe_exit as describe_exit
from ._group import exit_status as exit_status
from ._group import group_alive as group_alive
from ._group import group_members as group_members
from ._group import pid_runs as pid_runs
from ._group import read_cmdline as read_cmdline
from ._group import signal_group as signal_group
from ._group import stop_steps as stop_steps
from ._popen import GroupPopen as GroupPopen
from ._popen import ProcessGroup as ProcessGroup
from ._popen import log_tail as log_tail
from ._popen import spawn_logged as spawn_logged
from ._popen import stop_processes as stop_processes
from ._process import AppProcess as AppProcess
from ._process import local_no_proxy as local_no_proxy
from ._process import serve_signals as serve_signals
from ._spec import DEFAULT_SHUTDOWN_TIMEOUT as DEFAULT_SHUTDOWN_TIMEOUT
from ._spec import ChildSpec as ChildSpec
from ._spec import dependents_of as dependents_of
from ._spec import start_order as start_order
from ._supervisor import ChildState as ChildState
from ._supervisor import ChildStatistics as ChildStatistics
from ._supervisor import Supervisor as Supervisor
from ._supervisor import SupervisorPhase as SupervisorPhase
from ._supervisor import SupervisorStatistics as SupervisorStatistics
from ._supervisor import cancel_on_stop as cancel_on_stop
from ._supervisor import open_supervisor as open_supervisor
from ._supervisor import serve_supervisor as serve_supervisor
from ._supervisor import stop_requested as stop_requested
from ._supervisor import wait_stop_requested as wait_stop_requested
