"""``trimesh run ca`` and the ``trimesh ca`` tools (``token``, ``list``, ``root``, ``reissue``).

``trimesh ca token`` signs locally: it reads the CA's token secret from the state directory
(``<state dir>/ca/token-secret``, 0600), so only a user who can read the CA's state can mint tokens
and the CA need not be running. ``list``, ``root`` and ``reissue`` ask the CA service over HTTP
(``reissue`` with the mesh token). docs/identity.md §10–§11.
"""

from __future__ import annotations

import logging
import sys
import time
from functools import partial
from pathlib import Path

import click
import trio

from ..errors import TrimeshError
from ._main import cli, run
from ._serve import click_errors, serve_until_signal

log = logging.getLogger("trimesh.ca")

DEFAULT_CA_URL = "http://127.0.0.1:8060"
DEFAULT_TOKEN_TTL = "24h"  # trimesh: an identity token expires after a day unless told otherwise


def _duration(value: str, hint: str) -> float:
    from ..config import parse_duration
    try:
        return float(parse_duration(value))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=hint) from None


def _state_dir(state_dir: Path | None) -> Path:
    from ..control import default_state_dir
    return state_dir.expanduser() if state_dir is not None else default_state_dir()


def _run(fn, **options):
    with click_errors():
        return trio.run(partial(fn, **options))


@run.command("ca")
@click.option("--address", default="127.0.0.1", show_default=True, help="IP address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=8060, show_default=True)
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the root, its key, the token secret and the mesh token are kept "
                   "[default: the control's, ~/.local/state/trimesh/control].")
@click.option("--trust-domain", default="cluster.local", show_default=True)
@click.option("--workload-cert-ttl", default="19h", show_default=True, metavar="DURATION",
              help="Default lifetime of workload certificates.")
@click.option("--max-workload-cert-ttl", default="168h", show_default=True, metavar="DURATION",
              help="Longest lifetime a caller may ask for (longer is refused).")
@click.option("--root-cert-ttl", default="8760h", show_default=True, metavar="DURATION",
              help="Lifetime of a new self-signed root.")
@click.option("--self-signed-ca", type=click.BOOL, default=True, show_default=True,
              help="false: sign with the operator's CA (--signing-cert, --signing-key, "
                   "--root-cert, --cert-chain).")
@click.option("--signing-cert", type=click.Path(dir_okay=False), default=None, help="ca-cert.pem")
@click.option("--signing-key", type=click.Path(dir_okay=False), default=None, help="ca-key.pem")
@click.option("--root-cert", type=click.Path(dir_okay=False), default=None, help="root-cert.pem")
@click.option("--cert-chain", type=click.Path(dir_okay=False), default=None, help="cert-chain.pem")
@click.option("--plugin-dir", type=click.Path(file_okay=False), default=None,
              help="A directory with the four files above under their docs' names "
                   "(implies --self-signed-ca=false).")
