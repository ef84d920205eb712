"""The demo's pure parts: the page reader (against the real productpage renderer), the verdicts,
the mesh plan (its registry file read by the sidecar's own loader) and the printed commands."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml
from demo_testkit import CHECKOUT

from trimesh.demo import (DemoMesh, check_block, load_examples, plan_mesh, read_page,
                          try_commands)
from trimesh.demo import _verdicts as v
from trimesh.sidecar import load_registry_text

load_examples(CHECKOUT)
from examples.bookinfo._productpage import PRODUCT, render_product_page  # noqa: E402

DETAILS = {"author": "William Shakespeare", "year": 1595}


def review(stars=None, color=None, error=None):
    r = {"reviewer": "Reviewer1", "text": "fun"}
    if stars is not None:
        r["rating"] = {"stars": stars, "color": color}
    if error is not None:
        r["rating"] = {"error": error}
    return r


@pytest.mark.parametrize("reviews_status, reviews, kind, stars", [
    (200, {"reviews": [review(), review()]}, "no-stars", ()),
    (200, {"reviews": [review(5, "black"), review(4, "black")]}, "black", (5, 4)),
    (200, {"reviews": [review(5, "red"), review(4, "red")]}, "red", (5, 4)),
    (200, {"reviews": [review(error="Ratings service is currently unavailable")] * 2},
     "ratings-unavailable", ()),
    (500, {"error": "Sorry, product reviews are currently unavailable for this book."},
     "reviews-unavailable", ()),
])
def test_read_page_names_what_the_page_shows(reviews_status, reviews, kind, stars):
    html = render_product_page(PRODUCT, 200, DETAILS, reviews_status, reviews, user="jason")
    view = read_page(html)
    assert view.kind == kind
    assert view.stars == stars
    assert view.user == "jason" and view.details


def test_read_page_of_something_else():
    view = read_page("<html>502 Bad Gateway</html>")
    assert view.kind == "no-reviews" and not view.details and view.user is None


def test_verdicts():
    assert v.cycle(["no-stars", "black", "red"] * 3).ok
    assert not v.cycle(["no-stars", "black"] * 5).ok
    assert not v.cycle(["no-stars", "black", "red"], [200, 200, 503]).ok
    assert v.all_of(["red"] * 3, "red").ok and not v.all_of([], "red").ok
    assert v.share(["red"] * 90 + ["no-stars"] * 110, "red", 0.5, "no-stars").ok
    assert not v.share(["red"] * 125 + ["no-stars"] * 75, "red", 0.5, "no-stars").ok
    assert not v.share(["red"] * 100 + ["black"] * 100, "red", 0.5, "no-stars").ok
    assert v.slow_page("reviews-unavailable", "reviews-unavailable", 6.0, 5.8, 7.0).ok
    assert not v.slow_page("reviews-unavailable", "reviews-unavailable", 7.1, 5.8, 7.0).ok
    cut = {"direction": "outbound", "authority": "reviews:9080", "status": 504, "flags": "UT",
           "duration_ms": 1001.0}
    assert v.timed_out_calls([cut, cut], "reviews", 1.0, calls_expected=2).ok
    assert not v.timed_out_calls([cut], "reviews", 1.0, calls_expected=2).ok
    assert not v.timed_out_calls([dict(cut, status=200)], "reviews", 1.0).ok
    assert not v.timed_out_calls([dict(cut, duration_ms=3000.0)], "reviews", 1.0).ok


def test_plan_gives_each_instance_its_address_and_the_docs_ports():
    examples = load_examples(CHECKOUT)
    plan = plan_mesh(examples.BOOKINFO, python=sys.executable, block="127.0.10")
    assert plan.control_url == "http://127.0.10.1:15010"
    assert [(m.name, m.address, m.port, m.app_port) for m in plan.members] == [
        ("productpage-v1", "127.0.10.2", 9080, 9081), ("details-v1", "127.0.10.3", 9080, 9081),
        ("reviews-v1", "127.0.10.4", 9080, 9081), ("reviews-v2", "127.0.10.5", 9080, 9081),
        ("reviews-v3", "127.0.10.6", 9080, 9081), ("ratings-v1", "127.0.10.7", 9080, 9081)]
    # the sidecar's own loader reads the registry file the demo writes
    instances = load_registry_text(yaml.safe_dump(plan.registry_entries()))
    assert [(i.address, i.labels["version"]) for i in instances] == [
        (m.address, m.version) for m in plan.members]
    argv = plan.member("reviews", "v2").sidecar_argv(["trimesh"], control_url=plan.control_url,
                                                      registry="r.yaml", access_log="a.log")
    app = argv[argv.index("--") + 1:]
    assert app[1:] == ["-m", "examples.bookinfo.reviews", "--address", "127.0.10.5", "--port",
                       "9081", "--version", "v2"]
    assert argv[argv.index("--app-port") + 1] == "9081"
    assert "--seed" not in argv
    seeded = plan.members[0].sidecar_argv(["trimesh"], control_url="u", registry="r",
                                          access_log="a", seed=7)
    assert seeded[seeded.index("--seed") + 1] == "7" and seeded.index("--seed") < seeded.index("--")


@pytest.mark.parametrize("block", ["10.0.0", "127.0", "127.0.0.1", "127.300.0"])
def test_bad_blocks_are_refused(block):
    with pytest.raises(ValueError):
        check_block(block)


def test_try_commands_name_the_control_only_when_it_is_not_the_default(tmp_path):
    examples = load_examples(CHECKOUT)
    for address, suffix in (("127.0.0.1", ""), ("127.0.10.1", " --control http://127.0.10.1:15010")):
        plan = plan_mesh(examples.BOOKINFO, python=sys.executable, control_address=address)
        mesh = DemoMesh(plan, checkout=CHECKOUT, workdir=tmp_path)
        lines = try_commands(mesh, cwd=CHECKOUT)
        assert lines[0].split("#")[0].strip() == (
            f"trimesh create -f examples/bookinfo/route-rule-all-v1.yaml{suffix}")
        elsewhere = try_commands(mesh, cwd=Path("/"))
        assert str(CHECKOUT / "examples" / "bookinfo" / "route-rule-all-v1.yaml") in elsewhere[0]
        assert repr(mesh).startswith("<DemoMesh 127.0.10.0/24")
        assert mesh.statistics()["processes"] == 0


def test_public_surface_and_purity():
    import ast

    import trimesh.demo as demo

    for name in ("DemoMesh", "DemoError", "open_demo_mesh", "plan_mesh", "run_demo",
                 "run_scenarios", "read_page", "find_checkout", "SLEEP"):
        assert hasattr(demo, name)
    # the plan, the page reader and the verdicts are pure: no I/O, clock or randomness
    for module in ("_layout", "_page", "_verdicts"):
        tree = ast.parse((Path(demo.__file__).parent / f"{module}.py").read_text())
        imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                    if isinstance(node, (ast.Import, ast.ImportFrom))
                    for alias in (node.names if isinstance(node, ast.Import) else
                                  [ast.alias(node.module or "")])}
        assert not imported & {"trio", "socket", "ssl", "time", "random", "subprocess", "os"}, (
            module, imported)
