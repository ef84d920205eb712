"""The decision cores of Mixer's check and quota adapters: denier, listchecker, memquota. PURE.

Each adapter is built from its handler's fully-qualified name
(``denyreviewsv3handler.denier.default``) and its typed spec (:mod:`trimesh.config`:
``DenierParams``, ``ListCheckerParams``, ``MemQuotaParams``), and answers with a
:class:`~trimesh.mixer.CheckResult` (checks) or a :class:`~trimesh.quota.QuotaResult` (quotas). They
receive *evaluated* instance values — the string a ``listentry``'s ``value`` expression gave, the
dimension map of a ``quota`` instance — never expressions: evaluating them is the expression
language's job.

**denier** (``mixer/adapter/denier``): every check fails with the configured ``status`` (without
one: ``FAILED_PRECONDITION``, no message), cacheable for ``validDuration`` (5 s) and
``validUseCount`` (1000 uses); a quota it handles grants nothing. A status with code 0 allows.

**listchecker** (``mixer/adapter/list``): the value is looked up in the static ``overrides`` plus,
when ``providerUrl`` is set, the list last fetched from it. Whitelist mode (``blacklist: false``): a
miss answers ``NOT_FOUND`` ``"<value> is not whitelisted"`` (→ 404); blacklist mode: a hit answers
``PERMISSION_DENIED`` ``"<value> is blacklisted"`` (→ 403); a value that is not an IP address in
``IP_ADDRESSES`` mode answers ``INVALID_ARGUMENT``. Every such answer is cacheable for
``cachingInterval`` (300 s) / ``cachingUseCount`` (10000). Entry types: ``STRINGS`` (exact),
``CASE_INSENSITIVE_STRINGS`` (case-folded), ``IP_ADDRESSES`` (addresses and CIDR ranges; a bare
address is a one-host range, ``/32`` or ``/128``), ``REGEX`` (unanchored search, as Go's
``MatchString``).

Fetching is I/O and belongs to the shell; the core only says when (:meth:`ListChecker.refresh_due`:
at start, then every ``refreshInterval``, failed or not) and takes the outcome
(:meth:`ListChecker.install` with the parsed entries, :meth:`ListChecker.fetch_failed`). A list not
refreshed within ``ttl`` of its last successful fetch is purged, as upstream's purge timer does;
with no list (never fetched, or purged) the handler answers ``UNAVAILABLE`` (→ 503), not cacheable,
where upstream returned an adapter error. :func:`parse_list` reads a provider's payload.

**memquota**: glue over :class:`trimesh.quota.MemQuota`; the quota arguments (amount, deduplication
id, best effort) go in, the granted amount and its valid duration come out. Deciding that a grant of
0 means 429 is the caller's (:func:`~trimesh.mixer.quota_exhausted`), as it is the proxy's in Istio.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import yaml

from trimesh.config import DenierParams, ListCheckerParams, MemQuotaParams
from trimesh.errors import ConfigError
from trimesh.quota import MemQuota, QuotaResult, definitions_from_params

from ._status import CheckResult, RpcCode, unavailable

__all__ = ["Denier", "ListChecker", "EntryList", "MemQuotaHandler", "QuotaArgs", "parse_list",
           "MIN_REFRESH_INTERVAL"]

DENIER_DEFAULT_CODE = RpcCode.FAILED_PRECONDITION  # mixer/adapter/denier defaultParam()
MIN_REFRESH_INTERVAL = 1.0  # mixer/adapter/list validateConfig: refreshInterval >= 1s

_IP = ipaddress.IPv4Address | ipaddress.IPv6Address


# --- denier ---------------------------------------------------------------------------------------


class Denier:
    """``kind: denier``: the same answer for every check."""

    __slots__ = ("fqn", "result", "checks")

    def __init__(self, fqn: str, params: DenierParams | None = None) -> None:
        params = params or DenierParams()
        if params.valid_use_count < 0:
            raise ConfigError("validUseCount must be >= 0", path="$.spec.validUseCount")
        status = params.status
        code = DENIER_DEFAULT_CODE if status is None else status.code
        message = "" if status is None else (status.message or "")
        self.fqn = fqn
        self.result = CheckResult(code, message, float(params.valid_duration),
                                  params.valid_use_count, fqn)
        self.checks = 0

    def check(self, value: Any = None, now: float = 0.0) -> CheckResult:
        """The configured status, whatever the instance (``checknothing``: no value; a
        ``listentry``'s value is ignored). Same signature as :meth:`ListChecker.check`."""
        self.checks += 1
        return self.result

    def quota(self, instance: str = "", dimensions: Mapping[str, Any] | None = None,
              args: "QuotaArgs | None" = None, now: float = 0.0) -> QuotaResult:
        """denier's ``HandleQuota``: an empty result, i.e. nothing granted. Same signature as
        :meth:`MemQuotaHandler.quota`."""
        return QuotaResult(0)

    def statistics(self) -> dict[str, Any]:
        return {"checks": self.checks, "code": self.result.code_name}

    def __repr__(self) -> str:
        return f"<Denier {self.fqn} {self.result.body!r}>"


# --- listchecker ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EntryList:
    """A compiled list of one entry type: a value, replaced whole when the provider's list changes.

    ``strings`` holds exact or case-folded entries, ``networks`` IP ranges, ``patterns`` compiled
    regular expressions; only the one for ``entry_type`` is filled."""

    entry_type: str
    strings: frozenset[str] = frozenset()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    patterns: tuple[re.Pattern[str], ...] = ()

    @classmethod
    def compile(cls, entries: Iterable[str], entry_type: str = "STRINGS",
                path: str = "$.spec.overrides") -> "EntryList":
        """Build the list; an entry that does not parse is a ConfigError naming it."""
        entries = [e for e in entries if e != ""]
        if entry_type == "STRINGS":
            return cls(entry_type, strings=frozenset(entries))
        if entry_type == "CASE_INSENSITIVE_STRINGS":
            return cls(entry_type, strings=frozenset(e.casefold() for e in entries))
        if entry_type == "IP_ADDRESSES":
            nets = []
            for i, e in enumerate(entries):
                try:
                    nets.append(ipaddress.ip_network(e.strip(), strict=False))
                except ValueError as exc:
                    raise ConfigError(f"could not parse list entry {e!r}: {exc}",
                                      path=f"{path}[{i}]") from None
            return cls(entry_type, networks=tuple(nets))
        if entry_type == "REGEX":
            pats = []
            for i, e in enumerate(entries):
                try:
                    pats.append(re.compile(e))
                except re.error as exc:
                    raise ConfigError(f"could not compile regular expression {e!r}: {exc}",
                                      path=f"{path}[{i}]") from None
            return cls(entry_type, patterns=tuple(pats))
        raise ConfigError(f"unknown entryType {entry_type!r}", path="$.spec.entryType")

    def merged(self, other: "EntryList") -> "EntryList":
        return EntryList(self.entry_type, self.strings | other.strings,
                         self.networks + other.networks, self.patterns + other.patterns)

    def __len__(self) -> int:
        return len(self.strings) + len(self.networks) + len(self.patterns)

    def contains(self, value: Any) -> bool:
        """Is ``value`` on the list? Raises ValueError for a value that is not an IP address in
        IP_ADDRESSES mode."""
        kind = self.entry_type
        if kind == "STRINGS":
            return _text(value) in self.strings
        if kind == "CASE_INSENSITIVE_STRINGS":
            return _text(value).casefold() in self.strings
        if kind == "IP_ADDRESSES":
            ip = _ip(value)
            return any(ip.version == net.version and ip in net for net in self.networks)
        text = _text(value)
        return any(p.search(text) for p in self.patterns)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _ip(value: Any) -> _IP:
    """An IP_ADDRESS attribute: an ``ipaddress`` object, its text, or its 4/16 raw bytes;
    IPv4-mapped IPv6 addresses compare as IPv4 (as Go's ``net.IP`` does)."""
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        ip: _IP = value
    elif isinstance(value, (bytes, bytearray)) and len(value) in (4, 16):
        ip = ipaddress.ip_address(bytes(value))
    else:
        try:
            ip = ipaddress.ip_address(_text(value).strip())
        except ValueError:
            raise ValueError(f"{_text(value)} is not a valid IP address") from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def parse_list(text: str) -> list[str]:
    """The entries of a provider's payload: YAML ``whitelist: [...]`` (upstream's format for IP
    lists) or a YAML sequence, else one entry per line (upstream's format for strings and regexes;
    each line stripped, blank lines skipped). A YAML payload of another shape is a ConfigError."""
    if text.lstrip().startswith(("whitelist:", "- ")):
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"could not parse the list: {exc}") from None
        if isinstance(doc, dict) and isinstance(doc.get("whitelist"), list):
            doc = doc["whitelist"]
        if not isinstance(doc, list):
            raise ConfigError("a list payload in YAML must be a sequence or a mapping with a"
                              " 'whitelist' sequence")
        return [str(e) for e in doc if e is not None and str(e) != ""]
    return [line.strip() for line in text.splitlines() if line.strip()]


