"""``trimesh run sidecar``: wiring for :func:`trimesh.sidecar.serve_sidecar` (CLI.md)."""

from __future__ import annotations

import logging
import os
import sys
import urllib.parse
from functools import partial
from urllib.parse import urlsplit

import click
import trio

from ..config import PROTOCOLS

SIDECAR_PROTOCOLS = tuple(p for p in PROTOCOLS if p != "https")  # https: TLS the mesh does not end
from ..errors import TrimeshError
from ._main import run

log = logging.getLogger("trimesh.sidecar")


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _start_cause(exc: BaseException) -> BaseException:
    """A child that failed to START did so for a reason the user can act on (a file, a port in
    use): show that, not the supervisor's wrapper. Crashes later keep the supervisor's message,
    which names the child and its restarts."""
    from ..nursery import ChildStartError

    if isinstance(exc, ChildStartError) and exc.__cause__ is not None:
        cause = _leaf(exc.__cause__)
        if isinstance(cause, (TrimeshError, OSError)):
            return cause
    return exc


def _labels(values: tuple[str, ...], hint: str = "-l/--label") -> dict[str, str]:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint=hint)
        out[key] = value
    return out


def _annotations(values: tuple[str, ...]) -> dict[str, str]:
    """``-a KEY=VALUE`` pairs, checked (``auth.istio.io/<port>`` takes NONE or MUTUAL_TLS)."""
    from ..config import AUTH_ANNOTATION, annotation_problem

    out = _labels(values, "-a/--annotation")
    bad = annotation_problem(out)
    if bad is not None:
        raise click.BadParameter(f"{bad[0]}: {bad[1]}", param_hint="-a/--annotation")
    return {k: v.upper() if k.startswith(AUTH_ANNOTATION) else v for k, v in out.items()}


def parse_upstream(value: str) -> tuple[str, int, int]:
    """``reviews:9080=19080`` -> ``("reviews", 9080, 19080)`` (``--upstream``, CLI.md)."""
    target, sep, local = value.rpartition("=")
    service, colon, port = target.rpartition(":")
    if (not sep or not colon or not service or not port.isdigit() or not local.isdigit()
            or not 0 < int(port) < 65536 or not 0 < int(local) < 65536):
        raise click.BadParameter(f"expected SERVICE:PORT=LOCAL_PORT with ports in 1..65535, "
                                 f"got {value!r}", param_hint="--upstream")
    return service, int(port), int(local)


def cert_flags(command):
    """The cert agent's four flags (``run sidecar``, ``run ingress``; docs/identity.md §11)."""
    for option in reversed([
        click.option("--ca", "ca_url", default=None, metavar="URL",
                     help="The CA service [default: the control's host, port 8060]; 'none' "
                          "turns certificates off. Giving --ca or --cert-dir runs the cert "
                          "agent (needed for mutual TLS)."),
        click.option("--ca-token-file", type=click.Path(dir_okay=False), default=None,
                     help="The CA token (trimesh ca token) [default: the mesh token in the "
                          "control's state dir on this host]."),
        click.option("--cert-dir", type=click.Path(file_okay=False), default=None,
                     help="Where cert-chain.pem, key.pem (0600) and root-cert.pem are written."),
        click.option("--cert-ttl", type=str, default=None, metavar="DURATION",
                     help="Lifetime to ask the CA for (e.g. 60s) [default: the CA's, 19h]."),
    ]):
        command = option(command)
    return command


def _cert_options(ca_url: str | None, token_file: str | None, cert_dir: str | None,
                  cert_ttl: str | None, control: str | None):
    """The cert agent's options, or ``None`` when no certificate is wanted (neither --ca nor
    --cert-dir, or --ca none). The default CA is the control's host on port 8060."""
    from ..ca import DEFAULT_CA_PORT, parse_ca_url
    from ..config import parse_duration
    from ..sidecar import CertOptions

    if (ca_url is None and cert_dir is None) or (ca_url or "").lower() in ("none", "off"):
        return None
    if ca_url is None:
        host = urlsplit(control).hostname if control else None
        ca_url = f"http://{host or '127.0.0.1'}:{DEFAULT_CA_PORT}"
    try:
        parse_ca_url(ca_url)
    except TrimeshError as exc:
        raise click.BadParameter(str(exc), param_hint="--ca") from None
    ttl = None
    if cert_ttl is not None:
        try:
            ttl = float(parse_duration(cert_ttl))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--cert-ttl") from None
    return CertOptions(ca_url=ca_url, token_file=token_file, cert_dir=cert_dir, ttl=ttl)


def _setup_logging(access_log: str) -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    access = logging.getLogger("trimesh.access")
    access.propagate = False
    access.setLevel(logging.INFO)
    if access_log == "off":
        access.disabled = True
        return
    handler: logging.Handler
    if access_log == "-":
        handler = logging.StreamHandler(sys.stderr)
    else:
        handler = logging.FileHandler(access_log)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access.addHandler(handler)


