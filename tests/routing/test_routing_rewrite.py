"""redirect, rewrite, mirror, appendHeaders, corsPolicy, websocketUpgrade (concepts.md §8.15)."""

from __future__ import annotations

import random

import pytest

from routing_helpers import PRODUCTPAGE, req, route_rule, table
from trimesh.routing import Forward, Redirect


def decide(rule, authority="ratings:9080", path="/", scheme="http"):
    return table([rule], source=PRODUCTPAGE).decide(req(authority, path, scheme=scheme),
                                                    random.Random())


@pytest.mark.parametrize("redirect,path,scheme,location", [
    ({"uri": "/v2/ratings"}, "/ratings/1", "http", "http://ratings:9080/v2/ratings"),
    ({"uri": "/v2/ratings"}, "/ratings/1?x=1", "http", "http://ratings:9080/v2/ratings?x=1"),
    ({"uri": "/v2?y=2"}, "/ratings/1?x=1", "http", "http://ratings:9080/v2?y=2"),
    ({"authority": "new.example.com"}, "/a/b", "https", "https://new.example.com/a/b"),
    ({"uri": "/n", "authority": "n.example.com:8080"}, "/o", "http", "http://n.example.com:8080/n"),
])
def test_redirect_location(redirect, path, scheme, location):
    d = decide(route_rule("r", destination={"name": "ratings"}, redirect=redirect),
               path=path, scheme=scheme)
    assert d == Redirect(302, location, "r")


def rewrite_rule(match_uri: dict | None, rewrite: dict):
    spec = {"destination": {"name": "ratings"}, "rewrite": rewrite}
    if match_uri is not None:
        spec["match"] = {"request": {"headers": {"uri": match_uri}}}
    return route_rule("rw", **spec)


@pytest.mark.parametrize("match_uri,rewrite_uri,path,expected", [
    ({"prefix": "/old/"}, "/new/", "/old/a/b?q=1", "/new/a/b?q=1"),  # only the prefix is replaced
    ({"prefix": "/old"}, "/", "/old", "/"),
    ({"exact": "/old"}, "/new", "/old", "/new"),  # no prefix match: the whole path
    (None, "/fixed", "/any/thing?q=1", "/fixed?q=1"),  # query kept
    ({"regex": "/r/.*"}, "/x", "/r/1", "/x"),
])
def test_rewrite_uri(match_uri, rewrite_uri, path, expected):
    d = decide(rewrite_rule(match_uri, {"uri": rewrite_uri}), path=path)
    assert isinstance(d, Forward) and d.rewrite_path == expected and d.rewrite_authority is None


def test_rewrite_authority_and_pass_through_fields():
    rule = route_rule("all", destination={"name": "ratings"}, rewrite={"authority": "ratings.v2"},
                      appendHeaders={"X-Istio": "yes", "x-b": "2"}, websocketUpgrade=True,
                      corsPolicy={"allowOrigin": ["*"], "allowMethods": ["GET"], "maxAge": "1m"},
                      mirror={"name": "reviews", "labels": {"version": "v2"}})
    d = decide(rule)
    assert d.rewrite_authority == "ratings.v2" and d.rewrite_path is None
    assert d.append_headers == (("x-istio", "yes"), ("x-b", "2"))
    assert d.websocket_upgrade is True
    assert d.cors.allow_origin == ["*"] and d.cors.max_age == 60.0
    assert d.mirror.name == "reviews.default.svc.cluster.local|version=v2"
    assert [i.labels["version"] for i in d.mirror.instances] == ["v2"]


def test_no_rule_means_nothing_extra():
    d = table([], source=PRODUCTPAGE).decide(req("ratings"), random.Random())
    assert (d.rule, d.mirror, d.rewrite_path, d.rewrite_authority, d.append_headers, d.cors,
            d.websocket_upgrade, d.egress_tls, d.external_host) == (
        None, None, None, None, (), None, False, False, None)
