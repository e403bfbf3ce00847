"""Token authentication: HS256 JWTs with claims ``sub``, ``role`` (user | admin | auditor),
``exp``, and ``iss`` / ``aud`` when ``JWT_ISSUER`` / ``JWT_AUDIENCE`` are set (then required).

Built on Litestar's ``JWTCookieAuth``: the token comes as ``Authorization: Bearer …`` or, from the
admin page, as its HttpOnly, SameSite=Strict session cookie ``bitloot_admin``. An
``Authorization`` header is taken only with the ``Bearer`` scheme and a credential (any other
answers 401; it never lets the cookie through in its place). Against CSRF, a request that
changes state and that the cookie authenticates must also carry
``X-Requested-With: bitloot-admin`` (which a cross-site form cannot send); without it the
request is answered 401. ``iat`` is optional (the contract names only sub, role and exp).
Signing out revokes a token (``Tokens.revoke``) until it expires, in every process that shares
the revocations: by its ``jti`` (tokens minted here carry one) or, for a token without one, by
an id derived from its claims (``claims_id``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, Self

import jwt
from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException
from litestar.middleware import AuthenticationResult
from litestar.security.jwt import JWTCookieAuth, JWTCookieAuthenticationMiddleware, Token
from typing_extensions import override

from application.orders import Viewer
from entrypoints.settings import Settings

ROLES = frozenset({"user", "admin", "auditor"})
ALGORITHM = "HS256"
COOKIE = "bitloot_admin"  # the admin page's session
CSRF_HEADER = "x-requested-with"
CSRF_VALUE = "bitloot-admin"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_REFUSAL = (
    f"a request that changes state with the admin cookie needs {CSRF_HEADER}: {CSRF_VALUE}"
)


CLAIMS_ID_PREFIX = "claims-sha256:"  # never a minted jti (those are uuid4 hex)
IDENTIFYING_CLAIMS = ("sub", "role", "iat", "exp", "iss", "aud")


VERIFIED_TOKENS_KEPT = 10_000
_VERIFIED: dict[tuple[Any, ...], Token] = {}


def _frozen(value: str | Sequence[str] | None) -> str | tuple[str, ...] | None:
    return value if value is None or isinstance(value, str) else tuple(value)


def _current(token: Token, *, verify_exp: bool, nbf: bool) -> bool:
    """Whether a verified token is still within its times (``exp``, ``nbf``) now."""
    now = time.time()
    if verify_exp and token.exp.timestamp() <= now:
        return False
    not_before = token.extras.get("nbf")
    return not (nbf and isinstance(not_before, int | float) and not_before > now)


@dataclasses.dataclass
class BitLootToken(Token):
    """A token whose ``iat`` may be absent, and whose ``jti`` is always a string: the token's
    own, or ``claims_id`` of its claims for a token minted without one.

    A credential verified once is not verified again while it is current: checking the
    signature and claims cost about a fifth of an authenticated request's CPU, and a client
    sends the same credential on every request. The same string under the same secret and
    checks verifies the same way until ``exp`` (and from ``nbf``), which are checked on every
    use; revocation is looked up on every request as before (``Tokens``)."""

    @classmethod
    @override
    def decode(
        cls,
        encoded_token: str,
        secret: str,
        algorithm: str,
        audience: str | Sequence[str] | None = None,
        issuer: str | Sequence[str] | None = None,
        require_claims: Sequence[str] | None = None,
        verify_exp: bool = True,
        verify_nbf: bool = True,
        strict_audience: bool = False,
    ) -> Self:
        """``Token.decode``, remembered while the token is current."""
        key = (encoded_token, secret, algorithm, _frozen(audience), _frozen(issuer),
               tuple(require_claims or ()), verify_exp, verify_nbf, strict_audience)  # fmt: skip
        known = _VERIFIED.get(key)
        if isinstance(known, cls) and _current(known, verify_exp=verify_exp, nbf=verify_nbf):
            return known
        token = super().decode(
            encoded_token, secret, algorithm, audience, issuer, require_claims,
            verify_exp, verify_nbf, strict_audience,
        )  # fmt: skip
        if len(_VERIFIED) >= VERIFIED_TOKENS_KEPT:
            _VERIFIED.clear()  # a flood of distinct valid tokens costs their verification only
        _VERIFIED[key] = token
        return token

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
        """Verify the token; give it a revocation id when it has no ``jti`` (from its claims
        as signed, before ``iat`` is defaulted to now for one that left it out)."""
        payload = super().decode_payload(
            encoded_token, secret, algorithms, issuer, audience, options
        )
        if isinstance(payload, dict):
            jti = payload.get("jti")
            if not isinstance(jti, str) or not jti:
                payload["jti"] = claims_id(payload)
            payload.setdefault("iat", int(datetime.now(UTC).timestamp()))
        return payload


def claims_id(claims: dict[str, Any]) -> str:
    """The revocation id of a token without a ``jti``: SHA-256 of its identifying claims in
    canonical JSON. Two such tokens share it only if they name the same subject, role,
    issuer, audience and times, which makes them the same credential."""
    named = {claim: claims[claim] for claim in IDENTIFYING_CLAIMS if claim in claims}
    canonical = json.dumps(named, sort_keys=True, separators=(",", ":"), default=str)
    return CLAIMS_ID_PREFIX + hashlib.sha256(canonical.encode()).hexdigest()


def retrieve_viewer(token: Token, _connection: ASGIConnection[Any, Any, Any, Any]) -> Viewer | None:
    """The caller, if the token names a subject and a known role."""
    role = token.extras.get("role")
    if role not in ROLES:
        return None
    return Viewer(sub=token.sub, role=role)


async def retrieve_viewer_async(
    token: Token, connection: ASGIConnection[Any, Any, Any, Any]
) -> Viewer | None:
    """``retrieve_viewer`` for the middleware, which would hand a plain function to a worker
    thread on every request (that hop cost more than the rest of authentication)."""
    return retrieve_viewer(token, connection)


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


def tokens_for(settings: Settings, revocations: Revocations) -> Tokens:
    """The token service of a deployment: its secret, issuer and audience, its revocations."""
    return Tokens(
        settings.jwt_secret,
        revocations,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )


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
        """The token, if it is valid here and not revoked (the lookup may wait on Redis: off
        the event loop, or ``decode_async``)."""
        token = self._verified(credential)
        return None if token is None or self.revoked(token) else token

    async def decode_async(self, credential: str) -> BitLootToken | None:
        """``decode`` on the event loop: the revocation lookup does not hold it."""
        token = self._verified(credential)
        if token is None or await self._revocations.is_revoked_async(revocation_id(token)):
            return None
        return token

    def _verified(self, credential: str) -> BitLootToken | None:
        """The token, if its signature and claims are valid here."""
        try:
            return BitLootToken.decode(
                credential, self._secret, ALGORITHM, issuer=self._issuer, audience=self._audience
            )
        except NotAuthorizedException:
            return None

    def revoked(self, token: Token) -> bool:
        """Whether the token was signed out."""
        return self._revocations.is_revoked(revocation_id(token))

    async def _revoked_handler(self, token: Token, _connection: object) -> bool:
        # ``JWTAuth`` awaits its handler: the lookup (a dictionary, or one Redis EXISTS)
        # must not hold the event loop, which every other request is waiting for.
        return await self._revocations.is_revoked_async(revocation_id(token))

    async def aclose(self) -> None:
        """Release what the running loop's revocation lookups hold (the app's shutdown)."""
        await self._revocations.aclose()

    def revoke(self, token: Token) -> None:
        """Sign the token out until it expires (every token: see ``revocation_id``)."""
        self._revocations.revoke(revocation_id(token), token.exp.timestamp())

    def middleware(self, exclude: list[str]) -> JWTCookieAuth[Viewer, BitLootToken]:
        """Litestar's JWT middleware (bearer header, or the admin cookie) configured for the
        engine."""
        return JWTCookieAuth[Viewer, BitLootToken](
            key=COOKIE,
            samesite="strict",
            authentication_middleware_class=CsrfCheckedCookieMiddleware,
            token_secret=self._secret,
            retrieve_user_handler=retrieve_viewer_async,
            revoked_token_handler=self._revoked_handler,
            token_cls=BitLootToken,
            algorithm=ALGORITHM,
            exclude=exclude,
            accepted_issuers=[self._issuer] if self._issuer else None,
            accepted_audiences=[self._audience] if self._audience else None,
        )


class CsrfCheckedCookieMiddleware(JWTCookieAuthenticationMiddleware):
    """Bearer header or admin cookie, decided here rather than by Litestar's parent class,
    which takes whatever follows the first space of any ``Authorization`` header and falls
    back to the cookie when nothing does (so ``Authorization: Basic`` plus the cookie would
    skip the CSRF check). A bearer header is the credential when there is one; a non-bearer
    ``Authorization`` header is refused; otherwise the cookie, for a state-changing request
    only with the CSRF header."""

    @override
    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        """Authenticate the bearer credential, or the cookie where the CSRF check allows it."""
        credential = bearer_credential(connection)
        if credential:
            return await self.authenticate_token(credential, connection)
        if "authorization" in connection.headers:
            raise NotAuthorizedException("Authorization must be: Bearer <token>")
        if connection.scope["type"] == ScopeType.HTTP and not cookie_allowed(connection):
            raise NotAuthorizedException(CSRF_REFUSAL)
        cookie = connection.cookies.get(self.auth_cookie_key, "")
        if not cookie:
            raise NotAuthorizedException("No JWT token found in request header or cookies")
        return await self.authenticate_token(cookie, connection)


def cookie_allowed(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    """Whether the request is not one that only the admin cookie would authenticate, or it is
    safe, or it carries the CSRF header. Only a bearer credential excuses the cookie: any
    other ``Authorization`` header leaves the cookie as what would authenticate."""
    return (
        COOKIE not in connection.cookies
        or bool(bearer_credential(connection))
        or str(connection.scope.get("method", "GET")).upper() in SAFE_METHODS
        or connection.headers.get(CSRF_HEADER) == CSRF_VALUE
    )


def revocation_id(token: Token) -> str:
    """What a sign-out records: the ``jti``, which ``BitLootToken`` always sets (the token's
    own, or ``claims_id`` of its claims)."""
    if not isinstance(token.jti, str):
        raise TypeError("a token not decoded as a BitLootToken has no revocation id")
    return token.jti


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