def _mixer_setup(addresses: tuple[str, ...], fail_open: bool, explicit: bool):
    """The sidecar setup hook of the Mixer policy stage (docs/mixer.md)."""
    from ..sidecar import MixerOptions, install_mixer

    for a in addresses:
        host, sep, port = a.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise click.BadParameter(f"{a!r} is not HOST:PORT", param_hint="--mixer")
    return partial(install_mixer, options=MixerOptions(addresses=addresses, fail_open=fail_open,
                                                       explicit=explicit))


@run.command("sidecar", context_settings={"ignore_unknown_options": False})
@click.option("--service", required=True, help="The service this instance belongs to.")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("--version", "version", default=None, help="Shorthand for -l version=V.")
@click.option("-l", "--label", "label", multiple=True, help="An instance label KEY=VALUE "
              "(repeatable); app=<service> is added unless given.")
@click.option("--service-account", default="default", show_default=True)
@click.option("-a", "--annotation", "annotation", multiple=True, metavar="KEY=VALUE",
              help="A registration annotation (repeatable): auth.istio.io/<port>=NONE serves "
                   "that port without mutual TLS (MUTUAL_TLS: with it), whatever the mesh says.")
@click.option("--port", type=click.IntRange(0, 65535), required=True,
              help="The service port; the inbound listener binds it on --address.")
@click.option("--protocol", type=click.Choice(SIDECAR_PROTOCOLS), default="http", show_default=True,
              help="How the service port is proxied: http/http2/grpc through the HTTP pipeline; "
                   "tcp, mongo, redis, mysql as a byte relay to the app (docs/protocols.md).")
@click.option("--upstream", "upstreams", multiple=True, metavar="SERVICE:PORT=LOCAL_PORT",
              help="A plain TCP listener on --address:LOCAL_PORT relaying each connection to "
                   "SERVICE:PORT (repeatable).")
@click.option("--app-port", type=click.IntRange(1, 65535), required=True,
              help="Where the app listens (on --app-address).")
@click.option("--app-address", default="127.0.0.1", show_default=True)
@click.option("--address", default="127.0.0.1", show_default=True,
              help="The instance's IP (its 'pod IP'); every listener binds it.")
@click.option("--proxy-port", type=click.IntRange(0, 65535), default=15001, show_default=True,
              help="Outbound proxy port (HTTP_PROXY for the app).")
@click.option("--admin-port", type=click.IntRange(0, 65535), default=15000, show_default=True)
@click.option("--gossip-port", type=click.IntRange(0, 65535), default=None,
              help="Gossip port on --address [default: 7946]; giving it or --join turns gossip on.")
@click.option("--join", multiple=True, metavar="HOST:PORT",
              help="A gossip member to join, e.g. the control's address:7946 (repeatable).")
@click.option("--gossip-key-file", default=None, metavar="FILE",
              help="The mesh key [default: gossip.key in the control's default state dir].")
@click.option("--gossip-profile", type=click.Choice(["lan", "local"]), default="lan",
              show_default=True, help="Gossip timing (docs/gossip.md).")
@click.option("--control", default=None, metavar="URL",
              help="The control's config API [default: $TRIMESH_CONTROL or "
                   "http://127.0.0.1:15010]; 'none' disables it.")
@click.option("--registry", type=click.Path(dir_okay=False), default=None,
              help="YAML list of static instances {service, namespace, address, port, labels}; "
                   "re-read when it changes.")
@click.option("--config", "config_files", type=click.Path(dir_okay=False), multiple=True,
              help="Config documents to load locally (repeatable); re-read when they change.")
@click.option("--drain-timeout", type=click.FloatRange(0), default=5.0, show_default=True,
              help="Seconds in-flight requests get after SIGTERM.")
@click.option("--access-log", default="-", show_default=True, metavar="FILE|-|off",
              help="Where access-log lines go ('-' is stderr).")
@click.option("--zipkin-address", default=None, metavar="HOST:PORT",
              help="Send Zipkin v2 spans to http://HOST:PORT/api/v2/spans (docs/telemetry.md).")
@click.option("--seed", type=int, default=None, hidden=True,
              help="Seed of the routing RNG (reproducible weighted picks in tests).")
@click.option("--health-checks", type=click.Choice(["app", "all", "off"]), default="app",
              show_default=True, help="What the health checker probes: the app; the app and every "
              "instance this sidecar routes to; nothing.")
@click.option("--health-interval", type=click.FloatRange(0.01), default=1.0, show_default=True,
              metavar="SECONDS", help="Seconds between health-check rounds.")
@click.option("--health-path", default="/health", show_default=True,
              help="Path the health checker GETs.")
@click.option("--egress-ca-file", type=click.Path(dir_okay=False, exists=True), default=None,
              help="CA certificates (PEM) that egress TLS origination trusts (EgressRule https "
                   "ports); default: the system trust store.")
