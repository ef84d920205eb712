"""CA tokens: one identity or the mesh's any-identity token, HMAC-signed, with an expiry."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ca_helpers import NOW, PRODUCTPAGE, REVIEWS, ec_key, seeded_token_bytes, self_signed_ca

from trimesh.ca import (SpiffeId, TokenClaim, issue_mesh_token, issue_token, make_csr, new_token_secret,
                        verify_token)
from trimesh.errors import CAError, ConfigError

SECRET = new_token_secret(seeded_token_bytes(3))
OTHER_SECRET = new_token_secret(seeded_token_bytes(4))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_secret_is_32_bytes_from_token_bytes():
    assert len(SECRET) == 32 and SECRET == new_token_secret(seeded_token_bytes(3)) != OTHER_SECRET


def test_an_identity_token_allows_that_identity_only():
    token = issue_token(SECRET, "default", "bookinfo-productpage", NOW + 3600)
    claim = verify_token(SECRET, token, NOW)
    assert claim == TokenClaim("default", "bookinfo-productpage", NOW + 3600)
    assert claim.allows(PRODUCTPAGE) and not claim.allows(REVIEWS)
    # the trust domain is the CA's to check, not the token's
    assert claim.allows(SpiffeId.of("default", "bookinfo-productpage", "other.domain"))
    assert not claim.any_identity and claim.scope == "default/bookinfo-productpage"
    assert token.startswith("tmca1.") and token.count(".") == 2 and len(token) < 200


def test_the_mesh_token_allows_any_identity_and_need_not_expire():
    claim = verify_token(SECRET, issue_mesh_token(SECRET), NOW + 10 ** 9)
    assert claim.any_identity and claim.expires is None and claim.scope == "any identity"
    assert claim.allows(PRODUCTPAGE) and claim.allows(REVIEWS)


def _tamper_scope(token: str) -> str:
    prefix, payload, mac = token.split(".")
    text = base64.urlsafe_b64decode(payload + "==").decode()
    return f"{prefix}.{_b64(text.replace('default/bookinfo-productpage', '*').encode())}.{mac}"


def _tamper_expiry(token: str) -> str:
    prefix, payload, mac = token.split(".")
    scope, when = base64.urlsafe_b64decode(payload + "==").decode().split(" ")
    return f"{prefix}.{_b64(f'{scope} {int(when) + 10 ** 6}'.encode())}.{mac}"


def _flip_mac(token: str) -> str:
    prefix, payload, mac = token.split(".")
    return f"{prefix}.{payload}.{'B' if mac[0] == 'A' else 'A'}{mac[1:]}"


IDENTITY_TOKEN = issue_token(SECRET, "default", "bookinfo-productpage", NOW + 60)


@pytest.mark.parametrize("secret, token, now, reason, says", [
    (SECRET, IDENTITY_TOKEN, NOW + 60, "token-expired", "expired 0s ago"),
    (SECRET, IDENTITY_TOKEN, NOW + 3600, "token-expired",
     "for default/bookinfo-productpage expired 3540s ago"),
    (SECRET, issue_mesh_token(SECRET, NOW), NOW, "token-expired", "for any identity"),
    (OTHER_SECRET, IDENTITY_TOKEN, NOW, "token-invalid", "issued by another CA"),
    (SECRET, _tamper_scope(IDENTITY_TOKEN), NOW, "token-invalid", "signature does not match"),
    (SECRET, _tamper_expiry(IDENTITY_TOKEN), NOW + 120, "token-invalid", "signature does not match"),
    (SECRET, _flip_mac(IDENTITY_TOKEN), NOW, "token-invalid", "signature does not match"),
    (SECRET, IDENTITY_TOKEN[:-2], NOW, "token-invalid", "not base64url"),
    (SECRET, "", NOW, "token-invalid", "expected tmca1.<payload>.<mac>"),
    (SECRET, "Bearer xyz", NOW, "token-invalid", "expected tmca1"),
    (SECRET, "tmca2" + IDENTITY_TOKEN[5:], NOW, "token-invalid", "expected tmca1"),
    (SECRET, "tmca1.@@@.###", NOW, "token-invalid", "not base64url"),
    (SECRET, "tmca1." + "A" * 2000 + ".x", NOW, "token-invalid", "longer than 1024"),
])
def test_refused_tokens(secret, token, now, reason, says):
    with pytest.raises(CAError) as info:
        verify_token(secret, token, now)
    assert info.value.reason == reason
    assert says in str(info.value)


def test_a_token_is_valid_until_its_expiry():
    assert verify_token(SECRET, IDENTITY_TOKEN, NOW + 59.9).service_account == "bookinfo-productpage"
    assert verify_token(SECRET, f"  {IDENTITY_TOKEN}\n", NOW).namespace == "default"  # pasted from a file


@pytest.mark.parametrize("ns, sa", [("default", "a/b"), ("", "x"), ("default", "..")])
def test_tokens_are_issued_for_well_formed_names_only(ns, sa):
    with pytest.raises(CAError) as info:
        issue_token(SECRET, ns, sa, None)
    assert info.value.reason == "bad-identity"


def test_a_short_secret_is_refused():
    with pytest.raises(ConfigError, match="at least 16"):
        issue_mesh_token(b"short")
    with pytest.raises(ConfigError, match="at least 16"):
        verify_token(b"short", IDENTITY_TOKEN, NOW)


def test_a_token_for_one_account_cannot_obtain_another():
    ca = self_signed_ca()
    claim = verify_token(SECRET, issue_token(SECRET, "default", "bookinfo-productpage", NOW + 60), NOW)
    assert ca.sign_claimed(make_csr(ec_key(1), PRODUCTPAGE), claim=claim, now=NOW).identity == PRODUCTPAGE
    with pytest.raises(CAError) as info:
        ca.sign_claimed(make_csr(ec_key(1), REVIEWS), claim=claim, now=NOW)
    assert info.value.reason == "not-authorized"
    assert str(info.value) == ("the token allows default/bookinfo-productpage, "
                               "not spiffe://cluster.local/ns/default/sa/bookinfo-reviews")
    assert ca.statistics()["issued"] == 1


@given(position=st.integers(min_value=0), char=st.sampled_from("AQgw_-9z."))
def test_editing_a_token_never_widens_it(position, char):
    token = IDENTITY_TOKEN
    i = position % len(token)
    edited = token[:i] + char + token[i + 1:]
    try:
        claim = verify_token(SECRET, edited, NOW)
    except CAError as exc:
        assert exc.reason == "token-invalid"
    else:  # only an edit that decodes to the same bytes (base64's unused low bits) survives
        assert claim == verify_token(SECRET, token, NOW)
