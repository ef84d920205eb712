"""The CA service (``trimesh run ca``, and the ``ca`` child of ``trimesh run control``): the Trio
shell around :class:`~._authority.CertificateAuthority` on the control-plane HTTP helper.

Theory of operation
-------------------

**State** (:func:`load_or_create_state`, run in a worker thread: it touches files). Under the state
directory ``DIR`` (the control's by default, so ``trimesh run ca`` and ``trimesh run control`` on
one host share it):

* ``DIR/ca/ca-key.pem`` (0600) and ``DIR/ca/root-cert.pem`` — the self-signed root and its key,
  made on the first start and plugged back in on every later one (the same root across restarts;
  the layout of an operator CA whose ``ca-cert.pem`` is its root). With an operator CA
  (``plugin=``, the docs' four files) nothing is written here and the files are checked at start.
* ``DIR/ca/token-secret`` (0600) — the 32-byte HMAC key of every token (docs/identity.md §6).
  Deleting it (and restarting) revokes every token at once.
* ``DIR/mesh-token`` (0600) — the mesh token (any identity), the one-host default a sidecar reads.
* ``DIR/ca/issued.json`` — the record of issued certificates and superseded serials, rewritten
  (atomically) after every change, so ``trimesh ca list`` and re-issue survive a restart.

**API** (JSON; an error is ``{"error": message, "reason": code}`` with the status of
:data:`REASON_STATUS`; every refusal is counted per reason in :meth:`CAService.statistics`):

* ``POST /v1/certificates`` with ``Authorization: Bearer <token>`` and ``{"csr": PEM, "ttl":
  seconds?}`` → ``{"serial", "identity", "not_before", "not_after", "cert_chain", "root_cert"}``.
* ``GET /v1/root`` → the root certificate, PEM.
* ``GET /v1/certificates[?identity=spiffe://...]`` → ``{"certificates": [{serial, identity,
  issued_at, not_before, not_after, current}]}``.
* ``GET /v1/certificates/<serial hex>`` → that record with ``current`` (false once superseded by a
  re-issue or expired): what the cert agent polls to learn of a re-issue.
* ``POST /v1/reissue`` with the mesh token and ``{"identity": "spiffe://..."}`` (or
  ``{"namespace", "service_account"}``) → ``{"superseded": [serial hex, ...]}``.
* ``GET /stats`` → the service's, the CA's and the record's statistics.

Time: certificate times are wall-clock seconds; the service reads them from ``wall_clock``
(``time.time`` by default, a function of ``trio.current_time()`` in virtual-time tests).
"""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import trio
from cryptography.hazmat.primitives.asymmetric import ec

from ..errors import CAError, ConfigError
from ..service import HTTPError, HttpService, Request, Response, json_response, text_response
from ._authority import (
    MAX_WORKLOAD_TTL,
    PLUGIN_FILE_NAMES,
    SELF_SIGNED_ROOT_TTL,
    WORKLOAD_TTL,
    CertificateAuthority,
    PemFile,
)
from ._record import IssuanceLog, IssuedRecord
from ._spiffe import DEFAULT_TRUST_DOMAIN, SpiffeId
from ._token import issue_mesh_token, new_token_secret, verify_token

log = logging.getLogger("trimesh.ca")

DEFAULT_CA_PORT = 8060  # CLI.md: the CA's port (Istio's istio-ca gRPC port 8060)
MAX_CA_REQUEST = 64 * 1024 + 4096  # bytes: a CSR is at most 64 KiB (trimesh/ca/_csr.py) + JSON
CA_DIR = "ca"
KEY_FILE = "ca-key.pem"
ROOT_FILE = "root-cert.pem"
SECRET_FILE = "token-secret"
ISSUED_FILE = "issued.json"
MESH_TOKEN_FILE = "mesh-token"
PEM_TYPE = "application/x-pem-file"

REASON_STATUS = {  # docs/identity.md §5: the CA service's answer per CAError.reason
    "bad-csr": 400, "bad-signature": 400, "weak-key": 400, "unsupported-key": 400,
    "bad-san": 400, "bad-identity": 400, "bad-ttl": 400, "ttl-too-long": 400,
    "bad-request": 400, "not-authorized": 403, "ca-expired": 503,
    "token-invalid": 401, "token-missing": 401, "token-expired": 401, "not-found": 404,
}

WallClock = Callable[[], float]


def mesh_token_path(state_dir: str | os.PathLike[str]) -> Path:
    """Where the mesh token lives in a (control's) state directory."""
    return Path(state_dir) / MESH_TOKEN_FILE


