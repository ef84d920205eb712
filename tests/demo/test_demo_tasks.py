"""The docs' traffic tasks (traffic-tasks.md §2–5) end to end: the BookInfo mesh as real processes,
rules applied with ``trimesh create|replace|delete -f samples/bookinfo/kube/…`` as the tasks say (from what ``--write-rules`` wrote), and
the product page loaded at the entry point like a browser (jason = the ``user=jason`` cookie).

Every test starts from no rules (the autouse fixture deletes what a test created)."""

from __future__ import annotations

import json
import time
from collections import Counter

import httpx
import pytest
from demo_testkit import RULES, RULES_HOME, trimesh_cli

from trimesh.demo import read_page
from trimesh.demo._scenarios import load_many

REVIEWS_UNAVAILABLE = "Sorry, product reviews are currently unavailable for this book."
RATINGS_UNAVAILABLE = "Ratings service is currently unavailable"


@pytest.fixture
def mesh(bookinfo_mesh):
    yield bookinfo_mesh
    bookinfo_mesh.delete_all()


def rules(name: str) -> str:
    return str((RULES / name).relative_to(RULES_HOME))  # samples/bookinfo/kube/NAME


def kinds(mesh, count: int, user: str | None = None) -> Counter:
    return Counter(p.view.kind for p in load_many(mesh, count, user=user))


def test_product_page_answers_200_at_the_printed_url(mesh):
    assert mesh.page_url.startswith("http://127.0.12.")
    response = httpx.get(mesh.page_url, timeout=10)
    assert response.status_code == 200
    assert "The Comedy of Errors" in response.text
    view = read_page(response.text)
    assert view.details and view.reviews
    assert mesh.ingress_url == "http://127.0.12.100:8080"  # the demo's own ingress
    edge = mesh.load_page(ingress=True)
    assert edge.status == 200 and edge.view.details and edge.view.reviews


def test_trimesh_members_lists_every_sidecar_found_by_gossip(mesh):
    """The demo's sidecars learn each other by gossip, not a registry file: `trimesh members`
    (the command the demo prints) lists the control and the six sidecars, all alive."""
    out = trimesh_cli(mesh, "members", "-o", "json", wait=False)
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert sorted(rows) == sorted(mesh.plan.member_names())
    assert {r["state"] for r in rows.values()} == {"alive"}
    reviews = rows["reviews-v2@127.0.12.5:7946"]
    assert (reviews["service"], reviews["labels"]["version"]) == ("reviews", "v2")
    assert reviews["instances"][0]["address"] == "127.0.12.5"
    assert reviews["instances"][0]["port"] == 9080
    # every sidecar's snapshot holds every instance, and none came from a --registry file
    for m in mesh.plan.members:
        dump = httpx.get(f"{m.admin_url}/config_dump", timeout=5).json()
        assert {(i["address"], i["port"]) for i in dump["instances"]} == {
            (o.address, o.port) for o in mesh.plan.members}
        stats = httpx.get(f"{m.admin_url}/stats", timeout=5).json()
        assert stats["gossip"]["name"] == m.member_name
        assert stats["gossip"]["instances"] == len(mesh.plan.members)
        assert (stats["files"]["registry"], stats["files"]["instances"]) == (None, 0)
    assert mesh.statistics()["gossip_alive"] == 7


def test_without_rules_the_page_cycles_through_all_reviews_versions(mesh):
    """§2.1: no default route, so every version of reviews answers in turn."""
    seen = Counter(mesh.load_page().view.kind for _ in range(30))
    assert set(seen) == {"no-stars", "black", "red"}, seen
    assert min(seen.values()) >= 5, seen  # not one stray answer: each version takes its turn


def test_route_rule_all_v1_never_shows_stars(mesh):
    out = trimesh_cli(mesh, "create", "-f", rules("route-rule-all-v1.yaml"))
    created = [line for line in out.stdout.splitlines() if line.startswith("Created config")]
    assert len(created) == 4, out.stdout
    listed = trimesh_cli(mesh, "get", "routerules", wait=False).stdout
    for name in ("details-default", "productpage-default", "ratings-default", "reviews-default"):
        assert name in listed
    assert kinds(mesh, 30) == {"no-stars": 30}
    assert kinds(mesh, 5, user="jason") == {"no-stars": 5}


