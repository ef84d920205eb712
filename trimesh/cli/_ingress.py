"""``trimesh run ingress``: wiring for a sidecar that serves Ingress objects (CLI.md)."""

from __future__ import annotations

import os
from functools import partial

import click
import trio

from ..errors import TrimeshError
from ._main import run
from ._sidecar import _cert_options, _leaf, _setup_logging, _start_cause, cert_flags

INGRESS_SERVICE = "istio-ingress"  # the source name route rules match (traffic-tasks.md IN9)
INGRESS_SERVICE_ACCOUNT = "istio-ingress-service-account"  # Istio 0.x's ingress identity


@run.command("ingress")
@click.option("--address", default="127.0.0.1", show_default=True,
              help="The IP the ingress listens on.")
@click.option("--port", type=click.IntRange(0, 65535), default=80, show_default=True,
              help="The HTTP port.")
@click.option("--tls-port", type=click.IntRange(0, 65535), default=443, show_default=True,
              help="The HTTPS port (with --tls-cert/--tls-key).")
@click.option("--tls-cert", type=click.Path(dir_okay=False, exists=True), default=None,
              help="The certificate (PEM) every HTTPS client gets.")
@click.option("--tls-key", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Its private key (PEM).")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("--admin-port", type=click.IntRange(0, 65535), default=15000, show_default=True)
@click.option("--gossip-port", type=click.IntRange(0, 65535), default=None,
              help="Join the mesh's gossip on this port (7946 with --join).")
@click.option("--join", multiple=True, metavar="HOST:PORT", help="A gossip member to join.")
@click.option("--gossip-key-file", default=None, metavar="FILE")
@click.option("--gossip-profile", type=click.Choice(["lan", "local"]), default="lan",
              show_default=True)
@click.option("--control", default=None, metavar="URL",
              help="The control's config API ($TRIMESH_CONTROL, http://127.0.0.1:15010); none "
                   "to run from files.")
@click.option("--registry", type=click.Path(dir_okay=False), default=None,
              help="Static instances (YAML).")
@click.option("--config", "config_files", type=click.Path(dir_okay=False), multiple=True,
              help="Config objects (YAML), e.g. the Ingress and its route rules.")
@click.option("--drain-timeout", type=click.FloatRange(0), default=5.0, show_default=True)
@click.option("--access-log", default="-", show_default=True, metavar="FILE|-|off")
@click.option("--service-account", default=INGRESS_SERVICE_ACCOUNT, show_default=True,
              help="The identity the ingress calls the mesh with under mutual TLS.")
@cert_flags
@click.option("--seed", type=int, default=None, hidden=True)
def run_ingress(address, port, tls_port, tls_cert, tls_key, namespace, admin_port, gossip_port,
                join, gossip_key_file, gossip_profile, control, registry, config_files,
                drain_timeout, access_log, service_account, ca_url, ca_token_file, cert_dir,
                cert_ttl, seed) -> None:
    """Run the mesh's ingress: serves the Ingress objects (HTTP on --port, HTTPS on --tls-port
    with one certificate), routing into the mesh as source istio-ingress {istio: ingress}, so
    route rules can apply to traffic entering the mesh (docs/ingress.md)."""
    from ..sidecar import (DEFAULT_CONTROL_URL, IngressOptions, SidecarConfig, install_ingress,
                           serve_sidecar)

    if control is None:
        control = os.environ.get("TRIMESH_CONTROL") or DEFAULT_CONTROL_URL
    if control.lower() in ("none", "off", ""):
        control = None
    config = SidecarConfig(
        service=INGRESS_SERVICE, namespace=namespace, labels={"istio": "ingress"}, port=0,
        app_port=None, proxy_port=None, address=address, admin_port=admin_port, control=control,
        registry=registry, config_files=list(config_files), drain_timeout=drain_timeout,
        seed=seed, service_account=service_account)
    config.health_checks = "off"
    options = IngressOptions(port=port, tls_port=tls_port, tls_cert=tls_cert, tls_key=tls_key)
    _setup_logging(access_log)
    certs = _cert_options(ca_url, ca_token_file, cert_dir, cert_ttl, control)

    def setup(sidecar) -> None:
        install_ingress(sidecar, options)
        if certs is not None:  # its identity: mutual TLS into the mesh when it is on
            from ..sidecar import install_cert_agent
            install_cert_agent(sidecar, certs)
        if join or gossip_port is not None:
            from ..sidecar import GossipOptions, install_gossip
            install_gossip(sidecar, GossipOptions(
                port=7946 if gossip_port is None else gossip_port, join=tuple(join),
                key_file=gossip_key_file, profile=gossip_profile))

    try:
        trio.run(partial(serve_sidecar, config, handle_signals=True, setup=setup))
    except BaseExceptionGroup as group:
        leaf = _start_cause(_leaf(group))
        if isinstance(leaf, (TrimeshError, OSError)):
            raise click.ClickException(f"ingress: {leaf}") from None
        raise
    except (TrimeshError, OSError) as exc:
        raise click.ClickException(f"ingress: {_start_cause(exc)}") from None
