"""A credential verified once is taken from memory while it is current, and only then: its
expiry, its not-before time, the secret and the checks it was verified under still count."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import jwt
import pytest
from litestar.exceptions import NotAuthorizedException

from adapters.revocations import MemoryRevocations
from entrypoints.http.auth import ALGORITHM, BitLootToken, Tokens, mint_token

SECRET = "s" * 32


def verify(credential: str, secret: str = SECRET, issuer: str | None = None) -> BitLootToken:
    return BitLootToken.decode(credential, secret, ALGORITHM, issuer=issuer)


def test_a_verified_credential_is_verified_once_while_it_is_current(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    credential = mint_token(SECRET, "tess", "user", timedelta(minutes=5))
    checked: list[str] = []
    check = BitLootToken.decode_payload

    def counted(*args: Any, **kwargs: Any) -> Any:
        checked.append("signature and claims")
        return check(*args, **kwargs)

    monkeypatch.setattr(BitLootToken, "decode_payload", counted)
    first = verify(credential)
    assert verify(credential) is first
    assert checked == ["signature and claims"]


def test_an_expired_credential_is_refused_though_it_was_verified_before() -> None:
    credential = mint_token(SECRET, "tess", "user", timedelta(seconds=1))
    expires = verify(credential).exp.timestamp()
    time.sleep(max(0.0, expires - time.time()) + 0.05)
    with pytest.raises(NotAuthorizedException):
        verify(credential)


def test_a_credential_is_not_taken_from_memory_under_another_secret_or_issuer() -> None:
    credential = mint_token(SECRET, "tess", "user", timedelta(minutes=5))
    verify(credential)
    with pytest.raises(NotAuthorizedException):
        verify(credential, secret="t" * 32)
    with pytest.raises(NotAuthorizedException):
        verify(credential, issuer="https://shop.example")


def test_a_credential_not_yet_valid_is_refused_until_its_time() -> None:
    soon = int(time.time()) + 60
    payload = {"sub": "tess", "role": "user", "exp": soon + 300, "nbf": soon}
    credential = jwt.encode(payload, SECRET, algorithm=ALGORITHM)
    for _ in range(2):
        with pytest.raises(NotAuthorizedException):
            verify(credential)


def test_a_revoked_credential_is_refused_though_it_was_verified_before() -> None:
    tokens = Tokens(SECRET, MemoryRevocations())
    credential = mint_token(SECRET, "tess", "user", timedelta(minutes=5))
    token = tokens.decode(credential)
    assert token is not None
    tokens.revoke(token)
    assert tokens.decode(credential) is None
