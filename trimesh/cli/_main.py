"""Top-level click group. Subcommands are added by the modules that wire them."""

from __future__ import annotations

import click

from .. import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """trimesh: the Istio service mesh on Trio."""


@cli.command()
def version() -> None:
    """Print the client version."""
    click.echo(f"trimesh {__version__}")


def main() -> None:
    cli()
