"""``trimesh run control``: wiring for :func:`trimesh.control.serve_control`, plus signals and logs."""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import click
import trio

from ..ca import DEFAULT_CA_PORT
from ..config import DEFAULT_DOMAIN, parse_duration
from ..control import DEFAULT_CONFIG_PORT, parse_store_url, serve_control
from ..discovery import DEFAULT_PORT as DEFAULT_GOSSIP_PORT
from ..discovery import PROFILES, parse_addr
from ..discovery import gossip_profile as gossip_profile_config
from ..errors import TrimeshError
from ._main import run
from ._serve import click_errors, serve_until_signal

log = logging.getLogger("trimesh.control")


def _ttl(text: str, hint: str) -> float:
    try:
        return float(parse_duration(text))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=hint) from None


@run.command("control")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the config store persists objects [default: "
                   "$XDG_STATE_HOME/trimesh/control, i.e. ~/.local/state/trimesh/control].")
@click.option("--store", "store_url", default=None, metavar="etcd://HOST:PORT[,HOST:PORT...]",
              help="Keep the config in this etcd cluster (v3 API; members tried in order, with "
                   "failover) instead of under --state-dir [default: the state directory].")
@click.option("--address", default="127.0.0.1", show_default=True,
              help="IP address the config API binds.")
@click.option("--config-port", type=click.IntRange(0, 65535), default=DEFAULT_CONFIG_PORT,
              show_default=True, help="Port of the config API (0 picks a free port).")
@click.option("--domain", default=DEFAULT_DOMAIN, show_default=True,
              help="The mesh's DNS domain (service names are NAME.NAMESPACE.svc.DOMAIN).")
@click.option("--gossip-port", type=click.IntRange(0, 65535), default=None,
              help="Gossip port (UDP and TCP) on --address [default: 7946; a free port when "
                   "--config-port is 0].")
@click.option("--join", multiple=True, metavar="HOST:PORT",
              help="A gossip member to join (repeatable).")
@click.option("--gossip-profile", type=click.Choice(sorted(PROFILES)), default="lan",
              show_default=True,
              help="Gossip timing: lan (memberlist's LAN defaults) or local (faster failure "
                   "detection for one host).")
@click.option("--no-gossip", is_flag=True, help="Run without a gossip member.")
@click.option("--ca-port", type=click.IntRange(0, 65535), default=None,
              help="Port of the CA service [default: 8060; a free port when --config-port is 0].")
@click.option("--no-ca", is_flag=True, help="Run without the CA (then `trimesh run ca`).")
@click.option("--workload-cert-ttl", default="19h", show_default=True, metavar="DURATION",
              help="The CA's default workload certificate lifetime.")
@click.option("--max-workload-cert-ttl", default="168h", show_default=True, metavar="DURATION",
              help="The longest lifetime a caller may ask the CA for.")
@click.option("--mixer-port", type=click.IntRange(0, 65535), default=None,
              help="The Mixer's port on --address [default: 9091; a free port when "
                   "--config-port is 0].")
@click.option("--no-mixer", is_flag=True, help="Run without the Mixer (run it alone with "
              "`trimesh run mixer`).")
@click.option("--prometheus-port", type=click.IntRange(0, 65535), default=None,
              help="The Mixer's Prometheus scrape port (GET /metrics) on --address [default: "
                   "42422; a free port when --config-port is 0].")
def run_control(state_dir: Path | None, store_url: str | None, address: str, config_port: int,
                domain: str, gossip_port: int | None, join: tuple[str, ...], gossip_profile: str,
                no_gossip: bool, ca_port: int | None, no_ca: bool, workload_cert_ttl: str,
                max_workload_cert_ttl: str, mixer_port: int | None, no_mixer: bool,
                prometheus_port: int | None) -> None:
    """Run the control process: the config store and its API, a gossip member that publishes
    every stored object and static instance (docs/gossip.md), the CA (docs/identity.md) and
    Mixer (docs/mixer.md).

    Logs one line when ready; Ctrl-C or SIGTERM stops it cleanly (exit 0).
    """
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for seed in join:
        try:
            parse_addr(seed)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--join") from None
    if store_url is not None:
        try:
            parse_store_url(store_url)
        except TrimeshError as exc:
            raise click.BadParameter(str(exc), param_hint="--store") from None
    if gossip_port is None:
        gossip_port = 0 if config_port == 0 else DEFAULT_GOSSIP_PORT
    if ca_port is None:
        ca_port = 0 if config_port == 0 else DEFAULT_CA_PORT
    ca_options = {"workload_ttl": _ttl(workload_cert_ttl, "--workload-cert-ttl"),
                  "max_workload_ttl": _ttl(max_workload_cert_ttl, "--max-workload-cert-ttl")}
    if mixer_port is None:
        mixer_port = 0 if config_port == 0 else 9091  # the Mixer's port (CLI.md)
    if prometheus_port is None:
        prometheus_port = 0 if config_port == 0 else 42422  # Istio's Mixer scrape port
    serve = partial(serve_control, ca_port=None if no_ca else ca_port,
                    ca_options=ca_options, state_dir=state_dir, store_url=store_url,
                    address=address,
                    config_port=config_port, domain=domain,
                    gossip_port=None if no_gossip else gossip_port, join=list(join),
                    gossip_config=gossip_profile_config(gossip_profile),
                    mixer_port=None if no_mixer else mixer_port,
                    prometheus_port=prometheus_port)
    with click_errors():
        trio.run(partial(serve_until_signal, "control", serve, log))
