"""istioctl's config verbs: create, replace, delete, get, validate; and version, completion.

Argument wiring and output only: parsing and validation are :mod:`trimesh.config`'s, the HTTP client
is :class:`trimesh.control.ControlClient`.

Multi-document input (create/replace): every document is parsed and validated first, and if any is
invalid nothing is sent. Then the objects are written in order; the first refused write (exists,
missing, refused by the control) stops the command, which reports how many were applied before it
and how many were not attempted. ``delete`` tries every object and reports each failure.
"""

from __future__ import annotations

from typing import Any

import click

from .. import __version__
from .. import mixer as _mixer  # noqa: F401  (installs the expression type checker into config)
from ..config import (DEFAULT_NAMESPACE, ConfigObject, all_kinds, dump_json, dump_yaml, load_file,
                      lookup_kind, object_from_dict)
from ..control import DEFAULT_CONTROL_URL, MAX_REQUEST_BYTES, ControlClient, key_ref
from ..errors import ConfigError, ConflictError, NotFoundError, TrimeshError
from ._main import cli

VERSION_TIMEOUT = 3.0  # seconds `trimesh version` waits for the control


# -- shared options and helpers ----------------------------------------------------------------


def _control_option(f: Any) -> Any:
    return click.option(
        "--control", "control_url", envvar="TRIMESH_CONTROL", default=DEFAULT_CONTROL_URL,
        show_default=True, metavar="URL",
        help="The control's config API (or TRIMESH_CONTROL).")(f)


def _namespace_option(f: Any) -> Any:
    return click.option("-n", "--namespace", default=None, metavar="NAMESPACE",
                        help="Namespace for documents that set none [default: default].")(f)


def _file_option(f: Any) -> Any:
    return click.option("-f", "--file", "file", default=None, metavar="FILE|-",
                        help="YAML file with one or more documents ('-' or none: standard input).")(f)


class KindType(click.ParamType):
    """A config kind in any spelling lookup_kind accepts; completes with the kinds' plurals."""

    name = "KIND"

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        info = lookup_kind(str(value))
        if info is None:
            self.fail(f"unknown kind {value!r}; known kinds: {_known_kinds()}", param, ctx)
        return info.kind

    def shell_complete(self, ctx: Any, param: Any, incomplete: str) -> list[Any]:
        from click.shell_completion import CompletionItem

        names = sorted({k.plural for k in all_kinds()} | {k.type_name for k in all_kinds()})
        return [CompletionItem(n) for n in names if n.startswith(incomplete.lower())]


def _known_kinds() -> str:
    return ", ".join(sorted(k.type_name for k in all_kinds()))


def _client(url: str) -> ControlClient:
    try:
        return ControlClient(url)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


def load_objects(path: str | None, namespace: str | None) -> tuple[str, list[ConfigObject]]:
    """Every document of FILE (or stdin), validated; a ConfigError aborts before anything is sent.

    A document's own ``metadata.namespace`` wins over ``-n``. Each object must also fit in one API
    request (``MAX_REQUEST_BYTES``)."""
    source = "<stdin>" if path in (None, "-") else str(path)
    notes: list[str] = []
    try:
        objects = load_file(path or "-", default_namespace=namespace, notes=notes)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    for note in notes:  # repairs the loader made (e.g. the docs' unquoted `*.foo.com`)
        click.echo(f"note: {note}", err=True)
    if not objects:
        raise click.ClickException(f"{source}: no config documents found")
    for index, obj in enumerate(objects):
        size = len(dump_json(obj, indent=None).encode())
        if size > MAX_REQUEST_BYTES:
            error = ConfigError(f"{obj.ref} is {size} bytes as JSON, more than the control accepts "
                                f"({MAX_REQUEST_BYTES} bytes)", source=source, document=index)
            raise click.ClickException(str(error))
    return source, objects


def _ref(doc: dict[str, Any]) -> str:
    meta = doc.get("metadata") or {}
    return key_ref((doc.get("kind", "?"), meta.get("namespace", DEFAULT_NAMESPACE),
                    meta.get("name", "?")))


def _revision(doc: dict[str, Any]) -> str:
    return str((doc.get("metadata") or {}).get("resourceVersion", "?"))


def _fail(message: str) -> click.ClickException:
    return click.ClickException(message)


# -- create / replace --------------------------------------------------------------------------


def _write_all(verb: str, done: str, path: str | None, namespace: str | None,
               control_url: str) -> None:
    source, objects = load_objects(path, namespace)
    total = len(objects)
    with _client(control_url) as client:
        for index, obj in enumerate(objects):
            try:
                stored = (client.create if verb == "create" else client.replace)(obj.to_dict())
            except TrimeshError as exc:  # refused, or the control went away
                refused = isinstance(exc, (ConflictError, NotFoundError, ConfigError))
                where = source if total == 1 else f"{source}, document {index + 1} of {total}"
                summary = "" if total == 1 else (
                    f"; {index} of {total} objects {done.lower()} before it, "
                    f"{total - index - 1} not attempted")
                raise _fail(f"{exc} ({where}){summary}" if refused or index else str(exc)) from None
            click.echo(f"{done} config {_ref(stored)} at revision {_revision(stored)}")


@cli.command()
@_file_option
@_namespace_option
@_control_option
def create(file: str | None, namespace: str | None, control_url: str) -> None:
    """Create config objects from YAML (fails if one exists).

    All documents are validated first; if any is invalid nothing is created. Objects are then created
    in order, stopping at the first refused one.
    """
    _write_all("create", "Created", file, namespace, control_url)


