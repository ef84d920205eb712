"""Config objects back to text: ``dump_yaml`` (what ``trimesh get -o yaml`` prints) and
``dump_json``.

Both write ``ConfigObject.to_dict()``: the docs' shape (apiVersion, kind, metadata with namespace and
resourceVersion, spec in camelCase with durations such as ``10s``), which :func:`load_text` reads back
to equal objects, so ``trimesh get -o yaml | trimesh replace -f -`` changes nothing
(guides-reference.md §9 item 13). YAML documents each end with ``---``, as istioctl printed them
(traffic-tasks.md §2.2); a wildcard host is written quoted (``'*.foo.com'``) so it stays valid YAML.
"""

from __future__ import annotations

import json
from typing import Iterable

import yaml

from ._object import ConfigObject

__all__ = ["dump_yaml", "dump_json"]

_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def dump_yaml(objects: ConfigObject | Iterable[ConfigObject]) -> str:
    """Multi-document YAML, every document followed by ``---``; ``""`` for no objects."""
    if isinstance(objects, ConfigObject):
        objects = [objects]
    parts = []
    for obj in objects:
        parts.append(yaml.dump(obj.to_dict(), Dumper=_Dumper, sort_keys=False,
                               default_flow_style=False, allow_unicode=True, width=100))
        parts.append("---\n")
    return "".join(parts)


def dump_json(objects: ConfigObject | Iterable[ConfigObject], *, indent: int | None = 2) -> str:
    """One object as a JSON object; an iterable of objects as a JSON array (which load_text reads
    as one document per element)."""
    if isinstance(objects, ConfigObject):
        data: object = objects.to_dict()
    else:
        data = [o.to_dict() for o in objects]
    return json.dumps(data, indent=indent, ensure_ascii=False) + "\n"
