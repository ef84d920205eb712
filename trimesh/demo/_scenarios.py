"""The docs' traffic tasks, run against a live demo mesh (``trimesh demo --check``).

The scenarios follow traffic-tasks.md in the docs' order, each applying the docs' rule files from
``trimesh/samples/bookinfo/kube/`` (the package's copy) the way the task's commands do (create,
replace, delete), waiting until every sidecar shows the new revision (the docs' "wait a few
seconds"), then loading the product page at the entry point like a browser (jason = the
``user=jason`` cookie ``/login`` sets):

1. the product page answers 200 (details and reviews present), at productpage's sidecar and
   through the ingress;
2. request routing, no rules: reviews v1, v2, v3 in turn (§2.1);
3. request routing, ``route-rule-all-v1``: never stars (§2.2);
4. request routing, ``route-rule-reviews-test-v2``: jason black stars, others none (§2.3);
5. fault injection, ``route-rule-ratings-test-delay``: jason's reviews unavailable after ~6 s (§3.2);
6. fault injection, ``route-rule-ratings-test-abort``: jason's ratings unavailable at once (§3.5);
7. traffic shifting, ``route-rule-reviews-50-v3`` (replace): 50 % red ± 10 points over 200 loads,
   then ``route-rule-reviews-v3``: every load red (§4.1);
8. request timeouts: reviews to v2, a 2 s delay on ratings (pages take ~2 s), then a 1 s timeout on
   reviews (every productpage→reviews call 504 after ~1 s, reviews unavailable) (§5.2, §5.3);
9. cleanup: ``delete -f route-rule-all-v1`` leaves no rule (§5.4);
10. with ``--mtls`` only: every sidecar holds its certificate and requires mutual TLS on its
    inbound port, and a plaintext request to productpage's sidecar is refused (the page itself is
    loaded through the ingress then).

Scenarios share the mesh and build on each other's rules, as the docs' tasks do; each returns a
:class:`~trimesh.demo._verdicts.Verdict` and a failure never stops the next one (it starts from the
rules the docs' step before it would leave).
"""

from __future__ import annotations

import http.client
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import TrimeshError
from . import _verdicts as v
from ._mesh import DemoError, DemoMesh, PageLoad, http_get

JASON = "jason"
CYCLE_LOADS = 30  # three versions, each seen ~10 times
STEADY_LOADS = 20
SHIFT_LOADS = 200  # the acceptance: 50 % ± 10 points over 200 page loads
LOAD_WORKERS = 4  # parallel page loads for the long runs (the mesh has 2 cores to share)
REVIEWS_TRIES = 2  # productpage tries reviews twice (the sample's deliberate bug, §3.3)
ACCESS_LOG_WAIT = 3.0  # seconds for the access log flusher (every 0.5 s) to write the calls


@dataclass(frozen=True)
class ScenarioResult:
    name: str
    ok: bool
    summary: str
    elapsed: float

    def line(self) -> str:
        return f"{'PASS' if self.ok else 'FAIL'}  {self.name:<34} {self.summary} [{self.elapsed:.1f}s]"


def load_many(mesh: DemoMesh, count: int, *, user: str | None = None,
              workers: int = LOAD_WORKERS) -> list[PageLoad]:
    """``count`` page loads, ``workers`` at a time."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda _: mesh.load_page(user=user), range(count)))


def _started(record: dict) -> float:
    """When an access-log record's request began (records are written when it ends)."""
    try:
        return float(record.get("time", 0)) - float(record.get("duration_ms", 0)) / 1000.0
    except (TypeError, ValueError):
        return 0.0


def _rules(objects: list[dict]) -> list[dict]:
    """The stored objects but the demo's own MeshConfig (``--mtls``)."""
    return [d for d in objects if d.get("kind") != "MeshConfig"]


def _kinds(loads: list[PageLoad]) -> list[str]:
    return [p.view.kind for p in loads]


def _statuses(loads: list[PageLoad]) -> list[int]:
    return [p.status for p in loads]


