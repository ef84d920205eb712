"""The samples' public surfaces (tests/test_public_surface.py leaves them to this file), and the
rule files as package data: every one listed by its docs path and written out by ``write_rules``."""

from __future__ import annotations

import importlib
import types

import pytest

from trimesh.errors import TrimeshError
from trimesh.samples import BOOKINFO_RULES, SAMPLES_DIR, rule_files, write_rules

SURFACES = {
    "trimesh.samples": {
        "BOOKINFO", "BOOKINFO_RULES", "DOCS_PREFIX", "FetchError", "HTTPBIN", "HttpConnection",
        "Proxy", "SAMPLES_DIR", "Workload", "fetch", "rule_files", "split_url", "write_rules"},
    "trimesh.samples.bookinfo": {
        "BOOK_DETAILS", "DETAILS_UNAVAILABLE", "Details", "FORWARDED_HEADERS", "PRODUCT",
        "ProductPage", "RATINGS", "RATINGS_UNAVAILABLE", "REVIEWS", "REVIEWS_TRIES",
        "REVIEWS_UNAVAILABLE", "REVIEWS_VERSIONS", "REVIEW_RATINGS_UNAVAILABLE", "Ratings",
        "Reviews", "UPSTREAM_TIMEOUT", "forwarded_headers", "render_product_page", "service_url"},
    "trimesh.samples.httpbin": {"DEFAULT_PORT", "HttpBin", "MAX_DELAY", "title_case"},
    "trimesh.samples.loadgen": {"ERROR_CODE", "LoadResult", "format_report", "run_load",
                                "split_calls"},
    "trimesh.samples.sleep": {"main", "sleep_until_signalled"},
}


@pytest.mark.parametrize("package", sorted(SURFACES))
def test_the_samples_surfaces(package):
    module = importlib.import_module(package)
    names = {n for n, v in vars(module).items()
             if not n.startswith("_") and not isinstance(v, types.ModuleType)} - {"annotations"}
    assert names == SURFACES[package]


def test_rule_files_are_listed_by_their_docs_paths():
    names = rule_files()
    assert "samples/bookinfo/kube/route-rule-all-v1.yaml" in names
    assert "samples/httpbin/routerules/httpbin-v1.yaml" in names
    assert names == sorted(names) and len(names) == len(list(SAMPLES_DIR.rglob("*.yaml")))
    assert (BOOKINFO_RULES / "route-rule-all-v1.yaml").is_file()


def test_write_rules_copies_every_file_byte_for_byte_and_replaces_old_copies(tmp_path):
    (tmp_path / "samples" / "bookinfo" / "kube").mkdir(parents=True)
    stale = tmp_path / "samples" / "bookinfo" / "kube" / "route-rule-all-v1.yaml"
    stale.write_text("stale")
    written = write_rules(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in written] == rule_files()
    for path in written:
        source = SAMPLES_DIR / path.relative_to(tmp_path / "samples")
        assert path.read_bytes() == source.read_bytes()
    assert stale.read_text() != "stale"


def test_write_rules_under_a_file_names_the_path(tmp_path):
    blocker = tmp_path / "plain-file"
    blocker.write_text("x")
    with pytest.raises(TrimeshError, match="cannot write the docs' rule file .*plain-file/samples/"):
        write_rules(blocker)
