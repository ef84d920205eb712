"""``trimesh demo`` and ``trimesh demo --check`` from start to summary (the CLI only wires options).

- ``run_demo(check=False)``: start the mesh, print one line per process as it becomes ready (seconds
  since start, PID) and one when gossip has converged (every member alive, every sidecar knows every
  instance), then the product page's URL and the commands to try — ``trimesh members`` and the
  docs' tasks (with ``--control URL`` when the control is not at the default
  ``http://127.0.0.1:15010``); wait until Ctrl-C/SIGTERM or until a process dies; stop every
  process by PID and print what happened to each.
- ``run_demo(check=True)``: the same mesh (its control always on the block's own address, so a
  running demo is not disturbed), then every scenario of :mod:`._scenarios` with one PASS/FAIL line
  each, then the stop summary. Exit status 0 when every scenario passed and no process is left.

The working directory (logs, the control's state and mesh key unless ``--state-dir``) is temporary
and removed at the end, unless something failed: then it is kept and named so the logs can be read.
"""

from __future__ import annotations

import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from ._layout import (
    CONTROL_PORT,
    DEFAULT_CONTROL_ADDRESS,
    DEMO_BLOCK,
    GOSSIP_PROFILE,
    check_block,
    plan_mesh,
)
from ._mesh import (
    DemoError,
    DemoMesh,
    Process,
    default_control_address,
    port_free,
)
from ..errors import TrimeshError
from ..samples import BOOKINFO, BOOKINFO_RULES, DOCS_PREFIX, SAMPLES_DIR, write_rules
from ._scenarios import run_scenarios

WATCH_INTERVAL = 0.5  # seconds between checks that every process still runs

Echo = Callable[[str], None]

# Who is in the mesh, then the docs' commands in the tasks' order: (verb and argument, what the
# page shows then).
TRY_COMMANDS = (
    ("members", "the control and six sidecars, found by gossip"),
    ("create -f {rules}/route-rule-all-v1.yaml", "every service to v1: no stars"),
    ("create -f {rules}/route-rule-reviews-test-v2.yaml", "signed in as jason: black stars"),
    ("create -f {rules}/route-rule-ratings-test-delay.yaml",
     "jason: reviews unavailable after ~6 s"),
    ("delete -f {rules}/route-rule-ratings-test-delay.yaml", ""),
    ("create -f {rules}/route-rule-ratings-test-abort.yaml", "jason: ratings unavailable"),
    ("delete -f {rules}/route-rule-ratings-test-abort.yaml", ""),
    ("delete routerule reviews-test-v2", ""),
    ("replace -f {rules}/route-rule-reviews-50-v3.yaml", "half the loads show red stars"),
    ("replace -f {rules}/route-rule-reviews-v3.yaml", "red stars for everyone"),
    ("get routerules", "what the control holds"),
    ("delete -f {rules}/route-rule-all-v1.yaml", "back to no rules"),
)