def test_reviews_test_v2_jason_sees_black_stars_and_others_none(mesh):
    trimesh_cli(mesh, "create", "-f", rules("route-rule-all-v1.yaml"))
    trimesh_cli(mesh, "create", "-f", rules("route-rule-reviews-test-v2.yaml"))
    # signing in on the page sets the cookie the rule matches
    with httpx.Client(timeout=10) as browser:
        login = browser.post(mesh.page_url.replace("/productpage", "/login"),
                             data={"username": "jason", "passwd": "x"})
        assert login.status_code in (302, 303), login.text
        assert browser.cookies.get("user") == "jason"
        for _ in range(10):
            page = read_page(browser.get(mesh.page_url).text)
            assert page.user == "jason"
            assert page.kind == "black"
            assert page.stars == (5, 4)  # ratings v1: Reviewer1 5, Reviewer2 4
    assert kinds(mesh, 10) == {"no-stars": 10}


def test_fault_injection_delay_jason_sees_reviews_unavailable_after_6s(mesh):
    """§3.2: a 7 s delay on jason's ratings calls; reviews v2 waits (10 s timeout), productpage
    gives up after 3 s twice: the page shows the reviews-unavailable message after ~6 s."""
    trimesh_cli(mesh, "create", "-f", rules("route-rule-all-v1.yaml"))
    trimesh_cli(mesh, "create", "-f", rules("route-rule-reviews-test-v2.yaml"))
    trimesh_cli(mesh, "create", "-f", rules("route-rule-ratings-test-delay.yaml"))
    other = mesh.load_page()
    assert other.view.kind == "no-stars" and other.elapsed < 1.0  # only jason is delayed
    jason = mesh.load_page(user="jason")
    assert jason.status == 200
    assert REVIEWS_UNAVAILABLE in jason.body
    assert 5.8 <= jason.elapsed < 7.0, jason.elapsed  # 2 x 3 s, before the 7 s delay ends


def test_fault_injection_abort_jason_sees_ratings_unavailable_at_once(mesh):
    trimesh_cli(mesh, "create", "-f", rules("route-rule-all-v1.yaml"))
    trimesh_cli(mesh, "create", "-f", rules("route-rule-reviews-test-v2.yaml"))
    trimesh_cli(mesh, "create", "-f", rules("route-rule-ratings-test-abort.yaml"))
    jason = mesh.load_page(user="jason")
    assert RATINGS_UNAVAILABLE in jason.body and jason.view.kind == "ratings-unavailable"
    assert jason.elapsed < 1.0
    assert mesh.load_page().view.kind == "no-stars"


def test_traffic_shifting_50_percent_then_all_to_v3(mesh):
    """§4.1: replace reviews-default with a 50/50 v1/v3 split, then with v3 only."""
    trimesh_cli(mesh, "create", "-f", rules("route-rule-all-v1.yaml"))
    trimesh_cli(mesh, "replace", "-f", rules("route-rule-reviews-50-v3.yaml"))
    shown = trimesh_cli(mesh, "get", "routerule", "reviews-default", "-o", "yaml",
                        wait=False).stdout
    assert shown.count("weight: 50") == 2, shown
    seen = kinds(mesh, 200)
    assert set(seen) <= {"red", "no-stars"}, seen
    assert 80 <= seen["red"] <= 120, seen  # 50 % ± 10 points
    trimesh_cli(mesh, "replace", "-f", rules("route-rule-reviews-v3.yaml"))
    assert kinds(mesh, 20) == {"red": 20}
    assert kinds(mesh, 3, user="jason") == {"red": 3}


