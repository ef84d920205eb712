"""The house rules of shared/DESIGN.md §3 as a test: every module's imports under trimesh/, read
with ``ast`` (nothing is imported), checked against four rules.

1. **Pure cores do no I/O**: a pure module (the :data:`PURE` table below, plus any module whose
   docstring calls itself ``PURE``) never imports trio, socket, ssl, time or random — nor an event
   loop or threads by another name (:data:`IMPURE`). Imports under ``if TYPE_CHECKING:`` are
   annotations, not runtime dependencies: rules 1 and 4 let them be, rules 2 and 3 do not.
2. **No reaching into another package's private modules**: ``from ..routing._balancers import X``
   outside ``trimesh/routing/`` is a violation (import ``X`` from ``trimesh.routing``, which
   re-exports it), and so is importing a ``_private`` name from another package. A package's own
   private modules are its own business, subpackages included. The top package is the exception
   the other way round: its private modules (``trimesh/_embed.py``) are the embedding API, which
   only ``trimesh/__init__.py`` re-exports, so only modules directly in ``trimesh/`` may import
   them (``trimesh/__init__.py`` importing ``._embed`` is its job; ``_embed`` importing the public
   names of sidecar/proxy/nursery is its job too, their private modules are not).
3. ``trimesh.discovery`` and ``trimesh.mixer`` never import ``trimesh.proxy``.
4. **Dependencies point down**: cli → embedding API → Trio shells → pure cores → errors
   (:data:`LAYERS`). A module may import its own layer or lower ones, never a higher one; in
   particular pure cores never import shells. A name taken from a package's public surface is
   judged by the module that defines it (``from ..discovery import ConfigEntry`` takes a name of
   the pure ``discovery/_messages.py``, which is fine from a pure core). The one name any layer
   may take from the top package is ``__version__`` (metadata: ``trimesh/__init__.py`` defines
   it and imports nothing eagerly, so it pulls no layer in). A new top-level package must be placed in :data:`LAYERS`
   before the test passes: the layout is the architecture.

Each failure names the file, the line and the rule. :data:`PENDING` holds the violations inside
``trimesh/proxy/`` that wait for the lead's proxy rewrite (and nothing else); the test fails when
an entry there no longer matches a violation, so the list only shrinks.
"""

from __future__ import annotations

import ast
import fnmatch
import functools
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]  # the checkout: trimesh/ is checked from the source

# -- rule 1: the pure cores --------------------------------------------------------------------
# Path patterns (relative to the checkout, fnmatch syntax) of the modules that are pure, with why.
# Packages that do not exist yet are listed by pattern, so they are covered when they appear. A
# module not listed here that says "PURE" in its docstring (the house habit) is pure as well.
PURE: dict[str, str] = {
    "trimesh/config/*.py": "DESIGN.md §3: models, loading, validation, Snapshot",
    "trimesh/routing/*.py": "DESIGN.md §3: matching, balancers, retry/fault/breaker decisions",
    "trimesh/quota/*.py": "DESIGN.md §3: rate-limit and quota algorithms (memquota)",
    "trimesh/discovery/_swim.py": "SWIM + Lifeguard state machine",
    "trimesh/discovery/_messages.py": "wire format and replay defence",
    "trimesh/discovery/_broadcast.py": "the transmit-limited broadcast queue",
    "trimesh/discovery/_config.py": "memberlist's profiles and formulas",
    "trimesh/discovery/_keyring.py": "AES-GCM keyring (keys and nonces are passed in)",
    "trimesh/nursery/_policy.py": "restart policy and intensity",
    "trimesh/nursery/_spec.py": "child specs and start order",
    "trimesh/control/_state.py": "the store's write rules and revisions",
    "trimesh/control/_publish.py": "what the control publishes into gossip",
    "trimesh/control/_etcd_wire.py": "the etcd store's keys, transactions and mirror",
    "trimesh/demo/_layout.py": "addresses, ports and argv of the demo mesh",
    "trimesh/demo/_page.py": "what a product page shows",
    "trimesh/demo/_verdicts.py": "the docs' promises as verdicts",
    "trimesh/mixer/_expr*.py": "DESIGN.md §3: the Mixer expression language (parser, evaluator)",
    "trimesh/mixer/_attr*.py": "the attribute vocabulary",
    "trimesh/ca/_authority.py": "DESIGN.md §3: certificate issuing, pure given `now`",
    "trimesh/ca/_csr.py": "CSR parsing and checks",
    "trimesh/ca/_spiffe.py": "SPIFFE identities and secure naming",
    "trimesh/ca/_token.py": "CA tokens (HMAC, the secret and `now` passed in)",
    "trimesh/ca/_record.py": "the issued-certificates record",
    "trimesh/ca/_renewal.py": "the cert agent's renewal schedule",
    "trimesh/mixer/_adapters.py": "the check and quota adapters' decisions",
    "trimesh/mixer/_status.py": "rpc codes, HTTP statuses and Mixer reply bodies",
    "trimesh/telemetry/_record.py": "the per-request record",
    "trimesh/telemetry/_b3.py": "B3 trace contexts (ids from an injected rng)",
}
IMPURE = {"trio", "socket", "ssl", "time", "random",  # DESIGN.md §3, by name
          "asyncio", "anyio", "threading", "selectors"}  # the same I/O and clocks by other names
