"""Wiring Mixer's policy stage into a sidecar (``serve_sidecar(setup=...)``), the way
``install_gossip`` wires gossip: ``run sidecar --mixer HOST:PORT --policy-fail open|closed``.

The inbound pipeline gets a :class:`trimesh.mixer.PolicyCheck` as ``sidecar.inbound.policy``:
the ``destination.*`` attributes are this sidecar's own (service FQDN, namespace, labels, address,
port); the snapshot it follows is the sidecar's (its version drops the check cache, its
MeshConfig's ``disablePolicyChecks`` / ``mixerAddress`` switch the stage, its instances are the
peers whose source header is believed). Without ``--mixer`` the Mixer is the control's
(``--control``'s host, port 9091), unless the MeshConfig sets another ``mixerAddress``. The outbound names this
workload to the callee in :data:`trimesh.mixer.SOURCE_HEADER` (docs/mixer.md, "Source
attributes" — and its trust caveat until mTLS). The inbound's request records are batched to
the same Mixer as Reports by a ``mixer-reports`` child.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import service_fqdn
from ..mixer import (SOURCE_HEADER, MixerClient, PolicyCheck, Reporter, ReportingLog,
                     source_header_value)
from ..nursery import ChildSpec

__all__ = ["MixerOptions", "install_mixer"]


@dataclass(frozen=True)
class MixerOptions:
    """``addresses``: Mixer ``HOST:PORT``s in order of preference (the CLI's default: the
    control's host, port 9091; empty: MeshConfig's ``mixerAddress``); ``fail_open``: an uncached check with every Mixer unreachable passes (the
    default, Istio's ``FAIL_OPEN``) or gets 503."""

    addresses: tuple[str, ...] = ()
    fail_open: bool = True
    explicit: bool = False  # the addresses came from --mixer: MeshConfig's mixerAddress is ignored


def install_mixer(sidecar: Any, options: MixerOptions = MixerOptions()) -> PolicyCheck:
    cfg = sidecar.config
    fqdn = service_fqdn(cfg.service, cfg.namespace, cfg.domain)
    labels = {"app": cfg.service, **cfg.labels}  # app=<service> unless given (CLI.md)
    destination = {"destination.service": fqdn, "destination.namespace": cfg.namespace,
                   "destination.labels": labels, "destination.ip": cfg.address}
    if cfg.port:
        destination["destination.port"] = cfg.port
    if cfg.service_account:
        destination["destination.user"] = (
            f"{cfg.domain}/ns/{cfg.namespace}/sa/{cfg.service_account}")
    client = MixerClient(options.addresses) if options.addresses else None

    def instances() -> int:
        snap = sidecar.snapshot
        return len(snap.instances_of(fqdn)) if snap is not None else 1

    policy = PolicyCheck(client, destination, snapshot=lambda: sidecar.snapshot,
                         fail_open=options.fail_open, instances_of_destination=instances,
                         follow_mesh_address=not options.explicit)
    sidecar.inbound.policy = policy
    sidecar.inbound.private_headers = frozenset({SOURCE_HEADER})  # read by the check, not the app's
    sidecar.outbound.source_attributes = (
        SOURCE_HEADER, source_header_value(cfg.service, cfg.namespace, labels))
    sidecar.mixer = policy
    # Reports: the inbound's records, batched to the same Mixer by the mixer-reports child
    reporter = Reporter(lambda: policy.client if policy.enabled else None)
    sidecar.inbound.access_log = ReportingLog(sidecar.inbound.access_log, reporter)
    sidecar.add_child(ChildSpec("mixer-reports", reporter.serve,
                                description="batches request reports to Mixer"))
    policy.reporter = reporter
    return policy
