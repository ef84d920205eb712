"""What the service commands (``trimesh run control|ca|mixer``) share: run a service until
SIGINT or SIGTERM, and turn an error found while starting it into a one-line click error."""

from __future__ import annotations

import logging
import signal
from contextlib import contextmanager
from typing import Awaitable, Callable, Iterator

import click
import trio

from ..errors import TrimeshError


def leaf_error(exc: BaseException) -> BaseException:
    """The one exception inside nested single-member exception groups (trio wraps task errors),
    followed through ``raise ... from`` to the TrimeshError that caused it, if any."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    while exc.__cause__ is not None and not isinstance(exc, TrimeshError):
        exc = exc.__cause__
    return exc


@contextmanager
def click_errors(*also: type[BaseException]) -> Iterator[None]:
    """A TrimeshError (or one of ``also``) escaping the block, alone or as the one leaf of a
    task group, becomes ``click.ClickException`` (its message, no traceback)."""
    kinds = (TrimeshError, *also)
    try:
        yield
    except BaseExceptionGroup as group:
        leaf = leaf_error(group)
        if isinstance(leaf, kinds):
            raise click.ClickException(str(leaf)) from None
        raise
    except kinds as exc:
        raise click.ClickException(str(exc)) from None


async def serve_until_signal(name: str, serve: Callable[..., Awaitable[object]],
                             log: logging.Logger) -> None:
    """Start ``serve`` (``nursery.start``-able: it reports started once it listens) and run it
    until SIGINT or SIGTERM, logged as ``<name> stopping (SIGTERM)``, then cancel it."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(serve)
            async for signum in signals:
                log.info("%s stopping (%s)", name, signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break
