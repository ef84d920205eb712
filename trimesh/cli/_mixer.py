"""``trimesh run mixer``: a standalone Mixer (check, quota, report) fed by the control's config API."""

from __future__ import annotations

import logging
import os
import signal
from functools import partial

import click
import trio

from ..errors import TrimeshError
from ._main import run

log = logging.getLogger("trimesh.mixer")


async def _serve_until_signal(address: str, port: int, control: str | None) -> None:
    from ..mixer import serve_mixer

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(serve_mixer, address, port, control=control))
            async for signum in signals:
                log.info("mixer stopping (%s)", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break


@run.command("mixer")
@click.option("--address", default="127.0.0.1", show_default=True, help="IP address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=9091, show_default=True,
              help="The Mixer port (the sidecars' --mixer).")
@click.option("--prometheus-port", type=click.IntRange(0, 65535), default=42422,
              show_default=True, help="Reserved for the telemetry adapters' scrape endpoint "
              "(not served yet).")
@click.option("--control", default=None, metavar="URL",
              help="The control's config API the Mixer config comes from [default: "
                   "$TRIMESH_CONTROL or http://127.0.0.1:15010].")
def run_mixer(address: str, port: int, prometheus_port: int, control: str | None) -> None:
    """Run a Mixer: Check, Quota and Report for the sidecars (docs/mixer.md)."""
    from ..sidecar import DEFAULT_CONTROL_URL

    if control is None:
        control = os.environ.get("TRIMESH_CONTROL") or DEFAULT_CONTROL_URL
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        trio.run(_serve_until_signal, address, port, control)
    except BaseExceptionGroup as group:
        leaf: BaseException = group
        while isinstance(leaf, BaseExceptionGroup) and len(leaf.exceptions) == 1:
            leaf = leaf.exceptions[0]
        if isinstance(leaf, (TrimeshError, OSError)):
            raise click.ClickException(str(leaf)) from None
        raise
    except (TrimeshError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
