"""The Mixer service: Check, Quota and Report over the frame wire (``_wire.py``), on Trio.

``trimesh run mixer`` and the control's ``mixer`` child (port 9091) both run :func:`serve_mixer`:

* **config**: the service long-polls the control's config API (a
  :class:`trimesh.sidecar.ControlSource` on ``--control``; inside ``trimesh run control`` that is
  the control's own API on loopback) and compiles a :class:`~trimesh.mixer.MixerConfig` for every
  new revision, keeping the handlers whose spec did not change (rate-limit counters survive a
  push). One code path for standalone and in-control; the cost is one idle long poll. Tests and
  embedders may call :meth:`MixerService.set_objects` instead.
* **connections**: one task per TCP connection, one request frame answered at a time, the
  connection kept open until the client closes it or stays idle :data:`IDLE_TIMEOUT`.
* **answers**: ``check`` → :meth:`MixerConfig.decide` (the check, then the quotas it is charged);
  ``quota`` → :meth:`MixerConfig.quota`; ``report`` → each bag to :meth:`MixerConfig.report`
  (the ``prometheus`` and ``stdio`` adapters, trimesh/mixer/_telemetry.py) and to ``on_report``;
  ``stats``.
* **telemetry out**: with ``prometheus_port`` the service answers ``GET /metrics`` there (the
  prometheus handlers' metrics, prometheus-client's text format; Istio's ``:42422``); a
  ``stdio`` handler's lines go to the service's stdout (``logStream: STDERR``: stderr; ``FILE``
  and ``ROTATED_FILE``: appended to ``outputPath``, not rotated).
* **clock**: handlers get ``trio.current_time()`` (monotonic), which is all the rolling windows
  need.
* **lists**: :meth:`MixerService.refresh_lists` fetches every listchecker's ``providerUrl`` when
  its pure core says so (at start, then every ``refreshInterval``; ``ListChecker.refresh_due``)
  and installs the entries (``parse_list``: YAML ``whitelist: [...]``, a YAML sequence, or one
  entry per line); a failed fetch (unreachable, not 200, bad entries, over
  :data:`FETCH_TIMEOUT`) keeps the last list until its ``ttl`` runs out, then the handler answers
  UNAVAILABLE. Fetches run one after another; a new config revision wakes the loop (a new
  handler is fetched at once). ``http://`` and ``https://`` (system trust store) URLs.

The ready line: ``mixer ready on HOST:PORT (config from URL)``.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Callable, Iterable

import trio

from trimesh.errors import ConfigError, ProtocolError

from ._adapters import ListChecker, QuotaArgs, parse_list
from ._runtime import MixerConfig
from ._telemetry import PrometheusHandler, StdioHandler
from ._wire import FrameReader, encode_frame, status_to_wire

__all__ = ["MixerService", "serve_mixer", "DEFAULT_MIXER_PORT", "IDLE_TIMEOUT"]

log = logging.getLogger("trimesh.mixer")

DEFAULT_MIXER_PORT = 9091  # Istio's Mixer gRPC port (DESIGN.md §1)
IDLE_TIMEOUT = 300.0  # an idle client connection is closed after this (the client reconnects)
READ_SIZE = 65536
FETCH_TIMEOUT = 5.0  # seconds one providerUrl fetch may take
MAX_LIST_BYTES = 4 * 1024 * 1024  # a provider's list larger than this is a failed fetch


class MixerService:
    """The service's state: the compiled config and the counters. ``handle(request)`` is the whole
    protocol; ``serve(host, port)`` the TCP shell."""

    def __init__(self, objects: Iterable[Any] = (), *, revision: int = 0,
                 on_report: Callable[[list[dict[str, Any]]], None] | None = None) -> None:
        self.config = MixerConfig.compile(objects, revision=revision)
        self._wire(self.config)
        self.on_report = on_report
        self.address: tuple[str, int] | None = None
        self.metrics_address: tuple[str, int] | None = None  # GET /metrics (prometheus_port)
        self.source: Any = None
        self._stats = {"connections": 0, "open": 0, "requests": 0, "checks": 0, "quotas": 0,
                       "reports": 0, "records": 0, "errors": 0, "reloads": 0,
                       "reload_failures": 0, "report_failures": 0}
        self._reloaded = trio.Event()  # set (and replaced) on every new config revision

    def set_objects(self, objects: Iterable[Any], revision: int) -> None:
        """A new config revision: compile it (handlers kept). A config that fails to compile
        leaves the previous one serving (logged)."""
        try:
            self.config = MixerConfig.compile(objects, revision=revision, previous=self.config)
            self._wire(self.config)
        except Exception:  # noqa: BLE001 - keep serving the last good config
            self._stats["reload_failures"] += 1
            log.exception("mixer: keeping config revision %d, revision %d does not compile",
                          self.config.revision, revision)
            return
        self._stats["reloads"] += 1
        log.debug("mixer: config revision %d: %r", revision, self.config)
        event, self._reloaded = self._reloaded, trio.Event()
        event.set()

    # --- telemetry out -----------------------------------------------------------------------------

    def _wire(self, config: MixerConfig) -> None:
        """Give every stdio handler its output (module docstring)."""
        for h in config.handlers.values():
            if isinstance(h, StdioHandler) and h.write == h.lines.append:
                h.write = _stdio_writer(h.params)

    def metrics_text(self) -> bytes:
        """The prometheus handlers' metrics in the text format (``GET /metrics``)."""
        from prometheus_client import CollectorRegistry, generate_latest

        registry = CollectorRegistry(auto_describe=False)
        registry.register(_HandlersCollector(self))
        return generate_latest(registry)

    # --- listcheckers' provider lists -----------------------------------------------------------

    async def refresh_lists(self, fetch: Callable[[str], Any] | None = None, *,
                            task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Fetch listcheckers' ``providerUrl`` lists when due, forever (module docstring).
        ``fetch(url)`` returns the payload text (:func:`fetch_list` by default)."""
        fetch = fetch or fetch_list
        task_status.started()
        while True:
            reloaded = self._reloaded
            checkers = [h for h in self.config.handlers.values() if isinstance(h, ListChecker)]
            for h in checkers:
                if h.refresh_due(trio.current_time()):
                    await self._fetch_into(h, fetch)
            due = [t for h in checkers if (t := h.next_refresh_at()) is not None]
            with trio.move_on_at(min(due) if due else math.inf):
                await reloaded.wait()

    async def _fetch_into(self, h: ListChecker, fetch: Callable[[str], Any]) -> None:
        url = h.params.provider_url
        try:
            with trio.fail_after(FETCH_TIMEOUT):
                text = await fetch(url)
            h.install(parse_list(text), trio.current_time())
        except trio.TooSlowError:
            self._fetch_failed(h, f"no answer from {url} in {FETCH_TIMEOUT:g} s")
        except (OSError, ProtocolError, ConfigError, trio.BrokenResourceError,
                UnicodeDecodeError) as exc:
            self._fetch_failed(h, f"{url}: {exc}")
        else:
            log.info("mixer: %s: %d entries from %s", h.fqn, len(h.current(
                trio.current_time()) or ()), url)

    def _fetch_failed(self, h: ListChecker, why: str) -> None:
        h.fetch_failed(why, trio.current_time())
        kept = h.current(trio.current_time()) is not None
        log.warning("mixer: %s: fetching the list failed (%s); %s", h.fqn, why,
                    "keeping the last list until its ttl" if kept else "no list: checks answer "
                    "UNAVAILABLE")

    def handle(self, request: Any, now: float) -> dict[str, Any]:
        """Answer one decoded request frame."""
        self._stats["requests"] += 1
        if not isinstance(request, dict):
            self._stats["errors"] += 1
            return {"error": "a request is a map with an 'op'"}
        op = request.get("op")
        cfg = self.config
        try:
            if op == "check":
                self._stats["checks"] += 1
                bag = _attrs(request)
                d = cfg.decide(bag, now, dedup_id=request.get("dedup"))
                return {"rev": cfg.revision, "keys": cfg.check_attributes,
                        "quotas": cfg.has_quotas, "check": status_to_wire(d.check),
                        "result": status_to_wire(d.result), "granted": d.quotas}
            if op == "quota":
                self._stats["quotas"] += 1
                args = QuotaArgs(int(request.get("amount", 1)), request.get("dedup"),
                                 bool(request.get("best_effort", False)))
                r = cfg.quota(_attrs(request), now, str(request.get("name", "")), args)
                return {"rev": cfg.revision, "granted": r.granted, "duration": r.valid_duration}
            if op == "report":
                records = request.get("records") or []
                if not isinstance(records, list):
                    raise ProtocolError("'records' must be a list")
                self._stats["reports"] += 1
                self._stats["records"] += len(records)
                if cfg.has_reports:
                    for bag in records:
                        if not isinstance(bag, dict):
                            continue
                        try:
                            cfg.report(bag, now)
                        except Exception:  # noqa: BLE001 - telemetry never takes Mixer down
                            self._stats["report_failures"] += 1
                            log.exception("mixer: a report could not be processed")
                if self.on_report is not None:
                    self.on_report(records)
                return {"accepted": len(records)}
            if op == "stats":
                return self.statistics()
        except (ProtocolError, TypeError, ValueError) as exc:
            self._stats["errors"] += 1
            return {"error": str(exc)}
        self._stats["errors"] += 1
        return {"error": f"unknown op {op!r}"}

    # --- the TCP shell ---------------------------------------------------------------------------

    async def serve(self, host: str, port: int, *,
                    task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(port, host=host)
        self.address = listeners[0].socket.getsockname()[:2]
        task_status.started(self.address)
        await trio.serve_listeners(self._connection, listeners)

    async def _connection(self, stream: trio.SocketStream) -> None:
        self._stats["connections"] += 1
        self._stats["open"] += 1
        reader = FrameReader()
        try:
            async with stream:
                while True:
                    request = reader.next()
                    if request is None:
                        with trio.move_on_after(IDLE_TIMEOUT):
                            data = await stream.receive_some(READ_SIZE)
                            if not data:
                                return
                            reader.feed(data)
                            continue
                        return
                    answer = self.handle(request, trio.current_time())
                    await stream.send_all(encode_frame(answer))
        except ProtocolError as exc:
            self._stats["errors"] += 1
            log.warning("mixer: closing a connection: %s", exc)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            self._stats["open"] -= 1

    def statistics(self) -> dict[str, Any]:
        src = self.source
        return {**self._stats, "config": self.config.statistics(),
                "source": src.statistics() if src is not None else None,
                "handlers": {fqn: h.statistics() for fqn, h in self.config.handlers.items()}}

    def __repr__(self) -> str:
        where = f"{self.address[0]}:{self.address[1]}" if self.address else "not listening"
        return f"<MixerService {where} {self.config!r}>"


async def fetch_list(url: str) -> str:
    """GET a provider's list (``http://`` or ``https://``, verified against the system store);
    the body as text. OSError / ProtocolError on a failure or a status other than 200."""
    from urllib.parse import urlsplit

    from trimesh.service import http_request

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProtocolError(f"providerUrl {url!r}: only http:// and https:// URLs are fetched")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    stream: trio.abc.Stream = await trio.open_tcp_stream(parts.hostname, port)
    try:
        if parts.scheme == "https":
            import ssl

            stream = trio.SSLStream(stream, ssl.create_default_context(),
                                    server_hostname=parts.hostname, https_compatible=True)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        answer = await http_request(stream, "GET", target, host=parts.netloc,
                                    headers=[("accept", "text/plain, application/yaml")],
                                    max_body=MAX_LIST_BYTES)
    finally:
        await stream.aclose()
    if answer.status != 200:
        raise ProtocolError(f"answered {answer.status}")
    return answer.body.decode("utf-8")


class _HandlersCollector:
    """prometheus-client's view of the current config's prometheus handlers."""

    def __init__(self, service: MixerService) -> None:
        self.service = service

    def collect(self):
        for h in self.service.config.handlers.values():
            if isinstance(h, PrometheusHandler):
                yield from h.families()


def _stdio_writer(params: Any) -> Callable[[str], None]:
    import sys

    if params.log_stream in ("FILE", "ROTATED_FILE") and params.output_path:
        path = params.output_path

        def to_file(line: str) -> None:
            with open(path, "a", encoding="utf-8") as f:
                f.write(line + "\n")
        return to_file
    stream = sys.stderr if params.log_stream == "STDERR" else sys.stdout

    def to_stream(line: str) -> None:
        stream.write(line + "\n")
        stream.flush()
    return to_stream


async def _serve_metrics(svc: MixerService, host: str, port: int, *,
                         task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
    from trimesh.service import HttpService, Response

    async def handle(request) -> Response:
        if request.path != "/metrics":
            return Response(404, [("content-type", "text/plain")], b"not found: try /metrics\n")
        return Response(200, [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
                        svc.metrics_text())

    http = HttpService(handle, name="mixer prometheus", ready_level=logging.DEBUG)
    listeners = await http.listen(host, port)  # a port in use is a TrimeshError naming it
    svc.metrics_address = (http.host, http.port)
    await http.serve_listeners(listeners, task_status=task_status)


def _attrs(request: dict[str, Any]) -> dict[str, Any]:
    attrs = request.get("attrs")
    if attrs is None:
        return {}
    if not isinstance(attrs, dict):
        raise ProtocolError("'attrs' must be a map")
    return attrs


async def serve_mixer(host: str = "127.0.0.1", port: int = DEFAULT_MIXER_PORT, *,
                      control: str | None = None, service: MixerService | None = None,
                      ready_level: int = logging.INFO, prometheus_port: int | None = None,
                      task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
    """Run a Mixer until cancelled; config from the control API at ``control`` (a URL, or a
    callable returning it once known). ``task_status.started`` gets the service. ``ready_level``:
    DEBUG where the hosting process's ready line speaks for it (the control's)."""
    from trimesh.sidecar import ControlSource

    svc = service or MixerService()
    async with trio.open_nursery() as nursery:
        url = control() if callable(control) else control
        if url:
            def reload() -> None:
                svc.set_objects(source.objects, source.revision)

            source = ControlSource(url, reload)
            svc.source = source
            await nursery.start(source.serve)
        await nursery.start(svc.refresh_lists)
        try:
            await nursery.start(svc.serve, host, port)
        except OSError as exc:
            from trimesh.errors import TrimeshError
            raise TrimeshError(f"cannot listen on {host}:{port} (mixer): "
                               f"{exc.strerror or exc}") from None
        metrics = ""
        if prometheus_port is not None:
            await nursery.start(_serve_metrics, svc, host, prometheus_port)
            metrics = f", prometheus on {svc.metrics_address[0]}:{svc.metrics_address[1]}"
        log.log(ready_level, "mixer ready on %s:%d (config from %s%s)", svc.address[0],
                svc.address[1], url or "nothing", metrics)
        task_status.started(svc)
