"""The docs' rule files, shipped as package data, and writing them out under the docs' names.

The Istio docs apply their rules as ``istioctl create -f samples/bookinfo/kube/route-rule-all-v1.yaml``
(traffic-tasks.md §1), run from the root of an Istio release. The same files live in this package
under the same relative names (``bookinfo/kube/…``, ``httpbin/routerules/…``,
``httpbin/destinationpolicies/…``, ``httpbin/ingress/…``, ``egress/…``), so
:func:`write_rules` copying them to ``DIR/samples/…`` makes the docs' lines work as printed from
``DIR`` with ``trimesh`` for ``istioctl``. They are read from the installed package (a wheel or an
editable checkout alike), never from a checkout's working tree.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import TrimeshError

SAMPLES_DIR = Path(__file__).resolve().parent  # the package: rule files sit beside the services
BOOKINFO_RULES = SAMPLES_DIR / "bookinfo" / "kube"  # the BookInfo tasks' files (docs: samples/bookinfo/kube)
DOCS_PREFIX = "samples"  # the docs' paths start here: samples/bookinfo/kube/route-rule-all-v1.yaml


def rule_files() -> list[str]:
    """Every shipped rule file as its docs path (``samples/bookinfo/kube/route-rule-all-v1.yaml``),
    sorted."""
    return sorted(f"{DOCS_PREFIX}/{p.relative_to(SAMPLES_DIR).as_posix()}"
                  for p in SAMPLES_DIR.rglob("*.yaml"))


def write_rules(directory: Path) -> list[Path]:
    """Write every rule file to ``directory/samples/…`` (creating directories; a file already there
    is replaced); returns the paths written, in :func:`rule_files` order.

    TrimeshError naming the path when ``directory`` or a place on the way is not a directory or
    cannot be written; nothing is written then beyond the files before it."""
    directory = Path(directory)
    written = []
    for name in rule_files():
        source = SAMPLES_DIR / name.removeprefix(f"{DOCS_PREFIX}/")
        target = directory / name
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
        except OSError as exc:
            raise TrimeshError(f"cannot write the docs' rule file {target}: "
                               f"{exc.strerror or exc}") from exc
        written.append(target)
    return written