class ListChecker:
    """``kind: listchecker``: whitelist or blacklist lookups of one handler.

    ``install(entries, now)`` puts a freshly fetched list in place (the shell fetches
    ``providerUrl``); ``check(value, now)`` answers."""

    __slots__ = ("fqn", "params", "overrides", "_list", "_fetched_at", "_attempted_at",
                 "last_error", "_stats")

    def __init__(self, fqn: str, params: ListCheckerParams) -> None:
        _validate_list_params(params)
        self.fqn = fqn
        self.params = params
        self.overrides = EntryList.compile(params.overrides, params.entry_type)
        self._list: EntryList | None = None if params.provider_url else self.overrides
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self.last_error: str | None = None
        self._stats = {"checks": 0, "denied": 0, "unavailable": 0, "fetches": 0,
                       "fetch_failures": 0}

    @property
    def blacklist(self) -> bool:
        return self.params.blacklist

    # --- the provider's list -------------------------------------------------------------------

    def refresh_due(self, now: float) -> bool:
        """Should the shell fetch ``providerUrl`` now? At start, then every ``refreshInterval``
        after the last attempt. Never without a provider URL."""
        at = self.next_refresh_at()
        return at is not None and now >= at

    def next_refresh_at(self) -> float | None:
        if not self.params.provider_url:
            return None
        if self._attempted_at is None:
            return float("-inf")
        return self._attempted_at + self.params.refresh_interval

    def purge_at(self) -> float | None:
        """When the fetched list is dropped unless refreshed (``ttl`` after the last success)."""
        if not self.params.provider_url or self._fetched_at is None:
            return None
        return self._fetched_at + self.params.ttl

    def install(self, entries: Iterable[str] | EntryList, now: float) -> None:
        """A successful fetch: the provider's entries plus the overrides replace the list."""
        fetched = (entries if isinstance(entries, EntryList)
                   else EntryList.compile(entries, self.params.entry_type, path="providerUrl"))
        self._list = fetched.merged(self.overrides)
        self._fetched_at = self._attempted_at = now
        self.last_error = None
        self._stats["fetches"] += 1

    def fetch_failed(self, error: str, now: float) -> None:
        """A failed fetch: the current list stays until its ``ttl`` runs out."""
        self._attempted_at = now
        self.last_error = error
        self._stats["fetch_failures"] += 1

    def current(self, now: float) -> EntryList | None:
        """The list in force at ``now``: ``None`` before the first fetch or once purged."""
        purge = self.purge_at()
        if purge is not None and now >= purge:
            self._list = None
            self._fetched_at = None
        return self._list

    # --- checks --------------------------------------------------------------------------------

    def check(self, value: Any, now: float) -> CheckResult:
        """Look ``value`` (the evaluated ``listentry`` value) up."""
        self._stats["checks"] += 1
        entries = self.current(now)
        if entries is None:
            self._stats["unavailable"] += 1
            why = f": {self.last_error}" if self.last_error else ""
            return unavailable(f"list from {self.params.provider_url} is not available{why}",
                               self.fqn)
        p = self.params
        try:
            found = entries.contains(value)
        except ValueError as exc:
            code, message = RpcCode.INVALID_ARGUMENT, str(exc)
        else:
            if p.blacklist:
                code, message = ((RpcCode.PERMISSION_DENIED, f"{_text(value)} is blacklisted")
                                 if found else (RpcCode.OK, ""))
            else:
                code, message = ((RpcCode.OK, "") if found
                                 else (RpcCode.NOT_FOUND, f"{_text(value)} is not whitelisted"))
        if code != RpcCode.OK:
            self._stats["denied"] += 1
        return CheckResult(code, message, float(p.caching_interval), p.caching_use_count,
                           self.fqn)

    def statistics(self) -> dict[str, Any]:
        entries = self._list
        return {"entries": None if entries is None else len(entries),
                "mode": "blacklist" if self.blacklist else "whitelist",
                "entry_type": self.params.entry_type, "fetched_at": self._fetched_at,
                "last_error": self.last_error, **self._stats}

    def __repr__(self) -> str:
        size = "no list" if self._list is None else f"{len(self._list)} entries"
        mode = "blacklist" if self.blacklist else "whitelist"
        return f"<ListChecker {self.fqn} {mode} {self.params.entry_type} {size}>"