@cli.command()
@_file_option
@_namespace_option
@_control_option
def replace(file: str | None, namespace: str | None, control_url: str) -> None:
    """Replace existing config objects from YAML (fails if one does not exist).

    All documents are validated first; if any is invalid nothing is replaced. Objects are then
    replaced in order, stopping at the first refused one.
    """
    _write_all("replace", "Updated", file, namespace, control_url)


# -- delete ------------------------------------------------------------------------------------


@cli.command()
@click.argument("kind", type=KindType(), required=False)
@click.argument("names", nargs=-1, metavar="[NAME]...")
@_file_option
@_namespace_option
@_control_option
def delete(kind: str | None, names: tuple[str, ...], file: str | None, namespace: str | None,
           control_url: str) -> None:
    """Delete config objects: KIND NAME... or the objects named in a YAML file.

    Every object is tried; the command fails if any could not be deleted.
    """
    if kind is not None and file is not None:
        raise click.UsageError("give either KIND NAME... or -f FILE, not both")
    if kind is not None and not names:
        raise click.UsageError("give at least one NAME after the KIND")
    if kind is not None:
        keys = [(kind, namespace or DEFAULT_NAMESPACE, name) for name in names]
    else:
        _, objects = load_objects(file, namespace)
        keys = [obj.key for obj in objects]
    failures = []
    with _client(control_url) as client:
        for key in keys:
            try:
                revision = client.delete(*key)
            except (NotFoundError, ConfigError) as exc:
                failures.append(str(exc))
                if len(keys) > 1:
                    click.echo(f"Error: {exc}", err=True)
                continue
            except TrimeshError as exc:
                raise _fail(str(exc)) from None
            click.echo(f"Deleted config {key_ref(key)} at revision {revision}")
    if len(keys) == 1 and failures:
        raise _fail(failures[0])
    if failures:
        raise _fail(f"{len(failures)} of {len(keys)} objects could not be deleted")


# -- get ---------------------------------------------------------------------------------------


def _kind_column(obj: ConfigObject) -> str:
    """``RouteRule.v1alpha2.config.istio.io`` (istioctl's KIND column: kind.version.group)."""
    group, _, version = obj.api_version.rpartition("/")
    return ".".join(p for p in (obj.kind, version, group) if p)


def format_short(objects: list[ConfigObject]) -> str:
    """The ``NAME KIND NAMESPACE`` table (header always, rows sorted by name then namespace)."""
    rows = [("NAME", "KIND", "NAMESPACE")]
    for obj in sorted(objects, key=lambda o: (o.name, o.namespace)):
        rows.append((obj.name, _kind_column(obj), obj.namespace))
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    return "\n".join(f"{r[0]:<{widths[0]}}   {r[1]:<{widths[1]}}   {r[2]}".rstrip() for r in rows)


@cli.command()
@click.argument("kind", type=KindType())
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("-n", "--namespace", default=None, metavar="NAMESPACE",
              help="Namespace to look in [default: default].")
@click.option("-A", "--all-namespaces", is_flag=True, help="List objects of every namespace.")
@click.option("-o", "--output", type=click.Choice(["short", "yaml", "json"]), default="short",
              show_default=True, help="Output format.")
@_control_option
def get(kind: str, names: tuple[str, ...], namespace: str | None, all_namespaces: bool,
        output: str, control_url: str) -> None:
    """Show config objects of one KIND: all of them, or the NAMEs given.

    -o json prints the object itself for one NAME, otherwise a JSON list.
    """
    if all_namespaces and (namespace is not None or names):
        raise click.UsageError("--all-namespaces goes with neither -n nor NAMEs")
    ns = None if all_namespaces else (namespace or DEFAULT_NAMESPACE)
    missing = []
    with _client(control_url) as client:
        try:
            if names:
                docs = []
                for name in names:
                    try:
                        docs.append(client.get(kind, ns or DEFAULT_NAMESPACE, name))
                    except NotFoundError as exc:
                        missing.append(str(exc))
            else:
                docs = client.list(kind=kind, namespace=ns)["objects"]
        except TrimeshError as exc:
            raise _fail(str(exc)) from None
    try:
        objects = [object_from_dict(doc) for doc in docs]
    except ConfigError as exc:  # the control is a different version that stores other fields
        raise _fail(f"cannot read the control's answer: {exc}") from None
    if objects or not names:  # when every NAME is missing, only the error below is printed
        if output == "short":
            click.echo(format_short(objects))
        elif output == "yaml":
            click.echo(dump_yaml(objects), nl=False)
        else:
            click.echo(dump_json(objects[0] if len(names) == 1 else objects), nl=False)
    if missing:
        raise _fail("; ".join(missing))


# -- validate ----------------------------------------------------------------------------------


@cli.command()
@_file_option
@_namespace_option
def validate(file: str | None, namespace: str | None) -> None:
    """Check config documents offline, without a control."""
    _, objects = load_objects(file, namespace)
    for obj in objects:
        click.echo(f"Valid config {obj.ref}")


# -- version, completion -----------------------------------------------------------------------


@cli.command()
@_control_option
def version(control_url: str) -> None:
    """Print the client version, and the control's if it is reachable."""
    click.echo(f"trimesh version {__version__}")
    try:
        with ControlClient(control_url, timeout=VERSION_TIMEOUT) as client:
            info = client.version()
    except (TrimeshError, ValueError) as exc:
        click.echo(f"control: {exc}", err=True)
        return
    click.echo(f"control version {info.get('version', '?')} at {control_url} "
               f"(revision {info.get('revision', '?')})")


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]), default="bash")
def completion(shell: str) -> None:
    """Print the shell completion script: source <(trimesh completion bash)."""
    from click.shell_completion import get_completion_class

    comp_cls = get_completion_class(shell)
    assert comp_cls is not None
    click.echo(comp_cls(cli, {}, "trimesh", "_TRIMESH_COMPLETE").source())
