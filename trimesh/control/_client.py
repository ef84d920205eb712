"""A blocking client of the config API, for the CLI (stdlib ``http.client``; no event loop).

One keep-alive connection per client, reopened once if the control closed an idle one. HTTP answers
are translated once, here, into the project's errors: 400/413 → ConfigError (the control's message
says where), 404 → NotFoundError, 409 → ConflictError, anything unexpected → TrimeshError;
a control that cannot be reached → ControlUnreachableError naming the URL.
"""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from ..config import DEFAULT_NAMESPACE
from ..errors import ConfigError, ConflictError, NotFoundError, TrimeshError

DEFAULT_CONTROL_URL = "http://127.0.0.1:15010"  # CLI.md; overridden by --control / TRIMESH_CONTROL
DEFAULT_CLIENT_TIMEOUT = 30.0  # seconds per request; a write waits for the control's fsync


class ControlUnreachableError(TrimeshError):
    """No HTTP answer from the control (refused, timed out, reset, not HTTP)."""


class ControlClient:
    """``ControlClient("http://127.0.0.1:15010")``; every method returns the control's JSON."""

    def __init__(self, url: str = DEFAULT_CONTROL_URL, *,
                 timeout: float = DEFAULT_CLIENT_TIMEOUT) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the control URL must look like http://HOST:PORT, got {url!r}")
        self.url = url.rstrip("/")
        self._host = parts.hostname
        self._port = parts.port or 80
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self._requests = 0

    def __repr__(self) -> str:
        return f"<ControlClient {self.url} requests={self._requests}>"

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def statistics(self) -> dict[str, Any]:
        return {"url": self.url, "requests": self._requests, "connected": self._conn is not None}

    # -- the API -------------------------------------------------------------------------------

    def version(self) -> dict[str, Any]:
        return self._request("GET", "/v1/version")

    def list(self, *, kind: str | None = None, namespace: str | None = None) -> dict[str, Any]:
        """``{"revision": N, "objects": [...]}``."""
        query = {k: v for k, v in (("kind", kind), ("namespace", namespace)) if v}
        return self._request("GET", "/v1/objects" + (f"?{urlencode(query)}" if query else ""))

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        return self._request("GET", _object_path(kind, namespace, name))

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self._request("POST", "/v1/objects", obj)

    def replace(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj.get("metadata") or {}
        path = _object_path(obj["kind"], meta.get("namespace") or DEFAULT_NAMESPACE,
                            meta["name"])
        return self._request("PUT", path, obj)

    def delete(self, kind: str, namespace: str, name: str) -> int:
        return int(self._request("DELETE", _object_path(kind, namespace, name))["revision"])

    def members(self) -> dict[str, Any]:
        """``{"gossip": bool, "members": [...]}`` (``GET /v1/members``)."""
        return self._request("GET", "/v1/members")

    def instances(self) -> dict[str, Any]:
        return self._request("GET", "/v1/instances")

    def register(self, service: str, address: str, ports: list[tuple[str, int]], *,
                 namespace: str = DEFAULT_NAMESPACE, labels: dict[str, str] | None = None,
                 service_account: str = "default",
                 annotations: dict[str, str] | None = None) -> dict[str, Any]:
        """Register (or replace) static instances; ``ports`` are (protocol name, port) pairs."""
        return self._request("POST", "/v1/instances", {
            "service": service, "namespace": namespace, "address": address,
            "ports": [{"name": name, "port": port} for name, port in ports],
            "labels": labels or {}, "serviceAccount": service_account,
            "annotations": annotations or {}})

    def deregister(self, service: str, address: str, *,
                   namespace: str = DEFAULT_NAMESPACE) -> int:
        path = "/v1/instances/" + "/".join(quote(p, safe="") for p in (namespace, service, address))
        return int(self._request("DELETE", path)["revision"])

    # -- transport -----------------------------------------------------------------------------

    def _request(self, method: str, path: str, payload: Any = None) -> Any:
        body = None if payload is None else json.dumps(payload).encode()
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            reused = self._conn is not None
            try:
                if self._conn is None:
                    self._conn = http.client.HTTPConnection(self._host, self._port,
                                                            timeout=self._timeout)
                self._conn.request(method, self._prefix + path, body=body, headers=headers)
                response = self._conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                # A kept-alive connection the control closed meanwhile: retry once on a new one.
                if reused and attempt == 1 and isinstance(
                        exc, (http.client.RemoteDisconnected, ConnectionResetError,
                              BrokenPipeError)):
                    continue
                raise ControlUnreachableError(
                    f"cannot reach the control at {self.url}: {_describe(exc)}") from None
            self._requests += 1
            if response.will_close:
                self.close()
            return _answer(method, path, response.status, data, self.url)
        raise AssertionError("unreachable")  # pragma: no cover


def _object_path(kind: str, namespace: str, name: str) -> str:
    return "/v1/objects/" + "/".join(quote(p, safe="") for p in (kind, namespace, name))


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, OSError) else f"{type(exc).__name__}: {text}"


def _answer(method: str, path: str, status: int, data: bytes, url: str) -> Any:
    try:
        payload = json.loads(data) if data else None
    except ValueError:
        raise ControlUnreachableError(
            f"cannot reach the control at {url}: {method} {path} answered {status} "
            "with a body that is not JSON (is this URL a trimesh control?)") from None
    if 200 <= status < 300:
        return payload
    message = payload.get("error") if isinstance(payload, dict) else None
    message = message or f"{method} {path} answered {status}"
    if status in (400, 413):
        raise ConfigError(message)
    if status == 404:
        raise NotFoundError(message)
    if status == 409:
        raise ConflictError(message)
    raise TrimeshError(f"the control answered {status}: {message}")
