"""The CA as a child of the control's tree (``serve_control(ca_port=...)``)."""

from __future__ import annotations

import trio

from trimesh.ca import ca_request, make_csr, mesh_token_path, SpiffeId
from trimesh.control import serve_control

from ca_helpers import ec_key


async def test_the_control_runs_the_ca_with_its_mesh_token(tmp_path, caplog):
    caplog.set_level("INFO")
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: serve_control(
            state_dir=tmp_path, address="127.0.0.1", config_port=0, ca_port=0,
            ca_options={"workload_ttl": 60.0}, task_status=task_status))
        ready = next(r.getMessage() for r in caplog.records
                     if r.getMessage().startswith("ca listening on "))
        host, port = ready.removeprefix("ca listening on ").split(":")[:2]
        token = mesh_token_path(tmp_path).read_text().strip()
        identity = SpiffeId.of("default", "productpage")
        body = await ca_request(host, int(port), "POST", "/v1/certificates", token=token,
                                body={"csr": make_csr(ec_key(5), identity).decode()})
        nursery.cancel_scope.cancel()
    assert body["identity"] == str(identity)
    assert body["not_after"] - body["not_before"] <= 66
    assert (tmp_path / "ca" / "root-cert.pem").read_bytes().decode() == body["root_cert"]


async def test_without_ca_port_there_is_no_ca(tmp_path, caplog):
    caplog.set_level("INFO")
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: serve_control(
            state_dir=tmp_path, address="127.0.0.1", config_port=0, task_status=task_status))
        nursery.cancel_scope.cancel()
    assert not mesh_token_path(tmp_path).exists()
    assert not any(r.getMessage().startswith("ca ") for r in caplog.records)
