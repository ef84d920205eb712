"""``trimesh run mixer``: a standalone Mixer (check, quota, report) fed by the control's config API."""

from __future__ import annotations

import logging
import os
from functools import partial

import click
import trio

from ._main import run
from ._serve import click_errors, serve_until_signal

log = logging.getLogger("trimesh.mixer")


@run.command("mixer")
@click.option("--address", default="127.0.0.1", show_default=True, help="IP address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=9091, show_default=True,
              help="The Mixer port (the sidecars' --mixer).")
@click.option("--prometheus-port", type=click.IntRange(0, 65535), default=42422,
              show_default=True, help="Where GET /metrics serves the prometheus handlers' "
              "metrics (Istio's 42422; 0: a free port).")
@click.option("--control", default=None, metavar="URL",
              help="The control's config API the Mixer config comes from [default: "
                   "$TRIMESH_CONTROL or http://127.0.0.1:15010].")
def run_mixer(address: str, port: int, prometheus_port: int, control: str | None) -> None:
    """Run a Mixer: Check, Quota and Report for the sidecars (docs/mixer.md)."""
    from ..sidecar import DEFAULT_CONTROL_URL

    if control is None:
        control = os.environ.get("TRIMESH_CONTROL") or DEFAULT_CONTROL_URL
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from ..mixer import serve_mixer

    serve = partial(serve_mixer, address, port, control=control,
                    prometheus_port=prometheus_port)
    with click_errors(OSError):  # a port in use is a one-line error too
        trio.run(partial(serve_until_signal, "mixer", serve, log))
