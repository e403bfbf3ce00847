"""Token authentication: HS256 JWTs with claims ``sub``, ``role`` (user | admin | auditor),
``exp``, and ``iss`` / ``aud`` when ``JWT_ISSUER`` / ``JWT_AUDIENCE`` are set (then required).

Built on Litestar's ``JWTCookieAuth``: the token comes as ``Authorization: Bearer …`` or, from the
admin page, as its HttpOnly, SameSite=Strict session cookie ``bitloot_admin``. Against CSRF, a
cookie-authenticated request that changes state must also carry
``X-Requested-With: bitloot-admin`` (which a cross-site form cannot send); without it the
request is answered 401. ``iat`` is optional (the contract names only sub, role and exp).
Tokens minted here carry a ``jti``, so that signing out revokes them (``Tokens.revoke``) until
they expire, in every process that shares the revocations.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import jwt
from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException
from litestar.middleware import AuthenticationResult
from litestar.security.jwt import JWTCookieAuth, JWTCookieAuthenticationMiddleware, Token
from typing_extensions import override

from application.orders import Viewer

ROLES = frozenset({"user", "admin", "auditor"})
ALGORITHM = "HS256"
COOKIE = "bitloot_admin"  # the admin page's session
CSRF_HEADER = "x-requested-with"
CSRF_VALUE = "bitloot-admin"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_REFUSAL = (
    f"a request that changes state with the admin cookie needs {CSRF_HEADER}: {CSRF_VALUE}"
)


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


class Revocations(Protocol):
    """Where signed-out tokens are remembered until they expire."""

    def revoke(self, jti: str, expires_at: float) -> None:
        """Refuse the token with this id until ``expires_at`` (a Unix time)."""
        ...

    def is_revoked(self, jti: str) -> bool:
        """Whether the token with this id was signed out."""
        ...

    async def is_revoked_async(self, jti: str) -> bool:
        """``is_revoked`` without holding the event loop."""
        ...

    async def aclose(self) -> None:
        """Release what the running event loop's lookups hold."""
        ...


class Tokens:
    """Minting, verifying and revoking the engine's tokens: one place for every door (the
    bearer middleware, the admin page's cookie, the websockets)."""

    def __init__(
        self,
        secret: str,
        revocations: Revocations,
        *,
        issuer: str | None = None,
        audience: str | None = None,
    ) -> None:
        self._secret = secret
        self._revocations = revocations
        self._issuer = issuer
        self._audience = audience

    def mint(self, sub: str, role: str, ttl: timedelta = timedelta(days=1)) -> str:
        """A signed token for ``sub`` with ``role``, bound to this service."""
        return mint_token(
            self._secret, sub, role, ttl, issuer=self._issuer, audience=self._audience
        )

    def decode(self, credential: str) -> BitLootToken | None:
        """The token, if it is valid here and not revoked."""
        try:
            token = BitLootToken.decode(
                credential, self._secret, ALGORITHM, issuer=self._issuer, audience=self._audience
            )
        except NotAuthorizedException:
            return None
        return None if self.revoked(token) else token

    def revoked(self, token: Token) -> bool:
        """Whether the token was signed out."""
        return isinstance(token.jti, str) and self._revocations.is_revoked(token.jti)

    async def _revoked_handler(self, token: Token, _connection: object) -> bool:
        # ``JWTAuth`` awaits its handler: the lookup (a dictionary, or one Redis EXISTS)
        # must not hold the event loop, which every other request is waiting for.
        return isinstance(token.jti, str) and await self._revocations.is_revoked_async(token.jti)

    async def aclose(self) -> None:
        """Release what the running loop's revocation lookups hold (the app's shutdown)."""
        await self._revocations.aclose()

    def revoke(self, token: Token) -> None:
        """Sign the token out until it expires."""
        if isinstance(token.jti, str):
            self._revocations.revoke(token.jti, token.exp.timestamp())

    def middleware(self, exclude: list[str]) -> JWTCookieAuth[Viewer, BitLootToken]:
        """Litestar's JWT middleware (bearer header, or the admin cookie) configured for the
        engine."""
        return JWTCookieAuth[Viewer, BitLootToken](
            key=COOKIE,
            samesite="strict",
            authentication_middleware_class=CsrfCheckedCookieMiddleware,
            token_secret=self._secret,
            retrieve_user_handler=retrieve_viewer,
            revoked_token_handler=self._revoked_handler,
            token_cls=BitLootToken,
            algorithm=ALGORITHM,
            exclude=exclude,
            accepted_issuers=[self._issuer] if self._issuer else None,
            accepted_audiences=[self._audience] if self._audience else None,
        )


class CsrfCheckedCookieMiddleware(JWTCookieAuthenticationMiddleware):
    """Litestar's bearer-or-cookie middleware, refusing a state-changing request that only the
    cookie authenticates unless it carries the CSRF header."""

    @override
    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        """Check the CSRF header where the cookie is the credential, then authenticate."""
        if connection.scope["type"] == ScopeType.HTTP and not cookie_allowed(connection):
            raise NotAuthorizedException(CSRF_REFUSAL)
        return await super().authenticate_request(connection)


def cookie_allowed(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    """Whether the request is not one that only the admin cookie would authenticate, or it is
    safe, or it carries the CSRF header."""
    return (
        COOKIE not in connection.cookies
        or "authorization" in connection.headers
        or str(connection.scope.get("method", "GET")).upper() in SAFE_METHODS
        or connection.headers.get(CSRF_HEADER) == CSRF_VALUE
    )


def bearer_credential(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """The credential of an ``Authorization: Bearer …`` header, if there is one."""
    scheme, _, credential = connection.headers.get("authorization", "").partition(" ")
    return credential.strip() if scheme.lower() == "bearer" else None


def mint_token(
    secret: str,
    sub: str,
    role: str,
    ttl: timedelta = timedelta(days=1),
    *,
    issuer: str | None = None,
    audience: str | None = None,
) -> str:
    """A signed token for ``sub`` with ``role`` (what ``bitloot token`` prints), with a fresh
    ``jti`` and, when given, ``iss`` and ``aud``."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {sorted(ROLES)}")
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": sub,
        "role": role,
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
        "jti": uuid.uuid4().hex,
    }
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm=ALGORITHM)