def test_request_timeouts(mesh):
    """§5.2: reviews to v2; a 2 s delay on ratings makes every page take ~2 s; a 1 s timeout on
    reviews then cuts each productpage→reviews call at 1 s (504), so reviews are unavailable and
    the page comes back after the two tries (~2 s, §5.3 [DERIVED]) without waiting for ratings."""
    trimesh_cli(mesh, "create", "-f", rules("route-rule-all-v1.yaml"))
    trimesh_cli(mesh, "replace", "-f", rules("route-rule-reviews-timeout-v2.yaml"))
    assert mesh.load_page().view.kind == "black"
    trimesh_cli(mesh, "replace", "-f", rules("route-rule-ratings-delay-2s.yaml"))
    slow = mesh.load_page()
    assert slow.view.kind == "black" and 2.0 <= slow.elapsed < 3.0, (slow.view, slow.elapsed)

    trimesh_cli(mesh, "replace", "-f", rules("route-rule-reviews-timeout-1s.yaml"))
    since = time.time()
    cut = mesh.load_page()
    assert REVIEWS_UNAVAILABLE in cut.body
    assert 2.0 <= cut.elapsed < 3.0, cut.elapsed  # two tries, each cut at 1 s

    productpage = mesh.plan.member("productpage")

    def reviews_calls():
        return [r for r in mesh.access_records(productpage)
                if r["direction"] == "outbound" and r["authority"].startswith("reviews")
                and r["time"] - r["duration_ms"] / 1000 >= since]

    deadline = time.monotonic() + 3.0  # the access log is flushed every 0.5 s
    while len(reviews_calls()) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    calls = reviews_calls()
    assert [(c["status"], c["flags"]) for c in calls] == [(504, "UT"), (504, "UT")], calls
    assert all(1.0 <= c["duration_ms"] / 1000 < 1.5 for c in calls), calls

    # §5.4: deleting route-rule-all-v1 removes the replaced rules too (same names)
    trimesh_cli(mesh, "delete", "-f", rules("route-rule-all-v1.yaml"))
    listed = trimesh_cli(mesh, "get", "routerules", wait=False).stdout
    assert listed.strip().splitlines()[1:] == [], listed


def test_bookinfo_through_the_ingress(mesh, tmp_path):
    """The docs' ingress task against BookInfo (issue 15): ``trimesh run ingress`` with BookInfo's
    ``gateway`` Ingress (samples/bookinfo/kube/bookinfo-ingress.yaml) in front of productpage's
    sidecar. The product page answers 200 through the ingress URL, ``/login`` sets the user's
    cookie, a path the Ingress does not expose gets 404 with ``content-length: 0`` (flag NR), and
    the HTTPS port answers with the given certificate."""
    import ssl

    from cryptography import x509
    from procs import free_port, spawn, trimesh_command, wait_until

    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("bookinfo.example")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "tls.crt"))
    cert.private_key_pem.write_to_path(str(tmp_path / "tls.key"))
    entry = mesh.entry  # productpage's sidecar inbound: where the ingress sends the page
    (tmp_path / "registry.yaml").write_text(
        f"- {{service: productpage, address: {entry.address}, port: {entry.port}, "
        f"labels: {{version: {entry.version}}}}}\n")
    address = "127.0.12.50"  # in this module's block, beside the mesh's members
    http_port, tls_port, admin = (free_port(address) for _ in range(3))
    proc = spawn("ingress", [*trimesh_command(), "run", "ingress", "--address", address,
                             "--port", str(http_port), "--tls-port", str(tls_port),
                             "--tls-cert", str(tmp_path / "tls.crt"),
                             "--tls-key", str(tmp_path / "tls.key"), "--admin-port", str(admin),
                             "--control", "none", "--registry", str(tmp_path / "registry.yaml"),
                             "--config", str(RULES / "bookinfo-ingress.yaml")], tmp_path)
    try:
        wait_until(lambda: httpx.get(f"http://{address}:{admin}/ready", timeout=2).status_code
                   == 200, 30, "the ingress /ready", proc)
        base = f"http://{address}:{http_port}"
        page = httpx.get(f"{base}/productpage", timeout=10)
        assert page.status_code == 200 and "The Comedy of Errors" in page.text
        view = read_page(page.text)
        assert view.details and view.reviews
        login = httpx.post(f"{base}/login", data={"username": "jason"}, timeout=10)
        assert login.status_code in (200, 302)
        assert login.headers["set-cookie"].startswith("user=jason")
        signed_in = httpx.get(f"{base}/productpage", cookies={"user": "jason"}, timeout=10)
        assert read_page(signed_in.text).user == "jason"
        hidden = httpx.get(f"{base}/details/0", timeout=10)  # a path the Ingress does not list
        assert (hidden.status_code, hidden.headers["content-length"]) == (404, "0")
        assert hidden.headers["x-trimesh-response-flags"] == "NR"
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        ctx.check_hostname = False
        secure = httpx.get(f"https://{address}:{tls_port}/productpage", verify=ctx, timeout=10)
        assert secure.status_code == 200 and "The Comedy of Errors" in secure.text
        pem = ssl.get_server_certificate((address, tls_port))
        names = x509.load_pem_x509_certificate(pem.encode()).extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
        assert names == ["bookinfo.example"]
    finally:
        proc.stop()
