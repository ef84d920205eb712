"""Port names decide protocols (trimesh/config/_protocols.py): pure, table-driven."""

import pytest

from trimesh.config import is_tcp_protocol, port_protocol, register_port_protocol


@pytest.mark.parametrize("name, protocol", [
    ("http", "http"), ("HTTP", "http"), ("http-web", "http"), ("http2", "http2"),
    ("http2-foo", "http2"), ("grpc", "grpc"), ("grpc-x", "grpc"), ("https", "https"),
    ("tcp", "tcp"), ("tcp-x", "tcp"), ("mongo", "mongo"), ("redis", "redis"),
    ("mysql", "mysql"), ("mysql-primary", "mysql"),
    # Istio: unrecognised or unnamed ports are plain TCP; http2foo has no dash
    ("http2foo", "tcp"), ("foo", "tcp"), ("", "tcp"), (None, "tcp"), ("http-", "tcp"),
    ("-http", "tcp"), ("udp", "tcp"),
])
def test_port_name_gives_protocol(name, protocol):
    assert port_protocol(name) == protocol


@pytest.mark.parametrize("protocol, tcp", [
    ("tcp", True), ("mongo", True), ("redis", True), ("mysql", True), ("tcp-db", True),
    ("http", False), ("http2", False), ("grpc", False), ("https", False), ("weird", True),
])
def test_which_protocols_relay_bytes(protocol, tcp):
    assert is_tcp_protocol(protocol) is tcp


@pytest.mark.parametrize("name, port, protocol, why", [
    (None, 3306, "mysql", "well-known port 3306"),
    (None, 6379, "redis", "well-known port 6379"),
    (None, 27017, "mongo", "well-known port 27017"),
    (None, 443, "https", "well-known port 443"),
    (None, 80, "http", "well-known port 80"),
    (None, 8080, "http", "well-known port 8080"),
    (None, 9080, "http", "well-known port 9080"),
    (None, 1234, "http", "default"),  # trimesh register's historical default
    ("tcp", 3306, "tcp", "named"),  # a given name wins over the number
    ("http-web", 3306, "http", "port name 'http-web'"),
    ("foo", 80, "tcp", "port name 'foo'"),
])
def test_register_port_choice(name, port, protocol, why):
    assert register_port_protocol(name, port) == (protocol, why)


@pytest.mark.parametrize("value, parsed", [
    ("echo:9000=19000", ("echo", 9000, 19000)),
    ("db.prod:3306=13306", ("db.prod", 3306, 13306)),
    ("echo:9000", None), ("echo=19000", None), (":9000=1", None), ("echo:0=1", None),
    ("echo:9000=70000", None), ("echo:x=1", None),
])
def test_upstream_flag_parsing(value, parsed):
    import click

    from trimesh.cli._sidecar import parse_upstream

    if parsed is None:
        with pytest.raises(click.BadParameter, match="SERVICE:PORT=LOCAL_PORT"):
            parse_upstream(value)
    else:
        assert parse_upstream(value) == parsed


def test_tcp_record_carries_connection_byte_attributes():
    from trimesh.telemetry import RequestRecord

    rec = RequestRecord(0.0, "outbound", "CONNECT", "db:3306", "", 200, "", "10.0.0.5:3306",
                        "db", None, 1.0, 1, None, "tcp", protocol="tcp", received_bytes=7,
                        sent_bytes=9)
    bag = rec.attributes()
    assert (bag["connection.received.bytes"], bag["connection.sent.bytes"]) == (7, 9)
    assert bag["context.protocol"] == "tcp"
    http = RequestRecord(0.0, "outbound", "GET", "a", "/", 200, "", "", "", None, 0.0, 1, None)
    assert "connection.sent.bytes" not in http.attributes()  # -1: unknown, left out
