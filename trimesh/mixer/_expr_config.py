"""The expression checker the config layer calls when it validates a Mixer object. PURE.

``trimesh.config`` is below ``trimesh.mixer`` (DESIGN.md §3: mixer reads config's models, never the
other way), yet ``trimesh create`` must refuse a rule whose ``match`` does not type-check. So config
owns an extension point, :func:`trimesh.config.set_expression_checker`, and knows which fields of
its models hold expressions and what type each needs (``EXPRESSION_FIELDS`` in
``trimesh/config/_mixer.py``); importing :mod:`trimesh.mixer` installs
:func:`check_config_expression` there (docs/design-notes.md, "Mixer expressions in config
validation"). Checks use the vocabulary (``Manifest.default()``) and are cached by text.
"""

from __future__ import annotations

from functools import lru_cache

from ._attributes import Manifest
from ._expr import compile_expression
from ._expr_parse import ExpressionError

__all__ = ["check_config_expression", "install_expression_checker"]


@lru_cache(maxsize=4096)
def _check_default(text: str, expected: str | None) -> tuple[int, str] | None:
    try:
        compile_expression(text, None, expected=expected or None)
    except ExpressionError as exc:
        return exc.column, exc.message
    return None


def check_config_expression(text: str, expected: str | None = None,
                            manifest: Manifest | None = None) -> tuple[int, str] | None:
    """``None`` when ``text`` compiles to ``expected`` (a ValueType name; ``None``: any type), else
    ``(column, message)``."""
    if manifest is None or manifest == Manifest.default():
        return _check_default(text, expected)
    try:
        compile_expression(text, manifest, expected=expected or None)
    except ExpressionError as exc:
        return exc.column, exc.message
    return None


def install_expression_checker() -> None:
    """Make config validation type-check expressions (idempotent)."""
    from ..config import set_expression_checker

    set_expression_checker(check_config_expression)


install_expression_checker()  # importing trimesh.mixer turns expression checks on (its __init__)
