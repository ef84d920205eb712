"""`trimesh members`, `register`, `deregister`: argument parsing, output, errors (CLI.md). The
end-to-end path through a real control and 20 sidecars is in tests/mesh."""

from __future__ import annotations

import socket

import click
import pytest
from click.testing import CliRunner

from trimesh.cli._main import cli
from trimesh.cli._members import format_members, parse_port


@pytest.mark.parametrize(("text", "want"), [
    ("9080", ("http", 9080)), ("grpc:9090", ("grpc", 9090)), ("TCP:3306", ("tcp", 3306)),
    # Istio's port-name convention (docs/protocols.md): unknown names are TCP, bare well-known
    # ports pick their protocol
    ("ftp:21", ("tcp", 21)), ("http-web:8000", ("http", 8000)), ("3306", ("mysql", 3306)),
])
def test_parse_port(text, want):
    assert parse_port(text) == want


@pytest.mark.parametrize(("text", "message"), [
    ("0", "1..65535"), ("http:99999", "1..65535"), (":21", "empty port name"), ("x", "PORT"),
])
def test_parse_port_rejects(text, message):
    with pytest.raises(click.BadParameter, match=message):
        parse_port(text)


def test_members_table():
    rows = [
        {"name": "control@127.0.0.1", "address": "127.0.0.1:7946", "state": "alive",
         "service": "", "namespace": "", "labels": {}},
        {"name": "reviews-v2@127.0.0.3:7946", "address": "127.0.0.3:7946", "state": "suspect",
         "service": "reviews", "namespace": "default",
         "labels": {"version": "v2", "app": "reviews"}},
        {"name": "db@10.0.0.9", "address": "10.0.0.9", "state": "static", "service": "db",
         "namespace": "prod", "labels": {"app": "db"}},
    ]
    assert format_members(rows).splitlines() == [
        "NAME                        ADDRESS          STATE     SERVICE   LABELS",
        "control@127.0.0.1           127.0.0.1:7946   alive     -         -",
        "reviews-v2@127.0.0.3:7946   127.0.0.3:7946   suspect   reviews   app=reviews,version=v2",
        "db@10.0.0.9                 10.0.0.9         static    db.prod   app=db",
    ]


def _dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.parametrize("args", [
    ["members"], ["register", "db", "10.0.0.9", "3306"], ["deregister", "db", "10.0.0.9"]])
def test_unreachable_control_exits_1_naming_it(args):
    url = _dead_url()
    result = CliRunner().invoke(cli, [*args, "--control", url])
    assert result.exit_code == 1
    assert f"cannot reach the control at {url}" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("args", [
    ["register", "db", "10.0.0.9"],  # no port
    ["register", "db", "10.0.0.9", "ftp:0"],
    ["register", "db", "10.0.0.9", "80", "-l", "novalue"],
    ["members", "-o", "yaml"],
])
def test_usage_errors_exit_2(args):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert "Usage:" in result.stderr or "Error" in result.stderr
