"""Bearer-token authentication: HS256 JWTs with claims ``sub``, ``role`` (user | admin), ``exp``.

Built on Litestar's ``JWTAuth``; ``iat`` is optional (the contract names only sub, role and exp).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from litestar.connection import ASGIConnection
from litestar.security.jwt import JWTAuth, Token
from typing_extensions import override

from application.orders import Viewer

ROLES = frozenset({"user", "admin"})
ALGORITHM = "HS256"


@dataclasses.dataclass
class BitLootToken(Token):
    """A token whose ``iat`` may be absent."""

    @classmethod
    @override
    def decode_payload(
        cls,
        encoded_token: str,
        secret: str,
        algorithms: list[str],
        issuer: str | Sequence[str] | None = None,
        audience: str | Sequence[str] | None = None,
        options: Any = None,
    ) -> Any:
        """Verify the token and default ``iat`` to now when the issuer left it out."""
        payload = super().decode_payload(
            encoded_token, secret, algorithms, issuer, audience, options
        )
        if isinstance(payload, dict):
            payload.setdefault("iat", int(datetime.now(UTC).timestamp()))
        return payload


def retrieve_viewer(token: Token, _connection: ASGIConnection[Any, Any, Any, Any]) -> Viewer | None:
    """The caller, if the token names a subject and a known role."""
    role = token.extras.get("role")
    if role not in ROLES:
        return None
    return Viewer(sub=token.sub, role=role)


def jwt_auth(secret: str, exclude: list[str]) -> JWTAuth[Viewer, BitLootToken]:
    """Litestar's JWT middleware configured for the engine."""
    return JWTAuth[Viewer, BitLootToken](
        token_secret=secret,
        retrieve_user_handler=retrieve_viewer,
        token_cls=BitLootToken,
        algorithm=ALGORITHM,
        exclude=exclude,
    )


def mint_token(secret: str, sub: str, role: str, ttl: timedelta = timedelta(days=1)) -> str:
    """A signed token for ``sub`` with ``role`` (what ``bitloot token`` prints)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {sorted(ROLES)}")
    now = datetime.now(UTC)
    claims = {
        "sub": sub,
        "role": role,
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)
