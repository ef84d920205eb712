"""Child specifications and the dependency order of a supervision tree. PURE.

A :class:`ChildSpec` names one long-running child: its ``serve`` function (the trimesh
``serve_*(..., *, task_status)`` shape, so "started" means "ready"), its restart policy, the
children it depends on, and how long it may take to stop gracefully.

Start order is a topological order of the ``depends_on`` graph (Kahn's algorithm). Ties are broken
by declaration order, so the same specs always give the same order; that order is the contract the
supervisor keeps: start in it, stop in its reverse. Configuration mistakes (duplicate names, unknown
or self dependencies, cycles) raise :class:`~trimesh.errors.ConfigError` naming the child and the
field, with a cycle spelled out (``a -> b -> a``).

The dependency graph also decides restarts (OTP's ``rest_for_one`` restricted to real dependencies):
when a child is restarted, every running child that depends on it, directly or transitively, is
stopped first (reverse order) and started again after it (start order). :func:`dependents_of`
computes that set.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ._policy import RestartPolicy

# OTP child spec default ``shutdown => 5000`` (ms) for workers: the grace period between the stop
# request and cancellation.
DEFAULT_SHUTDOWN_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """One child of a supervisor.

    ``serve`` is called as ``await serve(task_status=status)`` and must call
    ``status.started()`` once it is ready; it then runs until it returns, raises, or is stopped.
    ``depends_on`` names children that must be up before this one starts (and that, when restarted,
    restart this one too). ``shutdown_timeout`` is the grace period, in seconds, between the stop
    request (:func:`~trimesh.nursery.wait_stop_requested` returns) and cancellation.
    """

    name: str
    serve: Callable[..., Any]
    policy: RestartPolicy = RestartPolicy.PERMANENT
    depends_on: tuple[str, ...] = ()
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"child name must be a non-empty string, got {self.name!r}", path="name")
        where = f"child {self.name!r}"
        if not callable(self.serve):
            raise ConfigError(f"{where}: serve must be an async function, got {self.serve!r}",
                              path="serve")
        try:
            policy = RestartPolicy(self.policy)
        except ValueError:
            choices = ", ".join(p.value for p in RestartPolicy)
            raise ConfigError(f"{where}: unknown restart policy {self.policy!r} (one of {choices})",
                              path="policy") from None
        object.__setattr__(self, "policy", policy)
        deps = (self.depends_on,) if isinstance(self.depends_on, str) else tuple(self.depends_on)
        object.__setattr__(self, "depends_on", deps)
        timeout = self.shutdown_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout >= 0:
            raise ConfigError(f"{where}: shutdown_timeout must be seconds >= 0, got {timeout!r}",
                              path="shutdown_timeout")
        object.__setattr__(self, "shutdown_timeout", float(timeout))


def start_order(specs: Sequence[ChildSpec]) -> tuple[str, ...]:
    """Names of ``specs`` in start order: dependencies first, otherwise declaration order.

    Raises ConfigError for duplicate names, unknown or self dependencies, and cycles.
    """
    index: dict[str, int] = {}
    for i, spec in enumerate(specs):
        if not isinstance(spec, ChildSpec):
            raise ConfigError(f"expected a ChildSpec, got {spec!r}", path=f"children[{i}]")
        if spec.name in index:
            raise ConfigError(
                f"duplicate child name {spec.name!r} (also children[{index[spec.name]}])",
                path=f"children[{i}].name",
            )
        index[spec.name] = i
    dependents: dict[str, list[str]] = {spec.name: [] for spec in specs}
    waiting_on: dict[str, int] = {}
    for i, spec in enumerate(specs):
        for j, dep in enumerate(spec.depends_on):
            path = f"children[{i}].depends_on[{j}]"
            if dep == spec.name:
                raise ConfigError(f"child {spec.name!r} depends on itself", path=path)
            if dep not in index:
                raise ConfigError(f"child {spec.name!r} depends on unknown child {dep!r}", path=path)
        unique = set(spec.depends_on)
        for dep in unique:
            dependents[dep].append(spec.name)
        waiting_on[spec.name] = len(unique)
    ready = [index[name] for name, n in waiting_on.items() if n == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        name = specs[heapq.heappop(ready)].name
        order.append(name)
        for dependent in dependents[name]:
            waiting_on[dependent] -= 1
            if waiting_on[dependent] == 0:
                heapq.heappush(ready, index[dependent])
    if len(order) < len(specs):
        cycle = _find_cycle(specs, set(order))
        first = cycle[0]
        raise ConfigError(
            "dependency cycle: " + " -> ".join(cycle), path=f"children[{index[first]}].depends_on"
        )
    return tuple(order)


def _find_cycle(specs: Sequence[ChildSpec], placed: set[str]) -> list[str]:
    """One cycle among the children Kahn's algorithm could not place, as ``[a, b, ..., a]``."""
    deps = {s.name: [d for d in s.depends_on if d not in placed] for s in specs if s.name not in placed}
    # Every unplaced child has an unplaced dependency, so walking "first dependency" must loop.
    name = next(s.name for s in specs if s.name not in placed)
    seen: dict[str, int] = {}
    path: list[str] = []
    while name not in seen:
        seen[name] = len(path)
        path.append(name)
        name = deps[name][0]
    return path[seen[name]:] + [name]


def dependents_of(specs: Iterable[ChildSpec], name: str) -> frozenset[str]:
    """Every child that depends on ``name`` directly or transitively (not ``name`` itself)."""
    direct: dict[str, set[str]] = {}
    for spec in specs:
        for dep in spec.depends_on:
            direct.setdefault(dep, set()).add(spec.name)
    found: set[str] = set()
    stack = [name]
    while stack:
        for dependent in direct.get(stack.pop(), ()):
            if dependent not in found:
                found.add(dependent)
                stack.append(dependent)
    found.discard(name)
    return frozenset(found)
