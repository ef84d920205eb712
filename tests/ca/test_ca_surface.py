"""The public surface of trimesh.ca, and its purity: no I/O, clock or randomness of its own."""

from __future__ import annotations

import ast
import pathlib

import trimesh.ca as ca

CONTRACT = {"CertificateAuthority", "IssuedCertificate", "PemFile", "SpiffeId", "identity_from_certificate",
            "check_secure_naming", "make_csr", "parse_csr", "issue_token", "issue_mesh_token",
            "verify_token", "TokenClaim", "IssuanceLog", "IssuedRecord", "renewal_time", "renewal_delay"}
FORBIDDEN = {"trio", "socket", "ssl", "time", "random", "secrets", "asyncio", "threading", "os",
             "subprocess", "pathlib"}
CLOCK_READS = {"now", "utcnow", "today"}  # datetime.now() & co. would read the clock
SHELLS = {"_service.py", "_agent.py"}  # the Trio CA service and cert agent: I/O is their job


def test_contract_names_are_exported():
    assert CONTRACT <= set(ca.__all__)
    for name in ca.__all__:
        obj = getattr(ca, name)
        assert getattr(obj, "__module__", "trimesh.ca").startswith("trimesh.ca"), name


def _modules():
    return sorted(p for p in pathlib.Path(ca.__file__).parent.glob("*.py") if p.name not in SHELLS)


def test_ca_modules_import_nothing_impure():
    assert len(_modules()) >= 7
    for path in _modules():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                names = []
            for n in names:
                assert n.split(".")[0] not in FORBIDDEN, f"{path.name} imports {n}"
            if isinstance(node, ast.Attribute):
                assert node.attr not in CLOCK_READS, f"{path.name} reads the clock ({node.attr})"