PURE_WORD = re.compile(r"\bPURE\b")

# -- rule 4: the layers, top to bottom ---------------------------------------------------------
LAYERS: dict[str, int] = {"cli": 5, "embedding API": 4, "Trio shell": 3, "pure core": 2,
                          "errors": 1}
CLI = {"cli"}
EMBEDDING_API = {"trimesh/__init__.py", "trimesh/_embed.py"}
SHELL_PACKAGES = {
    "proxy", "discovery", "nursery", "control", "sidecar", "telemetry", "mixer", "ca",
    "demo",  # `trimesh demo`: starts processes; the CLI is its only user
    "testing",  # the public test kit (simulated network, fake upstreams)
    "service",  # control-plane HTTP on h11 (docs/design-notes.md "Packages added to the layout")
    "samples",  # the docs' sample workloads and rule files, shipped for `trimesh demo` (DESIGN.md §3)
}
ERRORS = {"trimesh/errors.py"}
TOP_LEVEL_METADATA = {"__version__"}
NEVER_IMPORT_PROXY = {"discovery", "mixer"}

# -- violations waiting for the lead's proxy rewrite (trimesh/proxy/* only) ----------------------
# (file, rule, imported module): why. Remove an entry with the fix; a stale entry fails the test.
PENDING: dict[tuple[str, int, str], str] = {}


@dataclass(frozen=True, order=True)
class Violation:
    file: str
    line: int
    rule: int
    target: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: rule {self.rule} ({RULES[self.rule]}): {self.message}"


RULES = {1: "pure cores do no I/O", 2: "no other package's private modules",
         3: "discovery and mixer never import proxy", 4: "dependencies point down"}


@dataclass(frozen=True)
class Import:
    line: int
    target: str  # dotted module name
    names: tuple[str, ...]  # names taken from it ("from x import a, b"); () for "import x"
    type_only: bool  # under `if TYPE_CHECKING:`


# -- reading the tree --------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_of(path: Path, root: Path) -> str:
    name = module_name(path, root)
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def exists(module: str, root: Path) -> bool:
    base = root.joinpath(*module.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                for child in node.body:
                    ids.update(id(n) for n in ast.walk(child))
    return ids


def imports_of(path: Path, root: Path) -> list[Import]:
    """Every import in the module, resolved to absolute module names (a ``from pkg import sub``
    of a submodule resolves to ``pkg.sub``)."""
    tree = parse(path)
    type_only = _type_checking_nodes(tree)
    package = package_of(path, root)
    out: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                out.append(Import(node.lineno, alias.name, (), id(node) in type_only))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module == "__future__":
                continue
            plain = []
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                if module.split(".")[0] == "trimesh" and exists(sub, root):
                    out.append(Import(node.lineno, sub, (), id(node) in type_only))
                else:
                    plain.append(alias.name)
            if plain:
                out.append(Import(node.lineno, module, tuple(plain), id(node) in type_only))
    return out


def is_pure(rel: str, path: Path) -> bool:
    if any(fnmatch.fnmatch(rel, pattern) for pattern in PURE):
        return True
    if path.name == "__init__.py":
        return False  # a package's surface; its package is listed whole when it is pure
    doc = ast.get_docstring(parse(path)) or ""
    return bool(PURE_WORD.search(doc))


def layer_of(rel: str, path: Path, root: Path) -> str | None:
    parts = Path(rel).parts  # ("trimesh", ...)
    if rel in ERRORS:
        return "errors"
    if is_pure(rel, path):
        return "pure core"
    if rel in EMBEDDING_API:
        return "embedding API"
    if len(parts) > 2 and parts[1] in CLI:
        return "cli"
    if len(parts) > 2 and parts[1] in SHELL_PACKAGES:
        return "Trio shell"
    return None


def module_path(module: str, root: Path) -> Path:
    base = root.joinpath(*module.split("."))
    return base / "__init__.py" if (base / "__init__.py").is_file() else base.with_suffix(".py")


def private_owner(module: str) -> str | None:
    """The package a private module belongs to (``trimesh.routing._balancers`` →
    ``trimesh.routing``); ``None`` for a public module."""
    parts = module.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:i])
    return None