def run_ca(address, port, state_dir, trust_domain, workload_cert_ttl, max_workload_cert_ttl,
           root_cert_ttl, self_signed_ca, signing_cert, signing_key, root_cert, cert_chain,
           plugin_dir) -> None:
    """Run the CA service alone (docs/identity.md): signs workload CSRs for callers with a
    token. Logs one line when ready; Ctrl-C or SIGTERM stops it."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    plugin = None
    if plugin_dir is not None:
        from ..ca import PLUGIN_FILE_NAMES
        base = Path(plugin_dir)
        plugin = {k: str(base / name) for k, name in PLUGIN_FILE_NAMES.items()}
        if not (base / PLUGIN_FILE_NAMES["cert_chain"]).exists():
            plugin["cert_chain"] = None
    elif not self_signed_ca or any((signing_cert, signing_key, root_cert, cert_chain)):
        if self_signed_ca:
            raise click.UsageError("--signing-cert/--signing-key/--root-cert/--cert-chain need "
                                   "--self-signed-ca=false")
        plugin = {"signing_cert": signing_cert, "signing_key": signing_key,
                  "root_cert": root_cert, "cert_chain": cert_chain}
    from ..ca import serve_ca

    serve = partial(serve_ca, state_dir=_state_dir(state_dir), address=address, port=port,
                    trust_domain=trust_domain,
                    workload_ttl=_duration(workload_cert_ttl, "--workload-cert-ttl"),
                    max_workload_ttl=_duration(max_workload_cert_ttl, "--max-workload-cert-ttl"),
                    root_ttl=_duration(root_cert_ttl, "--root-cert-ttl"), plugin=plugin)
    _run(serve_until_signal, name="ca", serve=serve, log=log)


@cli.group("ca")
def ca_group() -> None:
    """The CA: tokens, issued certificates, the root (docs/identity.md)."""


@ca_group.command("token")
@click.option("--service-account", required=True, help="The identity's service account.")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("--ttl", default=DEFAULT_TOKEN_TTL, show_default=True, metavar="DURATION|never",
              help="How long the token is valid.")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The CA's state directory (its token secret is read from it) [default: the "
                   "control's].")
def ca_token(service_account: str, namespace: str, ttl: str, state_dir: Path | None) -> None:
    """Print a token the CA honours for NAMESPACE/SERVICE_ACCOUNT only."""
    from ..ca import issue_token, token_secret_path
    from ..errors import CAError
    expires = None if ttl == "never" else time.time() + _duration(ttl, "--ttl")
    path = token_secret_path(_state_dir(state_dir))
    try:
        secret = path.read_bytes()
    except OSError as exc:
        raise click.ClickException(f"{path}: cannot read the CA's token secret "
                                   f"({exc.strerror or exc}); start the CA once, or pass "
                                   "--state-dir") from None
    try:
        click.echo(issue_token(secret, namespace, service_account, expires))
    except (CAError, TrimeshError) as exc:
        raise click.ClickException(str(exc)) from None


def _ca_option(fn):
    return click.option("--ca", "ca_url", default=DEFAULT_CA_URL, show_default=True,
                        metavar="URL", help="The CA service.")(fn)


async def _ask(ca_url: str, method: str, target: str, token: str | None = None, body=None):
    from ..ca import ca_request, parse_ca_url
    host, port = parse_ca_url(ca_url)
    if target == "/v1/root":
        from ..service import http_request
        try:
            stream = await trio.open_tcp_stream(host, port)
        except OSError as exc:
            raise TrimeshError(f"cannot reach the CA at {host}:{port}: {exc.strerror or exc}") \
                from None
        async with stream:
            answer = await http_request(stream, "GET", target, host=f"{host}:{port}")
        if answer.status != 200:
            raise TrimeshError(f"the CA answered {answer.status}")
        return answer.body
    return await ca_request(host, port, method, target, token=token, body=body)


@ca_group.command("list")
@_ca_option
@click.option("--identity", default=None, help="Only this identity (spiffe://...).")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
def ca_list(ca_url: str, identity: str | None, output: str) -> None:
    """List the certificates the CA issued (serial, identity, expiry, current)."""
    from urllib.parse import quote
    target = "/v1/certificates" + (f"?identity={quote(identity, safe='')}" if identity else "")
    answer = _run(_ask, ca_url=ca_url, method="GET", target=target)
    if output == "json":
        import json
        click.echo(json.dumps(answer, indent=1))
        return
    click.echo(f"{'SERIAL':34} {'IDENTITY':50} {'NOT AFTER':20} CURRENT")
    for c in answer["certificates"]:
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(c["not_after"]))
        current = "yes" if c["current"] else "no"
        click.echo(f"{c['serial']:34} {c['identity']:50} {when:20} {current}")


@ca_group.command("root")
@_ca_option
def ca_root(ca_url: str) -> None:
    """Print the CA's root certificate (PEM)."""
    sys.stdout.buffer.write(_run(_ask, ca_url=ca_url, method="GET", target="/v1/root"))


@ca_group.command("reissue")
@_ca_option
@click.option("--service-account", required=True)
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The mesh token [default: the one in the control's state dir].")
def ca_reissue(ca_url: str, service_account: str, namespace: str, token_file: Path | None) -> None:
    """Re-issue one identity's certificates: its cert agents renew at once."""
    from ..ca import mesh_token_path
    path = token_file or mesh_token_path(_state_dir(None))
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise click.ClickException(f"{path}: cannot read the mesh token ({exc.strerror or exc})") \
            from None
    answer = _run(_ask, ca_url=ca_url, method="POST", target="/v1/reissue", token=token,
                  body={"namespace": namespace, "service_account": service_account})
    click.echo(f"{answer['identity']}: {len(answer['superseded'])} certificate(s) superseded")