class Tasks:
    """The scenarios bound to one mesh and one directory of the docs' BookInfo rule files."""

    def __init__(self, mesh: DemoMesh, rules: Path) -> None:
        self.mesh = mesh
        self.rules = rules

    def _apply(self, verb: str, name: str) -> None:
        self.mesh.apply(verb, self.rules / name)

    def _delete_rule(self, name: str) -> None:
        """``trimesh delete routerule NAME`` (the traffic-shifting task's step 3)."""
        with self.mesh.client() as client:
            client.delete("RouteRule", "default", name)
        self.mesh.wait_synced()

    # -- the scenarios ----------------------------------------------------------------------
    def product_page(self) -> v.Verdict:
        page = self.mesh.load_page()
        ok = page.status == 200 and page.view.details and page.view.reviews
        summary = (f"{page.status} in {page.elapsed:.2f}s at {self.mesh.page_url} (details "
                   f"{'shown' if page.view.details else 'missing'}, reviews "
                   f"{'shown' if page.view.reviews else 'missing'})")
        if self.mesh.ingress_url is not None:
            edge = self.mesh.load_page(ingress=True)
            ok = ok and edge.status == 200 and edge.view.details and edge.view.reviews
            summary += f"; through the ingress {edge.status}"
        return v.Verdict(ok, summary)

    def no_rules_cycle(self) -> v.Verdict:
        with self.mesh.client() as client:
            held = _rules(client.list()["objects"])
        if held:
            return v.Verdict(False, f"the control already holds {len(held)} objects; --check "
                                    "needs an empty store (do not pass --state-dir)")
        loads = [self.mesh.load_page() for _ in range(CYCLE_LOADS)]
        return v.cycle(_kinds(loads), _statuses(loads))

    def all_v1(self) -> v.Verdict:
        self._apply("create", "route-rule-all-v1.yaml")
        loads = load_many(self.mesh, STEADY_LOADS)
        return v.all_of(_kinds(loads), "no-stars", _statuses(loads))

    def jason_v2(self) -> v.Verdict:
        self._apply("create", "route-rule-reviews-test-v2.yaml")
        cookie = self.mesh.login(JASON)
        if cookie != f"user={JASON}":
            return v.Verdict(False, f"POST /login set {cookie!r}, not user={JASON}")
        jason = v.all_of(_kinds(load_many(self.mesh, STEADY_LOADS // 2, user=JASON)), "black")
        others = v.all_of(_kinds(load_many(self.mesh, STEADY_LOADS // 2)), "no-stars")
        return v.Verdict(jason.ok and others.ok, f"jason: {jason.summary}; others: {others.summary}")

    def fault_delay(self) -> v.Verdict:
        self._apply("create", "route-rule-ratings-test-delay.yaml")
        try:
            page = self.mesh.load_page(user=JASON)
            other = self.mesh.load_page()
        finally:
            self._apply("delete", "route-rule-ratings-test-delay.yaml")
        jason = v.slow_page(page.view.kind, "reviews-unavailable", page.elapsed,
                            v.FAULT_PAGE_SECONDS - 0.2, v.FAULT_DELAY_SECONDS)
        fine = other.view.kind == "no-stars" and other.elapsed < v.QUICK_SECONDS
        return v.Verdict(jason.ok and fine, f"jason: {jason.summary}; others: {other.view.kind} "
                                            f"in {other.elapsed:.2f}s")

    def fault_abort(self) -> v.Verdict:
        self._apply("create", "route-rule-ratings-test-abort.yaml")
        try:
            page = self.mesh.load_page(user=JASON)
        finally:
            self._apply("delete", "route-rule-ratings-test-abort.yaml")
        return v.slow_page(page.view.kind, "ratings-unavailable", page.elapsed, 0.0,
                           v.QUICK_SECONDS)

    def shift_50(self) -> v.Verdict:
        self._delete_rule("reviews-test-v2")
        self._apply("replace", "route-rule-reviews-50-v3.yaml")
        return v.share(_kinds(load_many(self.mesh, SHIFT_LOADS)), "red", 0.5, "no-stars")

    def shift_100(self) -> v.Verdict:
        self._apply("replace", "route-rule-reviews-v3.yaml")
        loads = load_many(self.mesh, STEADY_LOADS // 2) + load_many(self.mesh, 2, user=JASON)
        return v.all_of(_kinds(loads), "red", _statuses(loads))

    def timeouts(self) -> v.Verdict:
        self._apply("replace", "route-rule-reviews-timeout-v2.yaml")
        black = self.mesh.load_page()
        self._apply("replace", "route-rule-ratings-delay-2s.yaml")
        slow = self.mesh.load_page()
        delayed = v.slow_page(slow.view.kind, "black", slow.elapsed, 2.0, 2.0 + v.TIME_SLACK)
        self._apply("replace", "route-rule-reviews-timeout-1s.yaml")
        pp = self.mesh.plan.member("productpage")
        since = time.time()  # access-log records carry the wall time they were written
        page = self.mesh.load_page()
        cut = v.slow_page(page.view.kind, "reviews-unavailable", page.elapsed, 1.0,
                          2.0 + v.TIME_SLACK)
        calls = v.timed_out_calls([], "reviews", 1.0)
        deadline = time.monotonic() + ACCESS_LOG_WAIT
        while time.monotonic() < deadline:
            records = [r for r in self.mesh.access_records(pp) if _started(r) >= since]
            calls = v.timed_out_calls(records, "reviews", 1.0, calls_expected=REVIEWS_TRIES)
            if calls.ok:
                break
            time.sleep(0.2)
        ok = black.view.kind == "black" and delayed.ok and cut.ok and calls.ok
        return v.Verdict(ok, f"v2: {black.view.kind}; 2 s delay: {delayed.summary}; 1 s timeout: "
                             f"{cut.summary}; {calls.summary}")

    def cleanup(self) -> v.Verdict:
        self._apply("delete", "route-rule-all-v1.yaml")
        with self.mesh.client() as client:
            left = [d["metadata"]["name"] for d in _rules(client.list()["objects"])]
        page = self.mesh.load_page()
        return v.Verdict(not left and page.status == 200,
                         f"rules left: {', '.join(left) or 'none'}; page {page.status}")

    def mutual_tls(self) -> v.Verdict:
        mesh = self.mesh
        missing = []
        for m in mesh.plan.members:
            status, body = http_get(m.address, m.admin_port, "/stats", timeout=5.0)
            tls = json.loads(body).get("mtls") or {} if status == 200 else {}
            if not (tls.get("inbound") and tls.get("identity")):
                missing.append(m.name)
        pp = mesh.entry
        try:
            status, _ = http_get(pp.address, pp.port, "/productpage", timeout=5.0)
            plain = f"plaintext got {status}"
        except (OSError, http.client.HTTPException):
            status, plain = None, "plaintext refused"
        ok = not missing and status is None
        summary = (f"{len(mesh.plan.members) - len(missing)} of {len(mesh.plan.members)} "
                   f"sidecars require it with a certificate; {plain} at {pp.url}")
        if missing:
            summary += f" (not: {', '.join(missing)})"
        return v.Verdict(ok, summary)

    def all(self) -> list[tuple[str, Callable[[], v.Verdict]]]:
        mtls = [("mutual TLS between sidecars", self.mutual_tls)] if self.mesh.mtls else []
        return [*mtls,
            ("product page answers", self.product_page),
            ("routing: no rules, v1/v2/v3", self.no_rules_cycle),
            ("routing: route-rule-all-v1", self.all_v1),
            ("routing: reviews-test-v2 (jason)", self.jason_v2),
            ("fault: 7s ratings delay (jason)", self.fault_delay),
            ("fault: ratings abort (jason)", self.fault_abort),
            ("shifting: 50% to v3", self.shift_50),
            ("shifting: 100% to v3", self.shift_100),
            ("timeouts: 2s delay, 1s timeout", self.timeouts),
            ("cleanup: delete route-rule-all-v1", self.cleanup),
        ]


def run_scenarios(mesh: DemoMesh, rules: Path,
                  report: Callable[[ScenarioResult], None] | None = None) -> list[ScenarioResult]:
    """Run every scenario in order; ``report`` gets each result as it is known."""
    results = []
    for name, scenario in Tasks(mesh, rules).all():
        began = time.monotonic()
        try:
            verdict = scenario()
        except (TrimeshError, OSError, http.client.HTTPException) as exc:
            kind = "" if isinstance(exc, (DemoError, TrimeshError)) else f"{type(exc).__name__}: "
            verdict = v.Verdict(False, f"error: {kind}{exc}")
        result = ScenarioResult(name, verdict.ok, verdict.summary, time.monotonic() - began)
        results.append(result)
        if report is not None:
            report(result)
    return results