def may_use_private(importer_package: str, owner: str) -> bool:
    if owner == "trimesh":  # the embedding API: only the top package's own modules
        return importer_package == "trimesh"
    return importer_package == owner or importer_package.startswith(owner + ".")


# -- the checker -------------------------------------------------------------------------------


def check_tree(root: Path) -> list[Violation]:
    """Every violation of the four rules under ``root/trimesh``."""
    found: list[Violation] = []
    for path in sorted((root / "trimesh").rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        found.extend(check_module(path, rel, root))
    return sorted(found)


def check_module(path: Path, rel: str, root: Path) -> list[Violation]:
    out: list[Violation] = []
    layer = layer_of(rel, path, root)
    package = package_of(path, root)
    top = package.split(".")[1] if "." in package else ""
    if layer is None:
        out.append(Violation(rel, 1, 4, "", f"{rel} is in no layer of DESIGN.md §3: add its "
                                           "package to LAYERS in tests/test_import_rules.py"))
        return out
    for imp in imports_of(path, root):
        first = imp.target.split(".")[0]
        what = imp.target + (f" ({', '.join(imp.names)})" if imp.names else "")
        if first != "trimesh":
            if layer == "pure core" and first in IMPURE and not imp.type_only:
                out.append(Violation(rel, imp.line, 1, imp.target,
                                     f"a pure module imports {what}; pass `now`/`rng` in or "
                                     "move the I/O to the Trio shell"))
            continue
        # rule 2
        owner = private_owner(imp.target)
        if owner is not None and not may_use_private(package, owner):
            out.append(Violation(rel, imp.line, 2, imp.target,
                                 f"imports {what}, a private module of {owner}; import it from "
                                 f"{owner} (re-export it there)"))
        private_names = [n for n in imp.names if n.startswith("_") and not n.startswith("__")]
        if private_names and owner is None and not may_use_private(package, imp.target):
            out.append(Violation(rel, imp.line, 2, imp.target,
                                 f"imports the private name(s) {', '.join(private_names)} "
                                 f"from {imp.target}"))
        # rule 3
        if top in NEVER_IMPORT_PROXY and (imp.target == "trimesh.proxy"
                                          or imp.target.startswith("trimesh.proxy.")):
            out.append(Violation(rel, imp.line, 3, imp.target,
                                 f"trimesh.{top} imports {what}"))
        # rule 4
        if imp.type_only or (imp.target == "trimesh" and imp.names
                             and set(imp.names) <= TOP_LEVEL_METADATA):
            continue
        for source in defining_modules(imp, root):
            source_path = module_path(source, root)
            if not source_path.is_file():
                continue  # a name re-exported lazily (trimesh.__getattr__) or a typo
            source_layer = layer_of(source_path.relative_to(root).as_posix(), source_path, root)
            if source_layer is not None and LAYERS[source_layer] > LAYERS[layer]:
                out.append(Violation(rel, imp.line, 4, imp.target,
                                     f"a {layer} module imports {what}, from a {source_layer} "
                                     f"module ({source})"))
                break
    return out


def defining_modules(imp: Import, root: Path) -> list[str]:
    """Where the imported names are defined: through a package's ``__init__`` re-exports
    (``from ._swim import INSTANCE_KIND as INSTANCE_KIND``) to the private module; the module
    itself for a plain import, for names it defines, and for star re-exports."""
    path = module_path(imp.target, root)
    if not imp.names or path.name != "__init__.py" or not path.is_file():
        return [imp.target]
    reexports: dict[str, str] = {}
    for node in parse(path).body:
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            for alias in node.names:
                reexports[alias.asname or alias.name] = f"{imp.target}.{node.module}"
    return sorted({reexports.get(name, imp.target) for name in imp.names})


def _pending(v: Violation) -> bool:
    return (v.file, v.rule, v.target) in PENDING


# -- the tests ---------------------------------------------------------------------------------


def test_the_tree_keeps_the_house_rules():
    violations = [v for v in check_tree(ROOT) if not _pending(v)]
    assert not violations, "house rules broken (shared/DESIGN.md §3):\n" + "\n".join(
        map(str, violations))


def test_pending_entries_are_proxy_lines_that_still_break_a_rule():
    assert all(file.startswith("trimesh/proxy/") and why.startswith("lead: proxy rewrite")
               for (file, _, _), why in PENDING.items())
    current = {(v.file, v.rule, v.target) for v in check_tree(ROOT)}
    stale = set(PENDING) - current
    assert not stale, f"fixed: remove these from PENDING: {sorted(stale)}"


def test_every_listed_pure_module_exists_or_is_a_pattern():
    for pattern in PURE:
        if not any(c in pattern for c in "*?["):
            assert (ROOT / pattern).is_file(), f"PURE lists {pattern}, which does not exist"


BAD_TREE = {
    "trimesh/__init__.py": "__version__ = '0'\n",
    "trimesh/errors.py": "",
    "trimesh/_embed.py": "",
    "trimesh/routing/__init__.py": "from ._ok import X as X\n",
    "trimesh/routing/_ok.py": '"""Fine. PURE."""\nimport math\nfrom .. import __version__\n'
                              "from typing import TYPE_CHECKING\n"
                              "if TYPE_CHECKING:\n    import random\n",
    "trimesh/routing/_bad.py": "import math\nimport trio\nfrom ..proxy import Pool\n",
    "trimesh/proxy/__init__.py": "",
    "trimesh/proxy/_pool.py": "from ..routing._ok import X\nfrom ..routing import _hidden\n",
    "trimesh/discovery/__init__.py": "",
    "trimesh/discovery/_serve.py": "def f():\n    from trimesh.proxy import _pool\n",
    "trimesh/sidecar/__init__.py": "from .. import _embed\n",
    "trimesh/gadgets/__init__.py": "",
}


@pytest.fixture
def bad_tree(tmp_path: Path) -> Path:
    for rel, text in BAD_TREE.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return tmp_path


def test_the_checker_reports_each_rule_with_file_and_line(bad_tree):
    got = {(v.file, v.line, v.rule, v.target) for v in check_tree(bad_tree)}
    assert got == {
        ("trimesh/routing/_bad.py", 2, 1, "trio"),  # a pure module imports trio
        ("trimesh/routing/_bad.py", 3, 4, "trimesh.proxy"),  # pure core → Trio shell
        ("trimesh/proxy/_pool.py", 1, 2, "trimesh.routing._ok"),  # another package's private
        ("trimesh/proxy/_pool.py", 2, 2, "trimesh.routing"),  # a private name of another
        ("trimesh/discovery/_serve.py", 2, 2, "trimesh.proxy._pool"),  # lazy imports count
        ("trimesh/discovery/_serve.py", 2, 3, "trimesh.proxy._pool"),  # discovery → proxy
        ("trimesh/sidecar/__init__.py", 1, 2, "trimesh._embed"),  # the embedding API's private
        ("trimesh/sidecar/__init__.py", 1, 4, "trimesh._embed"),  # shell → embedding API
        ("trimesh/gadgets/__init__.py", 1, 4, ""),  # a package in no layer
    }
    text = "\n".join(map(str, check_tree(bad_tree)))
    assert "trimesh/routing/_bad.py:2: rule 1 (pure cores do no I/O): a pure module imports trio" \
        in text
    assert "trimesh/discovery/_serve.py:2: rule 3 (discovery and mixer never import proxy)" in text


def test_the_tree_failure_message_names_the_rule(bad_tree, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", bad_tree)
    with pytest.raises(AssertionError, match=r"trimesh/routing/_bad\.py:2: rule 1"):
        test_the_tree_keeps_the_house_rules()
