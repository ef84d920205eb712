"""``trimesh members``, ``trimesh register``, ``trimesh deregister`` (CLI.md "Membership and
registration"): wiring for the control's ``/v1/members`` and ``/v1/instances`` (docs/control.md)."""

from __future__ import annotations

import json
from typing import Any

import click

from ..config import DEFAULT_NAMESPACE, PORT_PROTOCOLS, register_port_protocol
from ..control import DEFAULT_CONTROL_URL, ControlClient
from ..errors import TrimeshError
from ._main import cli
from ._sidecar import _annotations, _labels  # the same -l/-a KEY=VALUE parsing as run sidecar


def _client(url: str) -> ControlClient:
    try:
        return ControlClient(url)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


def _control_option(f: Any) -> Any:
    return click.option(
        "--control", "control_url", envvar="TRIMESH_CONTROL", default=DEFAULT_CONTROL_URL,
        show_default=True, metavar="URL",
        help="The control's config API (or TRIMESH_CONTROL).")(f)


def format_members(rows: list[dict[str, Any]]) -> str:
    """The ``NAME ADDRESS STATE SERVICE LABELS`` table (header always)."""
    table = [("NAME", "ADDRESS", "STATE", "SERVICE", "LABELS")]
    for row in rows:
        service = row.get("service") or "-"
        if row.get("service") and row.get("namespace") not in (None, "", DEFAULT_NAMESPACE):
            service = f"{row['service']}.{row['namespace']}"
        labels = ",".join(f"{k}={v}" for k, v in sorted((row.get("labels") or {}).items()))
        table.append((row["name"], row["address"], row["state"], service, labels or "-"))
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    return "\n".join("   ".join(f"{r[i]:<{widths[i]}}" for i in range(4)) + f"   {r[4]}"
                     for r in table)


def parse_port(value: str) -> tuple[str, int]:
    """``9080`` → ``("http", 9080)``; ``grpc:9090`` → ``("grpc", 9090)``; ``http-web:80`` →
    ``("http", 80)``; ``3306`` → ``("mysql", 3306)`` (trimesh/config/_protocols.py)."""
    return parse_port_choice(value)[:2]


def parse_port_choice(value: str) -> tuple[str, int, str]:
    """``(protocol, port, why)`` of a ``[NAME:]PORT`` argument: a name by Istio's
    ``<protocol>[-<suffix>]`` rule, a bare number by the well-known ports."""
    name, sep, port = value.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"expected [NAME:]PORT with PORT in 1..65535, got {value!r}",
                                 param_hint="PORT")
    if sep and not name:
        raise click.BadParameter(f"empty port name in {value!r}", param_hint="PORT")
    protocol, why = register_port_protocol(name if sep else None, int(port))
    if sep and protocol == "tcp" and name.lower().partition("-")[0] not in PORT_PROTOCOLS:
        why = f"port name {name!r} is not <protocol>[-suffix] with a protocol of " \
              f"{', '.join(PORT_PROTOCOLS)}: plain TCP, as in Istio"
    return protocol, int(port), why


@cli.command()
@click.option("-o", "--output", type=click.Choice(["short", "json"]), default="short",
              show_default=True, help="Output format.")
@_control_option
def members(output: str, control_url: str) -> None:
    """List every gossip member the control knows (name, address, state, service, labels), and
    the static instances registered through it (state 'static')."""
    with _client(control_url) as client:
        try:
            answer = client.members()
        except TrimeshError as exc:
            raise click.ClickException(str(exc)) from None
    rows = answer.get("members") or []
    if output == "json":
        click.echo(json.dumps(rows, indent=2, sort_keys=True))
    else:
        click.echo(format_members(rows))


@cli.command()
@click.argument("service")
@click.argument("ip")
@click.argument("ports", nargs=-1, required=True, metavar="[NAME:]PORT...")
@click.option("-l", "--label", "label", multiple=True, metavar="KEY=VALUE",
              help="An instance label (repeatable); app=<service> is added unless given.")
@click.option("-s", "--service-account", default="default", show_default=True)
@click.option("-n", "--namespace", default=DEFAULT_NAMESPACE, show_default=True)
@click.option("-a", "--annotation", "annotation", multiple=True, metavar="KEY=VALUE",
              help="A registration annotation (repeatable), e.g. auth.istio.io/9080=NONE to call "
                   "that port without mutual TLS.")
@_control_option
def register(service: str, ip: str, ports: tuple[str, ...], label: tuple[str, ...],
             service_account: str, namespace: str, annotation: tuple[str, ...],
             control_url: str) -> None:
    """Register static instances of SERVICE at IP (a VM without a sidecar), one per port; the
    port's NAME is its protocol by Istio's convention (http-web → http, unknown → tcp); a bare
    well-known port picks its protocol (3306 mysql, 6379 redis, 27017 mongo, 443 https), any other
    bare port is http. The output says what was chosen. Registering again replaces them."""
    choices = [parse_port_choice(p) for p in ports]
    parsed = [(protocol, port) for protocol, port, _ in choices]
    labels = _labels(label)
    annotations = _annotations(annotation)
    with _client(control_url) as client:
        try:
            reg = client.register(service, ip, parsed, namespace=namespace, labels=labels,
                                  service_account=service_account, annotations=annotations)
        except TrimeshError as exc:
            raise click.ClickException(str(exc)) from None
    port_text = " ".join(f"{p['name']}:{p['port']}" for p in reg["ports"])
    click.echo(f"Registered {service} at {ip} ({port_text}) in namespace {namespace} "
               f"at revision {reg['revision']}")
    for protocol, port, why in choices:
        if why != "named":  # say what was chosen when the user did not spell it out
            click.echo(f"  port {port}: {protocol} ({why})")


@cli.command()
@click.argument("service")
@click.argument("ip")
@click.option("-n", "--namespace", default=DEFAULT_NAMESPACE, show_default=True)
@_control_option
def deregister(service: str, ip: str, namespace: str, control_url: str) -> None:
    """Remove the static instances of SERVICE at IP."""
    with _client(control_url) as client:
        try:
            revision = client.deregister(service, ip, namespace=namespace)
        except TrimeshError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"Deregistered {service} at {ip} in namespace {namespace} at revision {revision}")
