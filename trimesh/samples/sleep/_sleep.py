"""sleep: a client workload that does nothing until it is stopped.

The Istio docs start a ``sleep`` pod (``/bin/sleep infinity``) so there is a place inside the mesh to
run ``curl`` from. Here the same role is a process the sidecar can own:

    trimesh run sidecar --service sleep ... -- python -m trimesh.samples.sleep

then ``curl`` through the sidecar's outbound proxy (``HTTP_PROXY``) from a shell. It exits with
status 0 on SIGTERM or SIGINT, which is what the sidecar forwards when it drains.
"""

from __future__ import annotations

import logging
import signal

import trio

log = logging.getLogger("trimesh.samples")


async def sleep_until_signalled() -> int:
    """Wait for SIGTERM or SIGINT; return the signal number received."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        log.info("sleep ready: idle until SIGTERM")
        async for signum in signals:
            return signum
    raise AssertionError("unreachable: the signal iterator never ends")


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m trimesh.samples.sleep",
                                     description="Sleep until SIGTERM/SIGINT (a place to run curl from)")
    parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    trio.run(sleep_until_signalled)
    return 0
