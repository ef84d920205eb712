"""trimesh: the Istio service mesh rebuilt in Python on Trio.

This module is the public embedding API (docs/embedding.md); everything else lives in
subpackages:

- ``async with trimesh.open_mesh(service=..., registry=... | control=... | join=[...],
  config=[...]) as mesh:`` then ``await mesh.request(method, url, headers=..., content=...)`` or
  ``async with mesh.stream(...) as resp:`` — in-process, through the same routing, balancing,
  retries, timeouts, faults and telemetry as a sidecar, without a proxy hop;
- ``trimesh.serve_sidecar(trimesh.SidecarConfig(...), task_status=...)`` — the programmatic
  ``trimesh run sidecar``;
- ``handle = trimesh.start_in_thread(service=..., ...)`` — an outbound proxy in a background
  thread for apps that are not Trio; ``handle.proxy_url`` goes into ``HTTP_PROXY``.

The names are imported on first use (PEP 562), so ``import trimesh.config`` and the CLI do not
pay for Trio and the proxy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "open_mesh": "trimesh._embed",
    "start_in_thread": "trimesh._embed",
    "Mesh": "trimesh._embed",
    "MeshResponse": "trimesh._embed",
    "MeshThread": "trimesh._embed",
    "StreamedResponse": "trimesh._embed",
    "serve_sidecar": "trimesh.sidecar",
    "Sidecar": "trimesh.sidecar",
    "SidecarConfig": "trimesh.sidecar",
}

__all__ = [
    "Mesh", "MeshResponse", "MeshThread", "Sidecar", "SidecarConfig", "StreamedResponse",
    "__version__", "open_mesh", "serve_sidecar", "start_in_thread",
]

if TYPE_CHECKING:
    from ._embed import Mesh as Mesh
    from ._embed import MeshResponse as MeshResponse
    from ._embed import MeshThread as MeshThread
    from ._embed import StreamedResponse as StreamedResponse
    from ._embed import open_mesh as open_mesh
    from ._embed import start_in_thread as start_in_thread
    from .sidecar import Sidecar as Sidecar
    from .sidecar import SidecarConfig as SidecarConfig
    from .sidecar import serve_sidecar as serve_sidecar


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'trimesh' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