def _validate_list_params(p: ListCheckerParams) -> None:
    if p.provider_url:
        if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]+", p.provider_url):
            raise ConfigError(f"providerUrl {p.provider_url!r} needs a scheme and a host",
                              path="$.spec.providerUrl")
        if p.refresh_interval < MIN_REFRESH_INTERVAL:
            raise ConfigError(f"refreshInterval must be at least 1s, got {p.refresh_interval!r}",
                              path="$.spec.refreshInterval")
        if p.ttl <= p.refresh_interval:
            raise ConfigError("ttl must be longer than refreshInterval",
                              path="$.spec.ttl")
    if p.caching_use_count < 0:
        raise ConfigError("cachingUseCount must be >= 0", path="$.spec.cachingUseCount")


# --- memquota -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuotaArgs:
    """A quota request's arguments (Mixer's ``QuotaParams``): ``amount`` to charge, the
    ``dedup_id`` that makes a retried call idempotent, and ``best_effort`` (grant what is left
    instead of all or nothing)."""

    amount: int = 1
    dedup_id: str | None = None
    best_effort: bool = False


class MemQuotaHandler:
    """``kind: memquota``: one handler's counters, answering quota requests for its instances."""

    __slots__ = ("fqn", "quotas")

    def __init__(self, fqn: str, params: MemQuotaParams, *, share: float = 1.0) -> None:
        self.fqn = fqn
        self.quotas = MemQuota.from_params(params, share=share)

    def quota(self, instance: str, dimensions: Mapping[str, Any], args: QuotaArgs,
              now: float) -> QuotaResult:
        """Charge the quota instance ``instance`` (its FQN, as the handler's ``quotas[].name``
        lists it) for the evaluated ``dimensions``; a negative amount gives units back."""
        if args.amount < 0:
            return self.quotas.release(instance, dimensions, -args.amount, now,
                                       dedup_id=args.dedup_id)
        return self.quotas.alloc(instance, dimensions, args.amount, now, dedup_id=args.dedup_id,
                                 best_effort=args.best_effort)

    def reconfigure(self, params: MemQuotaParams) -> None:
        """The handler's spec changed: new limits, counters kept where they still apply."""
        self.quotas.reconfigure(definitions_from_params(params))

    def expire(self, now: float) -> int:
        return self.quotas.expire(now)

    def statistics(self) -> dict[str, Any]:
        return self.quotas.statistics()

    def __repr__(self) -> str:
        return f"<MemQuotaHandler {self.fqn} {self.quotas!r}>"
