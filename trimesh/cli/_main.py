"""Top-level click group. Subcommands live in sibling modules, imported at the bottom so they can
attach themselves to ``cli`` and ``run``."""

from __future__ import annotations

import click



@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """trimesh: the Istio service mesh on Trio."""


@cli.group()
def run() -> None:
    """Run a mesh process: control or sidecar."""


def main() -> None:
    cli()


# Subcommand modules (each attaches its commands to `cli` or `run`):
from . import _config_cmds, _control  # noqa: E402,F401
from . import _sidecar  # noqa: E402,F401
from . import _ingress  # noqa: E402,F401
from . import _demo  # noqa: E402,F401
from . import _members  # noqa: E402,F401
from . import _ca  # noqa: E402,F401
from . import _mixer  # noqa: E402,F401
