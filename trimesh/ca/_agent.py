"""The cert agent: obtains and renews one workload certificate from the CA service, writes the
docs' three files, and holds the current material for the TLS layer.

Theory of operation
-------------------

* **The key stays here.** Each round makes a fresh ECDSA P-256 key (docs/identity.md §5: the
  cheapest TLS handshake; a new key per certificate, as Istio's node agent does), builds a CSR for
  the agent's one identity and POSTs it to the CA's ``/v1/certificates`` with its token.
* **Files.** ``cert-chain.pem``, ``key.pem`` (0600) and ``root-cert.pem`` are written into
  ``cert_dir``, each atomically (a temporary file, then ``os.replace``), in the order root, key,
  chain, so a reader that re-reads on a change of ``cert-chain.pem`` finds the matching key.
* **Memory.** :class:`CertStore` holds the current :class:`CertMaterial`; ``current()`` is what a
  TLS layer builds its context from, and ``on_change`` callbacks / ``wait_changed()`` tell it to
  build a new one (new connections use it; open connections keep theirs, none is dropped).
* **Renewal** at :func:`~._renewal.renewal_time` of the certificate (half its lifetime, jittered
  earlier by up to 10 %), slept with ``trio.sleep_until`` so virtual-time tests run it in
  milliseconds. Meanwhile, every :data:`STATUS_POLL` seconds (capped at a tenth of the lifetime)
  the agent asks the CA whether its serial is still current; a re-issue (docs/identity.md §7)
  makes it renew at once.
* **Failures** (CA unreachable, a refusal such as ``not-authorized`` for a token of another
  identity) are logged with the CA's reason, kept in ``store.last_error`` (``/certs`` and
  ``/ready`` show it), and retried with exponential backoff from :data:`RETRY_MIN` to
  :data:`RETRY_MAX` (full jitter). A held certificate stays in use until it expires.

Time: certificate times are wall-clock seconds, read from ``wall_clock`` (``time.time``); waits
are converted to trio deadlines (``trio.current_time() + (at - wall_clock())``). Tests pass
``wall_clock=lambda: T0 + trio.current_time()`` and the CA the same function.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec
import trio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..errors import CAError, ProtocolError, TrimeshError
from ..service import http_request
from ._csr import make_csr
from ._renewal import renewal_time
from ._service import write_private
from ._spiffe import SpiffeId

log = logging.getLogger("trimesh.ca.agent")

CHAIN_FILE = "cert-chain.pem"  # the docs' file names (telemetry-security.md §13)
KEY_FILE = "key.pem"
ROOT_FILE = "root-cert.pem"
RETRY_MIN = 1.0  # seconds: the first retry after a failure
RETRY_MAX = 60.0  # seconds: the longest wait between attempts (Istio node agent: 1 min cap)
STATUS_POLL = 30.0  # seconds between "is my serial still current?" checks (re-issue)
REQUEST_TIMEOUT = 10.0  # seconds one exchange with the CA may take

WallClock = Callable[[], float]
Connect = Callable[[str, int], Awaitable[trio.abc.Stream]]  # trio.open_tcp_stream's shape


@dataclass(frozen=True)
class CertMaterial:
    """One workload certificate as the TLS layer needs it."""

    identity: SpiffeId
    serial: int
    not_before: float
    not_after: float
    chain_pem: bytes
    key_pem: bytes
    root_pem: bytes

    def __repr__(self) -> str:
        return f"<CertMaterial {self.serial:x} {self.identity} not_after={self.not_after:.0f}>"


@dataclass
class CertStore:
    """The current certificate in memory, and who wants to hear of a new one."""

    _current: CertMaterial | None = None
    renewals: int = 0  # certificates obtained after the first
    obtained: int = 0
    failures: int = 0
    last_error: str | None = None
    last_reason: str | None = None
    _callbacks: list[Callable[[CertMaterial], None]] = field(default_factory=list)
    _changed: trio.Event = field(default_factory=trio.Event)

    def current(self) -> CertMaterial | None:
        return self._current

    def on_change(self, callback: Callable[[CertMaterial], None]) -> None:
        """Call ``callback(material)`` after each new certificate (the TLS layer swaps contexts)."""
        self._callbacks.append(callback)

    async def wait_changed(self) -> CertMaterial:
        """Wait for the next new certificate."""
        await self._changed.wait()
        assert self._current is not None
        return self._current

    def set(self, material: CertMaterial) -> None:
        if self._current is not None:
            self.renewals += 1
        self.obtained += 1
        self._current = material
        self.last_error = self.last_reason = None
        event, self._changed = self._changed, trio.Event()
        event.set()
        for callback in list(self._callbacks):
            try:
                callback(material)
            except Exception:
                log.exception("cert store: a change callback failed")

    def failed(self, message: str, reason: str | None) -> None:
        self.failures += 1
        self.last_error, self.last_reason = message, reason

    def statistics(self) -> dict[str, Any]:
        cur = self._current
        return {"identity": str(cur.identity) if cur else None,
                "serial": f"{cur.serial:x}" if cur else None,
                "not_before": cur.not_before if cur else None,
                "not_after": cur.not_after if cur else None,
                "obtained": self.obtained, "renewals": self.renewals, "failures": self.failures,
                "last_error": self.last_error, "last_reason": self.last_reason}

    def __repr__(self) -> str:
        return f"<CertStore {self._current!r} renewals={self.renewals} failures={self.failures}>"


def parse_ca_url(url: str) -> tuple[str, int]:
    """``http://HOST:PORT`` (or ``HOST:PORT``) → ``(host, port)``; port 8060 by default."""
    parts = urlsplit(url if "//" in url else f"http://{url}")
    if parts.scheme != "http" or not parts.hostname:
        raise TrimeshError(f"the CA address {url!r} must be http://HOST[:PORT]")
    try:
        return parts.hostname, parts.port or 8060
    except ValueError:
        raise TrimeshError(f"the CA address {url!r} has a bad port") from None


