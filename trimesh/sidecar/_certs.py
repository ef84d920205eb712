"""Wiring of the cert agent into a sidecar (``run sidecar --cert-dir/--ca/--ca-token-file``).

:func:`install_cert_agent` is a ``serve_sidecar(setup=...)`` hook, like gossip's
``install_gossip``: it adds the ``certs`` child (a :class:`trimesh.ca.CertAgent` for the sidecar's
identity ``spiffe://<domain>/ns/<namespace>/sa/<service-account>``) at the service stage and sets
``sidecar.certs`` (the :class:`trimesh.ca.CertStore` the TLS layer reads) and
``sidecar.cert_agent``, and has every new certificate loaded into ``sidecar.mesh_tls`` (the
contexts of mutual TLS). The admin server reads them: ``/certs`` shows the certificate, and
``/ready`` is 503 ``not ready: no certificate (...)`` until the store holds one (docs/identity.md
§10). The child reports started at once, so the admin port comes up and can say why.

The token: ``--ca-token-file``, or by default the mesh token in the control's state directory on
this host (``$XDG_STATE_HOME/trimesh/control/mesh-token``), which may claim any identity.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ..ca import CertAgent, CertStore, SpiffeId, mesh_token_path
from ..control import default_state_dir
from ..nursery import ChildSpec, cancel_on_stop


@dataclass(frozen=True)
class CertOptions:
    """The agent's settings: the CA's URL, the token file (``None``: the mesh token of the
    control's default state dir), the certificate directory (``None``: memory only) and a
    requested lifetime (``None``: the CA's default)."""

    ca_url: str
    token_file: str | os.PathLike[str] | None = None
    cert_dir: str | os.PathLike[str] | None = None
    ttl: float | None = None


def install_cert_agent(sidecar: Any, options: CertOptions, **agent_options: Any) -> CertAgent:
    """Add the cert agent to ``sidecar`` before its tree starts (module docstring).
    ``agent_options`` go to :class:`~trimesh.ca.CertAgent` (``wall_clock``, ``rng``, ``token``)."""
    cfg = sidecar.config
    identity = SpiffeId.of(cfg.namespace, cfg.service_account, cfg.domain)
    store = CertStore()
    if "token" not in agent_options:
        agent_options["token_file"] = options.token_file or mesh_token_path(default_state_dir())
    agent = CertAgent(identity, options.ca_url, cert_dir=options.cert_dir, store=store,
                      ttl=options.ttl, name=f"sidecar {cfg.name} cert agent", **agent_options)
    sidecar.add_child(ChildSpec("certs", cancel_on_stop(agent.serve),  # nothing to finish
                                description=f"cert agent for {identity} (CA {options.ca_url})"))
    mesh_tls = getattr(sidecar, "mesh_tls", None)
    if mesh_tls is not None:  # mutual TLS uses each new certificate for new connections
        store.on_change(mesh_tls.load)
    sidecar.certs = store
    sidecar.cert_agent = agent
    return agent