class _Stop(KeyboardInterrupt):
    """SIGTERM asked the demo to stop: handled exactly like Ctrl-C (a second one kills at once)."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Stop()


def _on_sigint(signum: int, frame: object) -> None:
    raise KeyboardInterrupt()


def _progress(echo: Echo) -> Callable[[Process, str], None]:
    def report(proc: Process, detail: str) -> None:
        echo(f"[{proc.ready_at or 0.0:5.1f}s] ready  {proc.name:<22} {detail}  (pid {proc.pid})")
    return report


def try_commands(mesh: DemoMesh, *, cwd: Path) -> list[str]:
    """The docs' commands for this mesh, as a user would type them from ``cwd``: the rule files by
    their docs paths (``samples/bookinfo/kube/…``), which ``trimesh demo --write-rules DIR`` writes
    under ``DIR``; a first line says so when ``cwd`` does not hold them yet."""
    rules = f"{DOCS_PREFIX}/{BOOKINFO_RULES.relative_to(SAMPLES_DIR).as_posix()}"
    control = ("" if mesh.control_url == f"http://{DEFAULT_CONTROL_ADDRESS}:{CONTROL_PORT}"
               else f" --control {mesh.control_url}")
    commands = [f"trimesh {cmd.format(rules=rules)}{control}" for cmd, _ in TRY_COMMANDS]
    width = max(len(c) for c in commands)
    out = [f"  {c:<{width}}  # {why}" if why else f"  {c}"
           for c, (_, why) in zip(commands, TRY_COMMANDS)]
    if not (cwd / rules / "route-rule-all-v1.yaml").is_file():
        first = "trimesh demo --write-rules ."
        out.insert(0, f"  {first:<{width}}  # first: the docs' rule files, as ./{DOCS_PREFIX}/...")
    return out


def write_rule_files(directory: Path, *, echo: Echo = print, error: Echo | None = None) -> int:
    """``trimesh demo --write-rules DIR``: write the docs' rule files under ``DIR/samples/``; 0, or
    1 with the reason when they cannot be written."""
    try:
        written = write_rules(directory)
    except TrimeshError as exc:
        (error or echo)(f"Error: {exc}")
        return 1
    echo(f"wrote {len(written)} rule files under {directory / DOCS_PREFIX}; from {directory}: "
         f"trimesh create -f {DOCS_PREFIX}/bookinfo/kube/route-rule-all-v1.yaml")
    return 0


def _busy(mesh: DemoMesh) -> list[str]:
    plan = mesh.plan
    out = [f"{m.address}:{m.port}" for m in plan.members if not port_free(m.address, m.port)]
    if not port_free(plan.control_address, plan.control_port):
        out.append(f"{plan.control_address}:{plan.control_port}")
    if not port_free(plan.control_address, plan.gossip_port, udp=True):
        out.append(f"{plan.join} (gossip)")
    return out


def run_demo(*, check: bool = False, state_dir: Path | None = None, block: str = DEMO_BLOCK,
             control_port: int = CONTROL_PORT, echo: Echo = print,
             error: Echo | None = None, seed: int | None = None, mtls: bool = True) -> int:
    """Run the demo (or its check); returns the exit status. ``echo``/``error`` print a line;
    ``seed`` seeds the sidecars' routing RNGs (reproducible weighted picks, for tests); ``mtls``
    (the default, as the CLI's): mutual TLS between the sidecars, the page through the ingress."""
    err = error or echo
    try:
        check_block(block)
    except ValueError as exc:
        err(f"Error: {exc}")
        return 1
    control_address = f"{block}.1" if check or control_port != CONTROL_PORT else (
        default_control_address(block))
    plan = plan_mesh(BOOKINFO, python=sys.executable, block=block,
                     control_address=control_address, control_port=control_port)
    workdir = Path(tempfile.mkdtemp(prefix="trimesh-demo-"))
    mesh = DemoMesh(plan, workdir=workdir, state_dir=state_dir, seed=seed, mtls=mtls)
    busy = _busy(mesh)
    if busy:
        err(f"Error: {', '.join(busy)} already in use: is another `trimesh demo` running? Stop it "
            f"or give this one another block (--addresses 127.0.11).")
        _remove(workdir)
        return 1
    echo(f"trimesh demo: BookInfo on {block}.0/24, control at {mesh.control_url}; members find "
         f"each other by gossip through {plan.join} ({GOSSIP_PROFILE} profile)"
         + ("; mutual TLS between sidecars (certificates from the control's CA)" if mtls else ""))
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    # Ctrl-C stops the demo even when it was started with SIGINT ignored (a background job of a
    # non-interactive shell, as some CI runners start commands): Python would keep SIG_IGN.
    previous_int = signal.signal(signal.SIGINT, _on_sigint)
    failed = False
    try:
        try:
            mesh.start(_progress(echo), note=echo)
        except DemoError as exc:
            err(f"Error: the mesh did not start: {exc}")
            failed = True
        else:
            echo(f"BookInfo is up: {len(mesh.processes)} processes in {mesh.up_at or 0.0:.1f}s.")

            if check:
                failed = not _check(mesh, echo)
            else:
                failed = _serve(mesh, echo, err)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (_Stop)
        echo("")
        echo("stopping (Ctrl-C again to kill at once) ...")
    finally:
        try:
            summary = mesh.stop()
        finally:
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, previous_int)
        for line in summary.lines():
            echo(line)
        if summary.left:
            failed = True
        if failed:
            echo(f"logs kept in {mesh.log_dir}")
        else:
            _remove(workdir)
    return 1 if failed else 0


def _check(mesh: DemoMesh, echo: Echo) -> bool:
    began = time.monotonic()
    results = run_scenarios(mesh, BOOKINFO_RULES,
                            lambda r: echo(r.line()))
    passed = sum(r.ok for r in results)
    echo(f"check: {passed} of {len(results)} scenarios passed in {time.monotonic() - began:.1f}s")
    return passed == len(results)


def _serve(mesh: DemoMesh, echo: Echo, err: Echo) -> bool:
    """Print where to look and what to try, then wait; True when a process died on its own."""
    echo("")
    if mesh.mtls:
        echo(f"Product page:  {mesh.page_url}  (through the ingress: BookInfo's gateway "
             "Ingress, trimesh run ingress)")
        echo(f"Mutual TLS between the sidecars: their ports refuse plaintext (curl "
             f"{mesh.entry.url}/productpage fails); each one's cert-chain.pem, key.pem and "
             f"root-cert.pem are under {mesh.workdir / 'certs'}/NAME. --no-mtls turns it off.")
    else:
        echo(f"Product page:  {mesh.page_url}")
        if mesh.ingress_url is not None:
            echo(f"Through the ingress:  {mesh.ingress_url}/productpage  (BookInfo's gateway "
                 "Ingress, trimesh run ingress)")
    echo('Sign in as "jason" there (any password) to be the docs\' test user.')
    echo("")
    echo(f"The sidecars found each other by gossip (seed {mesh.plan.join}); "
         "`trimesh members` lists them.")
    echo("Try it and the docs' tasks from another shell (docs/quickstart.md tells what you "
         "will see):")
    for line in try_commands(mesh, cwd=Path.cwd()):
        echo(line)
    echo("")
    echo("Press Ctrl-C to stop.")
    while True:
        time.sleep(WATCH_INTERVAL)
        dead = [p for p in mesh.processes if not p.alive()]
        if dead:
            for p in dead:
                err(f"Error: {p.name} (pid {p.pid}) stopped on its own; its log ends with:\n"
                    f"{p.log_tail(10)}")
            return True


def _remove(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    if path.exists():  # pragma: no cover - a file we cannot remove; say so rather than hide it
        print(f"note: could not remove {path}", file=sys.stderr)

