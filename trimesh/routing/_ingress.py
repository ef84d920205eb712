"""Ingress: which mesh service a request arriving at the edge goes to. PURE.

Istio 0.x's ingress controller served Kubernetes ``Ingress`` objects (traffic-tasks.md §6,
behaviours IN1–IN11); :func:`compile_ingress` turns a Snapshot's ``Ingress`` objects into an
:class:`IngressTable` once per snapshot, and :meth:`IngressTable.match` answers per request with the
backend's ``service:port`` authority (then the ordinary route table decides, with the ingress as
the source) or ``None`` (404 with an empty body: a path the Ingress does not expose).

Semantics, as the docs give them:

- **Class**: an Ingress whose ``kubernetes.io/ingress.class`` annotation is ``istio`` — or that has
  none — is served; any other class (``nginx``) is not (IN5). Other annotations are ignored (no
  ``rewrite-target``).
- **Paths**: ``/x/.*`` is Istio's notation for the prefix ``/x/`` (L899); any other path is an
  exact match (``/ip`` matches ``/ip`` only); a regex is never a regex (IN4: ``/sta[t]us/.*`` is
  the literal prefix ``/sta[t]us/``). A path rule without ``path`` matches every path. The query
  string is not part of the match.
- **Hosts**: a rule with ``host`` matches that Host only (port ignored); without one, any host.
- **Order**: rules and paths are tried in the order they are written, Ingress objects by namespace
  and name; ``spec.backend`` (the default backend) catches what no rule matched.
- **servicePort**: a number, or a port name, resolved against the protocol names the service's
  instances register (``http``, ``grpc`` …: trimesh instances carry one named port each); a name no
  instance has makes that path unroutable (404), as the docs' "rejected or 404" (IN6) allows.
- **Problems**: a backend naming a service the snapshot has no instance of, or a port name no
  instance registers, is listed in :attr:`IngressTable.problems` with its field path
  (``Ingress default/gateway: spec.rules[0].http.paths[1].backend.serviceName: ...``); the
  ingress logs each once. Instances may yet arrive (discovery is live), so the Ingress is kept
  and served: such a path answers what the route stage says for that host (404 ``NR``).
"""

from __future__ import annotations

from typing import Any

from ..config import host_to_fqdn

INGRESS_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
INGRESS_CLASS = "istio"
PREFIX_SUFFIX = ".*"


class _Path:
    __slots__ = ("host", "exact", "prefix", "authority")

    def __init__(self, host: str | None, path: str | None, authority: str | None) -> None:
        self.host = host.lower() if host else None
        if path is None:
            self.exact, self.prefix = None, "/"
        elif path.endswith(PREFIX_SUFFIX):
            self.exact, self.prefix = None, path[: -len(PREFIX_SUFFIX)]
        else:
            self.exact, self.prefix = path, None
        self.authority = authority  # None: the port name resolved to nothing

    def matches(self, host: str, path: str) -> bool:
        if self.host is not None and self.host != host:
            return False
        if self.exact is not None:
            return path == self.exact
        return path.startswith(self.prefix)


class IngressTable:
    """The served Ingress objects of one snapshot, compiled (module docstring)."""

    __slots__ = ("_paths", "_default", "objects", "skipped", "problems")

    def __init__(self, paths: list[_Path], default: str | None, objects: int, skipped: int,
                 problems: list[str] | None = None) -> None:
        self._paths = tuple(paths)
        self._default = default
        self.objects = objects  # Ingress objects served
        self.skipped = skipped  # Ingress objects of another class
        self.problems = problems or []  # backends that reach nothing yet (module docstring)

    def match(self, authority: str, target: str) -> str | None:
        """The backend ``service:port`` for a request, or None (not exposed: 404)."""
        host = authority.rsplit(":", 1)[0].lower() if not authority.startswith("[") else authority
        q = target.find("?")
        path = target if q < 0 else target[:q]
        for p in self._paths:
            if p.matches(host, path):
                return p.authority
        return self._default

    def statistics(self) -> dict[str, int]:
        return {"ingresses": self.objects, "ingresses_other_class": self.skipped,
                "paths": len(self._paths), "problems": len(self.problems)}

    def __repr__(self) -> str:
        return f"<IngressTable ingresses={self.objects} paths={len(self._paths)}>"


def _served(obj: Any) -> bool:
    cls = obj.annotations.get(INGRESS_CLASS_ANNOTATION) if obj.annotations else None
    return cls is None or cls == INGRESS_CLASS


def _authority(snapshot: Any, backend: Any, namespace: str, where: str,
               problems: list[str]) -> str | None:
    """``service:port`` for an IngressBackend, or None when a named port resolves to nothing;
    a backend that reaches no instance adds a problem naming ``where`` (its field path)."""
    port = backend.service_port
    name = backend.service_name
    fqdn = host_to_fqdn(name, namespace, snapshot.domain)
    instances = snapshot.instances_of(fqdn)
    if not instances:
        problems.append(f"{where}.serviceName: no instance of service {name!r} ({fqdn}) in the "
                        "mesh; its requests get 404 NR until one registers")
    if isinstance(port, int) or str(port).isdigit():
        return f"{name}:{int(port)}"
    for inst in instances:
        if inst.protocol == port:
            return f"{name}:{inst.port}"
    if instances:
        problems.append(f"{where}.servicePort: no instance of {name!r} registers a port named "
                        f"{port!r}; its paths get 404")
    return None


def compile_ingress(snapshot: Any) -> IngressTable:
    """The snapshot's ``Ingress`` objects as an :class:`IngressTable`."""
    paths: list[_Path] = []
    default = None
    served = skipped = 0
    problems: list[str] = []
    for obj in sorted(snapshot.of_kind("Ingress"), key=lambda o: (o.namespace, o.name)):
        if not _served(obj):
            skipped += 1
            continue
        served += 1
        spec = obj.spec
        ref = f"Ingress {obj.namespace}/{obj.name}: spec"
        for i, rule in enumerate(spec.rules):
            if rule.http is None:
                continue
            for j, p in enumerate(rule.http.paths):
                where = f"{ref}.rules[{i}].http.paths[{j}].backend"
                paths.append(_Path(rule.host, p.path, _authority(snapshot, p.backend,
                                                                 obj.namespace, where, problems)))
        if spec.backend is not None and default is None:
            default = _authority(snapshot, spec.backend, obj.namespace, f"{ref}.backend",
                                 problems)
    return IngressTable(paths, default, served, skipped, problems)