async def ca_request(host: str, port: int, method: str, target: str, *, token: str | None = None,
                     body: Any = None, connect: Connect = trio.open_tcp_stream) -> Any:
    """One JSON exchange with the CA service; a refusal is a :class:`CAError` with the CA's
    reason, an unreachable CA a TrimeshError. ``connect`` opens the stream (memory streams in
    tests)."""
    headers = [("accept", "application/json")]
    if token is not None:
        headers.append(("authorization", f"Bearer {token}"))
    data = b""
    if body is not None:
        headers.append(("content-type", "application/json"))
        data = msgspec.json.encode(body)
    try:
        with trio.fail_after(REQUEST_TIMEOUT):
            stream = await connect(host, port)
            async with stream:
                answer = await http_request(stream, method, target, host=f"{host}:{port}",
                                            headers=headers + [("connection", "close")], body=data)
    except (OSError, trio.TooSlowError, trio.BrokenResourceError, ProtocolError) as exc:
        raise TrimeshError(f"cannot reach the CA at {host}:{port}: "
                           f"{getattr(exc, 'strerror', None) or exc or 'timed out'}") from None
    try:
        payload = msgspec.json.decode(answer.body) if answer.body else {}
    except msgspec.DecodeError:
        payload = {"error": answer.body.decode("utf-8", "replace").strip()}
    if answer.status != 200:
        message = payload.get("error") if isinstance(payload, dict) else None
        reason = payload.get("reason") if isinstance(payload, dict) else None
        raise CAError(f"the CA refused ({answer.status}): {message or 'no reason given'}",
                      reason=reason or f"http-{answer.status}")
    return payload


