"""``trimesh demo [--check | --write-rules DIR]``: wiring for :func:`trimesh.demo.run_demo` (CLI.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..demo import CONTROL_PORT, DEMO_BLOCK
from ._main import cli


@cli.command("demo")
@click.option("--check", is_flag=True,
              help="Run the docs' traffic tasks against the mesh, print PASS/FAIL per task, stop, "
                   "and exit 0 only if all passed.")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the demo's control keeps its objects [default: a temporary directory].")
@click.option("--addresses", "block", default=DEMO_BLOCK, show_default=True, metavar="A.B.C",
              help="The loopback block the instances get addresses in (A.B.C.2, A.B.C.3, ...).")
@click.option("--control-port", type=click.IntRange(1, 65535), default=CONTROL_PORT,
              show_default=True, help="The demo's control API port.")
@click.option("--write-rules", "rules_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, metavar="DIR",
              help="Write the docs' rule files under DIR/samples/ (DIR/samples/bookinfo/kube/"
                   "route-rule-all-v1.yaml ...) so the docs' `create -f samples/...` lines work "
                   "from DIR, and exit; no mesh is started.")
@click.option("--mtls/--no-mtls", default=True, show_default=True,
              help="Mutual TLS between every sidecar (MeshConfig authPolicy MUTUAL_TLS, each "
                   "sidecar and the ingress with a certificate from the control's CA), the page "
                   "served through the ingress; --no-mtls: plaintext, the page also at "
                   "productpage's sidecar.")
@click.option("--seed", type=int, default=None, hidden=True,
              help="Seed the sidecars' routing RNGs (reproducible weighted picks in tests).")
def demo(check: bool, state_dir: Path | None, block: str, control_port: int,
         rules_dir: Path | None, mtls: bool, seed: int | None) -> None:
    """The BookInfo mesh on this machine: a control and productpage, details, reviews v1/v2/v3 and
    ratings, each behind its own sidecar on its own loopback address, mutual TLS between the
    sidecars, an ingress in front.

    Prints the product page's URL and the docs' commands to try; Ctrl-C stops everything.
    """
    from ..demo import run_demo, write_rule_files

    if rules_dir is not None:
        sys.exit(write_rule_files(rules_dir, echo=lambda line: click.echo(line),
                                  error=lambda line: click.echo(line, err=True)))
    status = run_demo(check=check, state_dir=state_dir, block=block, control_port=control_port,
                      seed=seed, mtls=mtls, echo=lambda line: click.echo(line),
                      error=lambda line: click.echo(line, err=True))
    sys.exit(status)