def token_secret_path(state_dir: str | os.PathLike[str]) -> Path:
    return Path(state_dir) / CA_DIR / SECRET_FILE


def write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` atomically (a temporary file in the same directory, then
    ``os.replace``), created with ``mode`` so a key is never readable by others, even briefly."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)  # mkstemp: a unique name, created 0600, so concurrent writers never collide
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@dataclass
class CAState:
    """What the service runs on: the CA, its token secret, the record and where they persist."""

    authority: CertificateAuthority
    secret: bytes
    issued: IssuanceLog
    state_dir: Path
    mesh_token_file: Path


def _read(path: Path) -> PemFile:
    try:
        return PemFile(str(path), path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", source=str(path)) from None


def load_or_create_state(state_dir: str | os.PathLike[str], *, now: float,
                         trust_domain: str = DEFAULT_TRUST_DOMAIN,
                         root_ttl: float = SELF_SIGNED_ROOT_TTL, workload_ttl: float = WORKLOAD_TTL,
                         max_workload_ttl: float = MAX_WORKLOAD_TTL,
                         plugin: dict[str, str | os.PathLike[str]] | None = None) -> CAState:
    """The CA's state from ``state_dir``, created on the first start (module docstring).
    ``plugin`` maps :data:`PLUGIN_FILE_NAMES`' keys (``signing_cert``, ``signing_key``,
    ``root_cert``, ``cert_chain``) to the operator's files. Blocking: call it in a thread."""
    base = Path(state_dir).expanduser()
    ca_dir = base / CA_DIR
    try:
        ca_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ConfigError(f"cannot create the CA state directory: {exc.strerror or exc}",
                          source=str(ca_dir)) from None
    common = {"now": now, "token_bytes": secrets.token_bytes, "trust_domain": trust_domain,
              "workload_ttl": workload_ttl, "max_workload_ttl": max_workload_ttl}
    if plugin is not None:
        missing = [k for k in ("signing_cert", "signing_key", "root_cert") if not plugin.get(k)]
        if missing:
            raise ConfigError("an operator CA needs " + ", ".join(
                PLUGIN_FILE_NAMES[k] for k in missing) + " (--signing-cert, --signing-key, "
                "--root-cert; --cert-chain when ca-cert.pem is not the root)")
        chain = plugin.get("cert_chain")
        authority = CertificateAuthority.from_plugin(
            signing_cert=_read(Path(plugin["signing_cert"])),
            signing_key=_read(Path(plugin["signing_key"])),
            root_cert=_read(Path(plugin["root_cert"])),
            cert_chain=_read(Path(chain)) if chain else None, **common)
    else:
        key_path, root_path = ca_dir / KEY_FILE, ca_dir / ROOT_FILE
        if key_path.exists() and root_path.exists():
            root = _read(root_path)
            authority = CertificateAuthority.from_plugin(
                signing_cert=root, signing_key=_read(key_path), root_cert=root, cert_chain=None,
                **common)
        else:
            authority = CertificateAuthority.self_signed(
                key=ec.generate_private_key(ec.SECP256R1()), root_ttl=root_ttl, **common)
            write_private(key_path, authority.signing_key_pem())
            write_private(root_path, authority.root_pem, 0o644)
    secret_path = ca_dir / SECRET_FILE
    if secret_path.exists():
        secret = secret_path.read_bytes()
    else:
        secret = new_token_secret(secrets.token_bytes)
        write_private(secret_path, secret)
    mesh_token_file = mesh_token_path(base)
    token = issue_mesh_token(secret)
    if not mesh_token_file.exists() or mesh_token_file.read_text().strip() != token:
        write_private(mesh_token_file, (token + "\n").encode())
    issued = IssuanceLog()
    issued_path = ca_dir / ISSUED_FILE
    if issued_path.exists():
        try:
            saved = msgspec.json.decode(issued_path.read_bytes(), type=_Saved)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ConfigError(f"is not a record of issued certificates: {exc}",
                              source=str(issued_path)) from None
        issued = IssuanceLog(saved.records, saved.superseded)
    return CAState(authority, secret, issued, base, mesh_token_file)


class _Saved(msgspec.Struct):
    records: list[IssuedRecord]
    superseded: list[int]


def _hex(serial: int) -> str:
    return f"{serial:x}"


def _error(status: int, message: str, reason: str) -> Response:
    return json_response({"error": message, "reason": reason}, status)


class _Refusal(Exception):
    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


class CAService:
    """The CA's HTTP API over one :class:`CAState` (module docstring). ``handle`` is the
    :class:`~trimesh.service.HttpService` handler; ``serve`` runs it on a port."""

    def __init__(self, state: CAState, *, wall_clock: WallClock = time.time,
                 persist: bool = True) -> None:
        self.state = state
        self.wall_clock = wall_clock
        self.persist = persist
        self.refused: Counter[str] = Counter()
        self.issued_count = 0
        self._saving = trio.Lock()
        self.http = HttpService(self.handle, name="ca", max_head=16 * 1024,
                                max_body=MAX_CA_REQUEST, error_response=lambda s, m: _error(
                                    s, m, "bad-request"))

    # -- the API -------------------------------------------------------------------------------
    async def handle(self, request: Request) -> Response:
        try:
            return await self._route(request)
        except CAError as exc:
            return self._refuse(exc.message, exc.reason)
        except _Refusal as exc:
            return self._refuse(exc.message, exc.reason)

    def _refuse(self, message: str, reason: str) -> Response:
        self.refused[reason] += 1
        log.info("ca: refused (%s): %s", reason, message)
        return _error(REASON_STATUS.get(reason, 400), message, reason)

    async def _route(self, request: Request) -> Response:
        path, method = request.path.rstrip("/") or "/", request.method
        if path == "/v1/certificates":
            if method == "POST":
                return await self._sign(request)
            self._allow(method, "GET, POST")
            return self._list(request)
        if path.startswith("/v1/certificates/"):
            self._allow(method, "GET")
            return self._one(path.rsplit("/", 1)[1])
        if path == "/v1/root":
            self._allow(method, "GET")
            return Response(200, [("content-type", PEM_TYPE)], self.state.authority.root_pem)
        if path == "/v1/reissue":
            self._allow(method, "POST")
            return await self._reissue(request)
        if path == "/stats":
            self._allow(method, "GET")
            return json_response(self.statistics())
        if path == "/":
            return text_response("/v1/certificates /v1/root /v1/reissue /stats\n")
        raise _Refusal(f"no such path {request.path}", "not-found")

    @staticmethod
    def _allow(method: str, allowed: str) -> None:
        if method not in allowed.split(", ") and not (method == "HEAD" and "GET" in allowed):
            raise HTTPError(405, f"{method} is not allowed here (allowed: {allowed})",
                            [("allow", allowed)])

    def _claim(self, request: Request, now: float):
        auth = request.header("authorization")
        if not auth:
            raise _Refusal("no token: send Authorization: Bearer <token> (trimesh ca token)",
                           "token-missing")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _Refusal("the Authorization header must be Bearer <token>", "token-invalid")
        return verify_token(self.state.secret, token, now)

    @staticmethod
    def _body(request: Request) -> dict[str, Any]:
        try:
            body = msgspec.json.decode(request.body)
        except msgspec.DecodeError as exc:
            raise _Refusal(f"the body is not JSON: {exc}", "bad-request") from None
        if not isinstance(body, dict):
            raise _Refusal("the body must be a JSON object", "bad-request")
        return body

    async def _sign(self, request: Request) -> Response:
        now = self.wall_clock()
        claim = self._claim(request, now)
        body = self._body(request)
        csr, ttl = body.get("csr"), body.get("ttl")
        if not isinstance(csr, str):
            raise _Refusal('the body needs "csr": a PEM certificate request', "bad-csr")
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, (int, float))):
            raise _Refusal('"ttl" must be a number of seconds', "bad-ttl")
        issued = self.state.authority.sign_claimed(csr, claim=claim, now=now, ttl=ttl)
        self.state.issued.add(issued.record)
        self.issued_count += 1
        await self._save()
        log.info("ca: issued %s to %s, valid until %s", _hex(issued.serial), issued.identity,
                 time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(issued.not_after)))
        return json_response({
            "serial": _hex(issued.serial), "identity": str(issued.identity),
            "not_before": issued.not_before, "not_after": issued.not_after,
            "cert_chain": issued.chain_pem.decode("ascii"),
            "root_cert": issued.root_pem.decode("ascii")})

    def _record(self, record: IssuedRecord, now: float) -> dict[str, Any]:
        return {"serial": _hex(record.serial), "identity": str(record.identity),
                "issued_at": record.issued_at, "not_before": record.not_before,
                "not_after": record.not_after,
                "current": self.state.issued.is_current(record.serial, now=now)}

    def _list(self, request: Request) -> Response:
        identity = None
        if request.query.get("identity"):
            identity = SpiffeId.parse(request.query["identity"][0])
        now = self.wall_clock()
        return json_response({"certificates": [self._record(r, now) for r in
                                               self.state.issued.records(identity)]})

    def _one(self, serial_text: str) -> Response:
        try:
            serial = int(serial_text, 16)
        except ValueError:
            raise _Refusal(f"{serial_text!r} is not a serial number (hex)", "bad-request") from None
        record = self.state.issued.get(serial)
        if record is None:
            raise _Refusal(f"no certificate with serial {serial_text} was issued by this CA",
                           "not-found")
        return json_response(self._record(record, self.wall_clock()))

    async def _reissue(self, request: Request) -> Response:
        claim = self._claim(request, self.wall_clock())
        if not claim.any_identity:
            raise CAError("re-issuing needs the mesh token (an identity token may not)",
                          reason="not-authorized")
        body = self._body(request)
        if isinstance(body.get("identity"), str):
            identity = SpiffeId.parse(body["identity"])
        elif isinstance(body.get("service_account"), str):
            identity = SpiffeId.of(str(body.get("namespace") or "default"), body["service_account"],
                                   self.state.authority.trust_domain)
        else:
            raise _Refusal('the body needs "identity" or "service_account"', "bad-request")
        serials = self.state.issued.request_reissue(identity)
        await self._save()
        log.info("ca: re-issue of %s: %d certificate(s) superseded", identity, len(serials))
        return json_response({"identity": str(identity), "superseded": [_hex(s) for s in serials]})

    async def _save(self) -> None:
        if not self.persist:
            return
        async with self._saving:  # one write at a time, each of the state when it starts:
            issued = self.state.issued  # the last write on disk is the newest state
            issued.prune(self.wall_clock())
            data = msgspec.json.encode(_Saved(issued.records(), issued.superseded()))
            path = self.state.state_dir / CA_DIR / ISSUED_FILE
            await trio.to_thread.run_sync(write_private, path, data, 0o644)

    # -- running -------------------------------------------------------------------------------
    async def serve(self, host: str, port: int, *, ready_line: bool = True,
                    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; ``task_status.started(url)`` once bound, after the line
        ``ca ready on HOST:PORT: ...`` (``ca listening on ...`` with ``ready_line=False``: inside
        the control, whose own line is the process's one ready line)."""
        self.http.ready_level = logging.DEBUG  # the line below is the ready line
        listeners = await self.http.listen(host, port)
        ca = self.state.authority
        log.info("ca %s on %s:%d: trust domain %s, %s root, state in %s",
                 "ready" if ready_line else "listening", self.http.host,
                 self.http.port, ca.trust_domain, "operator" if ca.plugged else "self-signed",
                 self.state.state_dir)
        await self.http.serve_listeners(listeners, task_status=_Url(task_status, self.http))

    def statistics(self) -> dict[str, Any]:
        return {"issued": self.issued_count, "refused": dict(self.refused),
                "authority": self.state.authority.statistics(),
                "record": self.state.issued.statistics(), "http": self.http.statistics()}

    def __repr__(self) -> str:
        return (f"<CAService {self.state.authority.trust_domain} issued={self.issued_count} "
                f"refused={sum(self.refused.values())} {self.http!r}>")


class _Url:
    def __init__(self, status, http: HttpService) -> None:
        self._status, self._http = status, http

    def started(self, value: Any = None) -> None:
        self._status.started(self._http.url)


async def serve_ca(*, state_dir: str | os.PathLike[str], address: str = "127.0.0.1",
                   port: int = DEFAULT_CA_PORT, trust_domain: str = DEFAULT_TRUST_DOMAIN,
                   root_ttl: float = SELF_SIGNED_ROOT_TTL, workload_ttl: float = WORKLOAD_TTL,
                   max_workload_ttl: float = MAX_WORKLOAD_TTL,
                   plugin: dict[str, str | os.PathLike[str]] | None = None,
                   wall_clock: WallClock = time.time, ready_line: bool = True,
                   task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
    """Load or create the CA's state in ``state_dir`` and serve its API on ``address:port`` until
    cancelled; ``task_status.started(url)``. A bad state or operator file is a ConfigError."""
    state = await trio.to_thread.run_sync(lambda: load_or_create_state(
        state_dir, now=wall_clock(), trust_domain=trust_domain, root_ttl=root_ttl,
        workload_ttl=workload_ttl, max_workload_ttl=max_workload_ttl, plugin=plugin))
    await CAService(state, wall_clock=wall_clock).serve(address, port, ready_line=ready_line,
                                                        task_status=task_status)
