"""The docs' rule files, read where the repository keeps them instead of pasted into each test.

``tests/fixtures/`` holds the docs' examples verbatim (some only as fragments, see SOURCES.md);
``trimesh/samples/bookinfo/kube/`` (package data) holds the BookInfo tasks' files in loadable form (what a user applies).
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
BOOKINFO = REPO / "trimesh" / "samples" / "bookinfo" / "kube"


def fixture(*names: str) -> str:
    """The named fixtures (verbatim docs examples), as one multi-document YAML text."""
    return "\n---\n".join((FIXTURES / n).read_text() for n in names)


def bookinfo(*names: str) -> str:
    """The named BookInfo rule files of trimesh/samples/bookinfo/kube/, as one multi-document YAML text."""
    return "\n---\n".join((BOOKINFO / n).read_text() for n in names)
