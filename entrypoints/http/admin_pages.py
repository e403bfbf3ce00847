"""The operator console in a browser: ``GET /admin`` serves one small HTML page whose scripts
(``static/*.js``, ES modules) call the JSON admin API under ``/admin/...``.

Login is a bearer header, or the sign-in form (``POST /admin/login``, the token in the body, never
in a URL) that answers 303 with an HttpOnly, SameSite=Strict cookie, ``Secure`` unless the engine
is configured for plain local HTTP (``PUBLIC_BASE_URL`` is ``http://`` on a loopback host): the
request's ``Host`` or ``X-Forwarded-Proto`` never decides it.
Signing out (``POST /admin/logout``) revokes the token until it expires. The page's own API
calls carry that cookie, which the engine's JWT middleware (``entrypoints.http.auth``) takes
like a bearer header — for a state-changing request only with
``X-Requested-With: bitloot-admin`` (which a cross-site form cannot send).
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from litestar import Request, Response, Router, get, post
from litestar.datastructures import CacheControlHeader, Cookie
from litestar.response import Redirect
from litestar.static_files import create_static_files_router

from application.orders import Viewer
from entrypoints.http.auth import COOKIE, bearer_credential, retrieve_viewer
from entrypoints.http.deps import EngineDep, tokens_of

PAGE_PATH = "/admin"
STATIC_PATH = "/admin/static"
STATIC_DIR = Path(__file__).parent / "static"
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
HTML = "text/html"
LOGIN_MAX_BODY_BYTES = 8 * 1024  # a form with one token (a JWT is a few hundred bytes)


@get(PAGE_PATH, include_in_schema=False)
async def admin_page(request: Request[Any, Any, Any]) -> Response[Any]:
    """The admin page for an admin (bearer header or session cookie); else the sign-in form.
    A token in the URL is never taken: URLs end up in histories and proxy logs."""
    credential = bearer_credential(request) or request.cookies.get(COOKIE)
    if not credential:
        return denied(401)
    token = await tokens_of(request).decode_async(credential)
    viewer = retrieve_viewer(token, request) if token else None
    if viewer is None:
        return _forget(denied(401))
    if not viewer.is_admin:
        return denied(403)
    return page(viewer)


@post(
    f"{PAGE_PATH}/login",
    include_in_schema=False,
    exclude_from_auth=True,
    status_code=303,
    request_max_body_size=LOGIN_MAX_BODY_BYTES,
)
async def login(request: Request[Any, Any, Any], engine: EngineDep) -> Response[Any]:
    """The sign-in form: an admin token in the body becomes the session cookie. Open to
    anyone, so the body is small (413 past ``LOGIN_MAX_BODY_BYTES``, before it is read) and
    the revocation lookup does not hold the event loop."""
    form = await request.form()
    credential = str(form.get("token") or "").strip()
    token = await tokens_of(request).decode_async(credential) if credential else None
    viewer = retrieve_viewer(token, request) if token else None
    if token is None or viewer is None:
        return denied(401)
    if not viewer.is_admin:
        return denied(403)
    max_age = max(int((token.exp - datetime.now(UTC)).total_seconds()), 1)
    session = Cookie(
        key=COOKIE,
        value=credential,
        path="/",
        max_age=max_age,
        httponly=True,
        samesite="strict",
        secure=not plain_local_http(engine.settings.public_base_url),
    )
    return Redirect(PAGE_PATH, status_code=303, headers=PAGE_HEADERS, cookies=[session])


@post(
    f"{PAGE_PATH}/logout",
    include_in_schema=False,
    exclude_from_auth=True,
    status_code=303,
    sync_to_thread=True,
)
def logout(request: Request[Any, Any, Any]) -> Response[Any]:
    """Revoke the session's token (until it expires), forget the cookie, back to sign-in."""
    credential = request.cookies.get(COOKIE) or bearer_credential(request)
    tokens = tokens_of(request)
    token = tokens.decode(credential) if credential else None
    if token is not None:
        tokens.revoke(token)
    return _forget(Redirect(PAGE_PATH, status_code=303, headers=PAGE_HEADERS))


def plain_local_http(public_base_url: str) -> bool:
    """Whether the engine is configured for plain HTTP on this machine (``PUBLIC_BASE_URL``
    is ``http://`` on a loopback host), the one case its cookie goes without ``Secure``. Taken
    from configuration, not from the request: a proxy that sends ``Host: 127.0.0.1`` must not
    turn ``Secure`` off for a public site."""
    url = urlsplit(public_base_url)
    return url.scheme == "http" and (url.hostname or "") in _LOOPBACK_HOSTS


_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def page(viewer: Viewer) -> Response[bytes]:
    """The admin page, naming the signed-in admin."""
    body = page_template().replace("{{sub}}", html.escape(viewer.sub, quote=True))
    return Response(body.encode(), media_type=HTML, headers=PAGE_HEADERS)


def denied(status: int) -> Response[bytes]:
    """A small HTML page saying how to log in (401) or that the token is not an admin's (403)."""
    title, text = _DENIED[status]
    body = _DENIED_PAGE.format(title=title, text=text, status=status)
    return Response(body.encode(), status_code=status, media_type=HTML, headers=PAGE_HEADERS)


@cache
def page_template() -> str:
    """``static/admin.html``, read once."""
    return (STATIC_DIR / "admin.html").read_text(encoding="utf-8")


def static_files() -> Router:
    """The page's script and style sheet under ``/admin/static/``, revalidated on every load."""
    return create_static_files_router(
        path=STATIC_PATH,
        directories=[STATIC_DIR],
        cache_control=CacheControlHeader(no_cache=True),
        include_in_schema=False,
    )


def _forget(response: Response[Any]) -> Response[Any]:
    response.delete_cookie(COOKIE, path="/")
    return response


_DENIED = {
    401: (
        "Sign in to BitLoot admin",
        "Paste an admin token (made with <code>bitloot token --sub you --role admin</code>); it "
        "becomes a session cookie that lasts as long as the token. A bearer header with an "
        "admin token works too.",
    ),
    403: (
        "Admins only",
        "This token is valid but its role is not <code>admin</code>. Sign in with an admin token.",
    ),
}

_DENIED_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · BitLoot admin</title>
<link rel="icon" href="/admin/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/admin/static/admin.css">
</head>
<body class="denied">
<main id="main">
<h1>{title}</h1>
<p>{text}</p>
<form class="login" method="post" action="/admin/login">
<label for="token">Admin token</label>
<input id="token" name="token" type="password" autocomplete="off" required>
<button type="submit">Sign in</button>
</form>
<p class="muted">HTTP {status}</p>
</main>
</body>
</html>
"""
