"""Sessions against a real engine process: signing out revokes every token, one without a
``jti`` too; only a bearer credential excuses the admin cookie from the CSRF header (no other
``Authorization`` header does); the cookie's ``Secure`` comes from configuration, never from the
request's ``Host``."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from entrypoints.http.admin_pages import plain_local_http
from entrypoints.http.auth import COOKIE
from tests.e2e.conftest import (
    BITLOOT,
    JWT_SECRET,
    RunningEngine,
    embedded_engine,
    start_process,
    stop_processes,
)
from tests.support import free_port

CSRF = {"X-Requested-With": "bitloot-admin"}


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEngine]:
    """One embedded engine for the module's tests."""
    with embedded_engine(tmp_path_factory.mktemp("sessions")) as running:
        yield running


def bare_token(**claims: int) -> str:
    """An admin token as another issuer might mint it: no ``jti`` and no ``iat``."""
    return jwt.encode(
        {"sub": "ops", "role": "admin", "exp": int(time.time()) + 600, **claims},
        JWT_SECRET,
        algorithm="HS256",
    )


def test_signing_out_revokes_a_token_without_jti(shop: RunningEngine) -> None:
    """Logout with a jti-less token (bearer or cookie) refuses that token afterwards, though
    each check defaults its missing ``iat`` to a new now; another jti-less token still works."""
    bare, other = bare_token(), bare_token(iat=int(time.time()) - 5)
    with httpx.Client(base_url=shop.url, timeout=10) as anyone:

        def dashboard(token: str) -> int:
            bearer = {"Authorization": f"Bearer {token}"}
            return anyone.get("/admin/dashboard", headers=bearer).status_code

        assert (dashboard(bare), dashboard(other)) == (200, 200)
        assert (
            anyone.post("/admin/logout", headers={"Authorization": f"Bearer {bare}"}).status_code
            == 303
        )
        time.sleep(1.1)  # a later iat default, which must not change the token's revocation id
        assert (dashboard(bare), dashboard(other)) == (401, 200)
        assert anyone.get("/admin", headers={"Cookie": f"{COOKIE}={bare}"}).status_code == 401
        assert (
            anyone.post("/admin/logout", headers={"Cookie": f"{COOKIE}={other}"}).status_code == 303
        )
        assert dashboard(other) == 401


def test_a_non_bearer_authorization_header_never_excuses_the_cookie(shop: RunningEngine) -> None:
    """With the admin cookie and no CSRF header, a rebuild is refused whatever non-bearer
    ``Authorization`` header comes along (Litestar alone fell back to the cookie for some),
    and nothing is rebuilt; with the CSRF header the cookie does it."""
    cookies = {COOKIE: shop.token("ops", "admin")}
    with httpx.Client(base_url=shop.url, timeout=10, cookies=cookies) as browser:

        def orders_version() -> int:
            projections = browser.get("/admin/projections").json()
            return int(next(p["version"] for p in projections if p["name"] == "orders"))

        before = orders_version()
        for header in ("Basic", "Basic x", "Bearer", "Token abc", "x"):
            refused = browser.post(
                "/admin/projections/orders/rebuild", headers={"Authorization": header}
            )
            assert refused.status_code == 401, header
            assert refused.headers["content-type"].startswith("application/problem+json")
        time.sleep(0.5)
        assert orders_version() == before
        assert browser.post("/admin/projections/orders/rebuild", headers=CSRF).status_code == 202


def test_the_cookie_is_secure_when_the_public_url_is_https(tmp_path: Path) -> None:
    """An engine configured with an https PUBLIC_BASE_URL sets ``Secure`` on its cookie though
    the request (through a proxy, say) names ``Host: 127.0.0.1`` over plain HTTP."""
    port = free_port()
    public = f"https://127.0.0.1:{free_port()}"
    env = {**os.environ, "VAR_DIR": str(tmp_path / "var"), "PORT": str(port),
           "JWT_SECRET": JWT_SECRET, "PUBLIC_BASE_URL": public}  # fmt: skip
    process = start_process([BITLOOT, "serve"], env, tmp_path / "serve.log")
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_live(url, process)
        admin = jwt.encode({"sub": "ops", "role": "admin", "exp": int(time.time()) + 600},
                           JWT_SECRET, algorithm="HS256")  # fmt: skip
        login = httpx.post(
            f"{url}/admin/login", data={"token": admin},
            headers={"Host": "127.0.0.1", "X-Forwarded-Proto": "http"},
        )  # fmt: skip
        assert login.status_code == 303
        cookie = login.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE}=")
        assert "Secure" in cookie
    finally:
        stop_processes([process])


def test_only_plain_http_on_loopback_goes_without_secure() -> None:
    """``PUBLIC_BASE_URL`` decides: http on a loopback host is local use; anything else is not."""
    assert plain_local_http("http://127.0.0.1:8000")
    assert plain_local_http("http://localhost:8000")
    assert plain_local_http("http://[::1]:8000")
    assert not plain_local_http("https://127.0.0.1:8000")
    assert not plain_local_http("http://api:8000")
    assert not plain_local_http("https://shop.example.com")


def _wait_live(url: str, process: subprocess.Popen[bytes]) -> None:
    """Wait for ``/healthz`` (not for the catalog: this engine's sandboxes sit behind an
    https URL nothing serves, so it never imports one)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "the engine exited"
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("the engine did not answer /healthz")
