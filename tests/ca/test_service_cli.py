"""``trimesh ca token`` and ``trimesh run ca``'s start errors, through click's runner."""

from __future__ import annotations

import time

from click.testing import CliRunner

from trimesh.ca import load_or_create_state, verify_token
from trimesh.cli._main import cli


def test_ca_token_is_for_one_identity_and_expires(tmp_path):
    state = load_or_create_state(tmp_path, now=time.time())
    result = CliRunner().invoke(cli, ["ca", "token", "--service-account", "reviews", "-n", "shop",
                                      "--ttl", "10m", "--state-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    claim = verify_token(state.secret, result.output.strip(), time.time())
    assert (claim.namespace, claim.service_account) == ("shop", "reviews")
    assert 590 <= claim.expires - time.time() <= 600


def test_ca_token_without_a_ca_state_says_where_it_looked(tmp_path):
    result = CliRunner().invoke(cli, ["ca", "token", "--service-account", "reviews",
                                      "--state-dir", str(tmp_path / "nowhere")])
    assert result.exit_code == 1
    assert "token-secret: cannot read the CA's token secret" in result.output


def test_ca_token_refuses_a_bad_account(tmp_path):
    load_or_create_state(tmp_path, now=time.time())
    result = CliRunner().invoke(cli, ["ca", "token", "--service-account", "a/b",
                                      "--state-dir", str(tmp_path)])
    assert result.exit_code == 1 and "Error:" in result.output


def test_run_ca_with_a_bad_operator_file_exits_1_naming_it(tmp_path):
    for name in ("ca-cert.pem", "ca-key.pem", "root-cert.pem"):
        (tmp_path / name).write_text("garbage\n")
    result = CliRunner().invoke(cli, ["run", "ca", "--port", "0", "--state-dir",
                                      str(tmp_path / "state"), "--plugin-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert f"{tmp_path / 'ca-cert.pem'}" in result.output and "not a PEM" in result.output


def test_run_ca_operator_flags_need_self_signed_off(tmp_path):
    result = CliRunner().invoke(cli, ["run", "ca", "--signing-cert", str(tmp_path / "x")])
    assert result.exit_code == 2 and "--self-signed-ca=false" in result.output