class CertAgent:
    """Keeps one identity's certificate fresh (module docstring)."""

    def __init__(self, identity: SpiffeId, ca_url: str, *, token: str | None = None,
                 token_file: str | os.PathLike[str] | None = None,
                 cert_dir: str | os.PathLike[str] | None = None, store: CertStore | None = None,
                 ttl: float | None = None, wall_clock: WallClock = time.time,
                 rng: random.Random | None = None, name: str = "cert agent",
                 connect: Connect = trio.open_tcp_stream) -> None:
        if token is None and token_file is None:
            raise TrimeshError("the cert agent needs a token or a token file")
        self.identity = identity
        self.host, self.port = parse_ca_url(ca_url)
        self.token = token
        self.token_file = Path(token_file) if token_file is not None else None
        self.cert_dir = Path(cert_dir) if cert_dir is not None else None
        self.store = store if store is not None else CertStore()
        self.ttl = ttl
        self.wall_clock = wall_clock
        self.rng = rng or random.Random()
        self.name = name
        self.connect = connect

    # -- one round -----------------------------------------------------------------------------
    def _read_token(self) -> str:
        if self.token is not None:
            return self.token
        assert self.token_file is not None
        try:
            return self.token_file.read_text().strip()
        except OSError as exc:
            raise TrimeshError(f"cannot read the CA token file {self.token_file}: "
                               f"{exc.strerror or exc}") from None

    async def obtain(self) -> CertMaterial:
        """Make a key, send the CSR, write the files, update the store."""
        token = self.token if self.token is not None else await trio.to_thread.run_sync(
            self._read_token)
        key = ec.generate_private_key(ec.SECP256R1())
        csr = make_csr(key, self.identity)
        body: dict[str, Any] = {"csr": csr.decode("ascii") if isinstance(csr, bytes) else csr}
        if self.ttl is not None:
            body["ttl"] = self.ttl
        answer = await ca_request(self.host, self.port, "POST", "/v1/certificates", token=token,
                                  body=body, connect=self.connect)
        try:
            material = CertMaterial(
                identity=SpiffeId.parse(answer["identity"]), serial=int(answer["serial"], 16),
                not_before=float(answer["not_before"]), not_after=float(answer["not_after"]),
                chain_pem=answer["cert_chain"].encode("ascii"),
                key_pem=key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()),
                root_pem=answer["root_cert"].encode("ascii"))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise TrimeshError(f"the CA's answer is not a certificate: {exc!r}") from None
        if material.identity != self.identity:
            raise TrimeshError(f"the CA issued {material.identity}, not {self.identity}")
        if self.cert_dir is not None:
            await trio.to_thread.run_sync(self._write, material)
        first = self.store.current() is None
        self.store.set(material)
        log.info("%s: %s certificate %x for %s, valid until %s", self.name,
                 "obtained" if first else "renewed", material.serial, material.identity,
                 time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(material.not_after)))
        return material

    def _write(self, material: CertMaterial) -> None:
        assert self.cert_dir is not None
        self.cert_dir.mkdir(parents=True, exist_ok=True)
        write_private(self.cert_dir / ROOT_FILE, material.root_pem, 0o644)
        write_private(self.cert_dir / KEY_FILE, material.key_pem, 0o600)
        write_private(self.cert_dir / CHAIN_FILE, material.chain_pem, 0o644)

    async def still_current(self, serial: int) -> bool:
        """Whether the CA still counts ``serial`` as current (False after a re-issue). An
        unreachable CA is taken as "yes": renewal at its time will retry."""
        try:
            answer = await ca_request(self.host, self.port, "GET", f"/v1/certificates/{serial:x}",
                                      connect=self.connect)
        except (CAError, TrimeshError) as exc:
            if isinstance(exc, CAError) and exc.reason == "not-found":
                return False
            return True
        return bool(answer.get("current", True))

    # -- the loop ------------------------------------------------------------------------------
    def _deadline(self, wall_at: float) -> float:
        return trio.current_time() + max(0.0, wall_at - self.wall_clock())

    async def _wait_for_renewal(self, material: CertMaterial) -> None:
        at = renewal_time(material.not_before, material.not_after, jitter=self.rng.random())
        poll = min(STATUS_POLL, max(1.0, (material.not_after - material.not_before) / 10))
        while self.wall_clock() < at:
            await trio.sleep_until(min(self._deadline(at), trio.current_time() + poll))
            if self.wall_clock() < at and not await self.still_current(material.serial):
                log.info("%s: certificate %x was superseded (re-issue); renewing now", self.name,
                         material.serial)
                return

    async def serve(self, *, task_status: trio.TaskStatus[CertStore] = trio.TASK_STATUS_IGNORED
                    ) -> None:
        """Run until cancelled. Reports ``started(store)`` at once: readiness is the store's
        (``store.current()`` not None), so the admin port can say why it is not ready."""
        task_status.started(self.store)
        backoff = RETRY_MIN
        while True:
            try:
                material = await self.obtain()
            except (CAError, TrimeshError) as exc:
                reason = getattr(exc, "reason", None)
                self.store.failed(str(exc), reason)
                wait = self.rng.uniform(backoff / 2, backoff)
                log.warning("%s: cannot get a certificate for %s from %s:%d: %s "
                            "(retrying in %.1fs)", self.name, self.identity, self.host, self.port, exc, wait)
                await trio.sleep(wait)
                backoff = min(RETRY_MAX, backoff * 2)
                continue
            backoff = RETRY_MIN
            await self._wait_for_renewal(material)

    def statistics(self) -> dict[str, Any]:
        return {"ca": f"{self.host}:{self.port}", "cert_dir": str(self.cert_dir)
                if self.cert_dir else None, **self.store.statistics()}

    def __repr__(self) -> str:
        return f"<CertAgent {self.identity} ca={self.host}:{self.port} {self.store!r}>"