@cert_flags
@click.option("--mixer", "mixer", multiple=True, metavar="HOST:PORT",
              help="A Mixer for the inbound policy checks (repeatable: tried in order) "
                   "[default: the control's host, port 9091]; 'none' turns checks off.")
@click.option("--policy-fail", type=click.Choice(["open", "closed"]), default="open",
              show_default=True, help="An uncached check with Mixer unreachable: let it pass "
              "(open) or answer 503 (closed). Cached checks keep answering either way.")
@click.argument("app_args", nargs=-1, type=click.UNPROCESSED)
def run_sidecar(service, namespace, version, label, service_account, annotation, port, protocol,
                upstreams,
                app_port,
                app_address, address, proxy_port, admin_port, gossip_port, join, gossip_key_file,
                gossip_profile, control, registry, config_files, drain_timeout, access_log,
                zipkin_address, seed, health_checks, health_interval, health_path,
                egress_ca_file, ca_url, ca_token_file, cert_dir, cert_ttl, mixer, policy_fail,
                app_args) -> None:
    """Run a sidecar: inbound proxy in front of the app, outbound proxy for the app's calls,
    admin server (/ready /stats /config_dump /clusters /metrics /certs); with --cert-dir or --ca,
    a cert agent that keeps the sidecar's workload certificate (docs/identity.md).

    With `-- APP ARGS...` the app is started once the sidecar is ready, with HTTP_PROXY set; the
    sidecar forwards SIGTERM/SIGINT to it and exits with its status.
    """
    from ..sidecar import DEFAULT_CONTROL_URL, SidecarConfig, serve_sidecar

    labels = _labels(label)
    if version:
        labels["version"] = version
    if control is None:
        control = os.environ.get("TRIMESH_CONTROL") or DEFAULT_CONTROL_URL
    if control.lower() in ("none", "off", ""):
        control = None
    config = SidecarConfig(
        service=service, namespace=namespace, labels=labels, service_account=service_account,
        port=port, protocol=protocol, app_port=app_port, app_address=app_address,
        address=address, proxy_port=proxy_port, admin_port=admin_port, control=control,
        registry=registry, config_files=list(config_files), drain_timeout=drain_timeout,
        app_argv=list(app_args), seed=seed, zipkin_address=zipkin_address)
    config.health_checks, config.health_interval = health_checks, health_interval
    config.upstreams = [parse_upstream(u) for u in upstreams]
    if not health_path.startswith("/"):
        raise click.BadParameter("must start with '/'", param_hint="--health-path")
    config.health_path = health_path
    config.egress_ca_file = egress_ca_file
    config.annotations = _annotations(annotation)
    if zipkin_address is not None:
        from ..telemetry import ZipkinExporter
        try:
            ZipkinExporter(zipkin_address)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--zipkin-address") from None
    _setup_logging(access_log)
    certs = _cert_options(ca_url, ca_token_file, cert_dir, cert_ttl, control)
    try:
        setups = []
        if certs is not None:
            from ..sidecar import install_cert_agent
            setups.append(partial(install_cert_agent, options=certs))
        if join or gossip_port is not None:
            from ..sidecar import GossipOptions, install_gossip
            try:
                options = GossipOptions(port=7946 if gossip_port is None else gossip_port,
                                        join=tuple(join), key_file=gossip_key_file,
                                        profile=gossip_profile)
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="--join") from None
            setups.append(partial(install_gossip, options=options))
        # no --mixer and no control: no Mixer to ask, the policy stage stays out
        if (mixer or control) and not any(m.lower() in ("none", "off") for m in mixer):
            explicit = bool(mixer)
            if not mixer and control:  # the control's Mixer
                host = urllib.parse.urlsplit(control).hostname or "127.0.0.1"
                mixer = (f"[{host}]:9091" if ":" in host else f"{host}:9091",)
            setups.append(_mixer_setup(tuple(mixer), policy_fail == "open", explicit))

        def setup(sidecar) -> None:
            for one in setups:
                one(sidecar)
        status = trio.run(partial(serve_sidecar, config, handle_signals=True, setup=setup))
    except BaseExceptionGroup as group:
        leaf = _start_cause(_leaf(group))
        if isinstance(leaf, TrimeshError):
            raise click.ClickException(str(leaf)) from None
        if isinstance(leaf, OSError):
            raise click.ClickException(f"sidecar {config.name}: {leaf}") from None
        raise
    except TrimeshError as exc:
        leaf = _start_cause(exc)
        if isinstance(leaf, OSError):
            raise click.ClickException(f"sidecar {config.name}: {leaf}") from None
        raise click.ClickException(str(leaf)) from None
    except OSError as exc:
        raise click.ClickException(f"sidecar {config.name}: {exc}") from None
    if status:
        sys.exit(status if status > 0 else 128 - status)
