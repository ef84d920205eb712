"""The demo's pure parts: the page reader (against the real productpage renderer), the verdicts,
the mesh plan (its command lines parsed by the real `trimesh run` commands), the gossip
convergence check and the printed commands."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from trimesh.cli._control import run_control
from trimesh.cli._sidecar import run_sidecar
from trimesh.demo import (
    DemoMesh,
    check_block,
    gossip_progress,
    plan_mesh,
    read_page,
    try_commands,
    write_rule_files,
)
from trimesh.demo import _verdicts as v

from trimesh.samples import BOOKINFO
from trimesh.samples.bookinfo._productpage import PRODUCT, render_product_page

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
    plan = plan_mesh(BOOKINFO, python=sys.executable, block="127.0.10")
    assert plan.control_url == "http://127.0.10.1:15010"
    assert [(m.name, m.address, m.port, m.app_port) for m in plan.members] == [
        ("productpage-v1", "127.0.10.2", 9080, 9081), ("details-v1", "127.0.10.3", 9080, 9081),
        ("reviews-v1", "127.0.10.4", 9080, 9081), ("reviews-v2", "127.0.10.5", 9080, 9081),
        ("reviews-v3", "127.0.10.6", 9080, 9081), ("ratings-v1", "127.0.10.7", 9080, 9081)]
    argv = plan.member("reviews", "v2").sidecar_argv(
        ["trimesh"], control_url=plan.control_url, join=plan.join,
        key_file="state/gossip.key", access_log="a.log")
    app = argv[argv.index("--") + 1:]
    assert app[1:] == ["-m", "trimesh.samples.bookinfo.reviews", "--address", "127.0.10.5", "--port",
                       "9081", "--version", "v2"]
    assert "--seed" not in argv and "--registry" not in argv
    # the real `trimesh run sidecar` parses it: gossip through the control, the control's API kept
    params = run_sidecar.make_context("sidecar", argv[3:]).params
    assert params["join"] == ("127.0.10.1:7946",)
    assert params["gossip_key_file"] == "state/gossip.key"
    assert params["gossip_profile"] == "local" and params["gossip_port"] is None  # 7946
    assert params["control"] == "http://127.0.10.1:15010" and params["registry"] is None
    assert params["app_port"] == 9081
    assert params["app_args"][1:3] == ("-m", "trimesh.samples.bookinfo.reviews")
    seeded = plan.members[0].sidecar_argv(["trimesh"], control_url="u", join="j:1", key_file="k",
                                          access_log="a", seed=7)
    assert seeded[seeded.index("--seed") + 1] == "7" and seeded.index("--seed") < seeded.index("--")
    # the control's gossip member is the seed: same address, the plan's gossip port and profile
    control = run_control.make_context("control", plan.control_argv(["trimesh"], state_dir="s")[3:])
    assert (control.params["address"], control.params["gossip_port"],
            control.params["gossip_profile"]) == ("127.0.10.1", 7946, "local")
    assert plan.member_names()[:3] == ["control@127.0.10.1", "productpage-v1@127.0.10.2:7946",
                                       "details-v1@127.0.10.3:7946"]
    other = plan_mesh(BOOKINFO, python=sys.executable, block="127.0.11", gossip_port=7950)
    assert other.join == "127.0.11.1:7950"


def _rows(plan, states):
    return [{"name": n, "state": s} for n, s in zip(plan.member_names(), states, strict=True)]


def _dump(plan, skip=()):
    return [{"address": m.address, "port": m.port, "service": f"{m.service}.default.svc"}
            for m in plan.members if m.name not in skip]


def test_gossip_progress_needs_every_member_alive_and_every_instance_everywhere():
    plan = plan_mesh(BOOKINFO, python=sys.executable, block="127.0.10")
    alive = ["alive"] * 7
    full = {m.name: _dump(plan) for m in plan.members}
    done = gossip_progress(plan, _rows(plan, alive), full)
    assert (done.alive, done.total, done.done) == (7, 7, True)

    # nothing read yet: nobody alive, every sidecar lacks everything
    empty = gossip_progress(plan, None, {})
    assert (empty.alive, empty.total, empty.done) == (0, 7, False)
    assert len(empty.missing) == 6

    # one suspect member, and one sidecar that has not learnt ratings yet
    partial = gossip_progress(plan, _rows(plan, ["alive"] * 6 + ["suspect"]),
                              {**full, "reviews-v2": _dump(plan, skip={"ratings-v1"})})
    assert (partial.alive, partial.done) == (6, False)
    assert partial.not_alive == ("ratings-v1@127.0.10.7:7946",)
    assert partial.missing == ("reviews-v2 lacks ratings-v1 (127.0.10.7:9080)",)
    assert "not alive at the control: ratings-v1@127.0.10.7:7946" in partial.describe()

    # a member the control does not list at all (not joined yet) is not alive
    assert gossip_progress(plan, _rows(plan, alive)[:-1], full).not_alive == (
        "ratings-v1@127.0.10.7:7946",)


@pytest.mark.parametrize("block", ["10.0.0", "127.0", "127.0.0.1", "127.300.0"])
def test_bad_blocks_are_refused(block):
    with pytest.raises(ValueError):
        check_block(block)


def test_try_commands_name_the_control_only_when_it_is_not_the_default(tmp_path):
    written = tmp_path / "rules"
    assert write_rule_files(written, echo=lambda line: None) == 0
    for address, suffix in (("127.0.0.1", ""), ("127.0.10.1", " --control http://127.0.10.1:15010")):
        plan = plan_mesh(BOOKINFO, python=sys.executable, control_address=address)
        mesh = DemoMesh(plan, workdir=tmp_path)
        lines = try_commands(mesh, cwd=written)  # the rule files are there: no --write-rules line
        assert lines[0].split("#")[0].strip() == f"trimesh members{suffix}"
        assert "gossip" in lines[0]
        assert lines[1].split("#")[0].strip() == (
            f"trimesh create -f samples/bookinfo/kube/route-rule-all-v1.yaml{suffix}")
        # the printed path is a file of what --write-rules wrote, relative to where it wrote
        assert (written / lines[1].split()[3]).is_file()
        elsewhere = try_commands(mesh, cwd=Path("/"))  # no rule files here: say how to get them
        assert elsewhere[0].split("#")[0].strip() == "trimesh demo --write-rules ."
        assert elsewhere[1:] == lines
        assert repr(mesh).startswith("<DemoMesh 127.0.10.0/24")
        assert mesh.statistics()["processes"] == 0


def test_public_surface_and_purity():
    import ast

    import trimesh.demo as demo

    for name in ("DemoMesh", "DemoError", "open_demo_mesh", "plan_mesh", "run_demo",
                 "run_scenarios", "read_page", "write_rule_files", "SLEEP"):
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


def test_a_bookinfo_plan_has_an_ingress_in_front_of_productpage_and_others_none():
    plan = plan_mesh(BOOKINFO, python=sys.executable, block="127.0.10")
    assert plan.ingress_address == "127.0.10.100"
    argv = plan.ingress_argv(["trimesh"], registry="r.yaml", config="gw.yaml", access_log="a")
    assert argv[:3] == ["trimesh", "run", "ingress"]
    flags = dict(zip(argv[3::2], argv[4::2]))
    assert flags["--address"] == "127.0.10.100" and flags["--port"] == "8080"
    assert flags["--control"] == "none" and flags["--config"] == "gw.yaml"
    assert flags["--registry"] == "r.yaml"
    assert "127.0.10.100" not in {m.address for m in plan.members}
    from trimesh.samples import HTTPBIN
    assert plan_mesh(HTTPBIN, python=sys.executable, block="127.0.10").ingress_address is None
