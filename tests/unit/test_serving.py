"""What ``bitloot serve`` prints and how it runs uvicorn: no live token in a log that may be
shipped, and forwarding headers believed only from TRUSTED_PROXIES."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest
import uvicorn

from entrypoints.serving import banner, banner_tokens, is_loopback, uvicorn_options
from entrypoints.settings import load_settings
from entrypoints.wiring import HTTP_LIMITS
from sandboxes.callbacks import KEEPALIVE_EXPIRY_S


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_a_local_engine_prints_ready_made_tokens(tmp_path: Path, host: str) -> None:
    """Plain local use (generated JWT_SECRET, loopback HOST): the banner carries a user and an
    admin token that the engine accepts."""
    settings = load_settings({"VAR_DIR": str(tmp_path), "HOST": host})
    lines = banner_tokens(settings)
    tokens = [line.strip() for line in lines if line.strip().startswith("eyJ")]
    claims = [jwt.decode(t, settings.jwt_secret, algorithms=["HS256"]) for t in tokens]
    assert [c["role"] for c in claims] == ["user", "admin"]


@pytest.mark.parametrize(
    ("environ", "why"),
    [
        ({"HOST": "0.0.0.0"}, "HOST=0.0.0.0 is not a loopback address"),  # noqa: S104 - a test value
        ({"HOST": "::"}, "HOST=:: is not a loopback address"),
        ({"HOST": "api.internal"}, "HOST=api.internal is not a loopback address"),
        ({"JWT_SECRET": "j" * 40}, "JWT_SECRET is configured"),
    ],
)
def test_no_token_where_the_log_may_be_shipped(
    tmp_path: Path, environ: dict[str, str], why: str
) -> None:
    """Bound beyond loopback (a container: compose's HOST=0.0.0.0), or with a configured
    JWT_SECRET, the banner prints no token and says how to mint one."""
    text = banner(load_settings({"VAR_DIR": str(tmp_path), **environ}))
    assert "eyJ" not in text
    assert f"{why}, so none is printed" in text
    assert "bitloot token --sub NAME --role user|admin" in text


def test_the_banner_warns_of_a_master_key_with_no_backup(tmp_path: Path) -> None:
    """Generated into VAR_DIR, the master key is the only copy until ``bitloot backup`` has
    run from here (it leaves ``last-backup.json``); a configured key is the operator's."""
    warning = "the master key lives only in"
    assert warning in banner(load_settings({"VAR_DIR": str(tmp_path)}))
    (tmp_path / "last-backup.json").write_text("{}")
    assert warning not in banner(load_settings({"VAR_DIR": str(tmp_path)}))
    configured = {"VAR_DIR": str(tmp_path / "other"), "KEY_ENCRYPTION_KEY": "A" * 43 + "="}
    assert warning not in banner(load_settings(configured))


def test_forwarding_headers_are_believed_only_from_trusted_proxies(tmp_path: Path) -> None:
    """Without TRUSTED_PROXIES uvicorn reads no X-Forwarded-* at all (its default would believe
    any local caller); with it, only from those proxies."""
    plain = uvicorn_options(load_settings({"VAR_DIR": str(tmp_path), "PORT": "8123"}))
    assert plain == {"host": "127.0.0.1", "port": 8123, "proxy_headers": False,
                     "forwarded_allow_ips": None, "timeout_graceful_shutdown": 10,
                     "access_log": False}  # fmt: skip
    behind = uvicorn_options(
        load_settings({"VAR_DIR": str(tmp_path), "TRUSTED_PROXIES": "10.0.0.2,10.9.0.0/16"})
    )
    assert behind["proxy_headers"] is True
    assert behind["forwarded_allow_ips"] == ["10.0.0.2", "10.9.0.0/16"]


def test_access_lines_are_off_unless_asked_for(tmp_path: Path) -> None:
    """A line per request costs more than some routes at a sale's pace: ``ACCESS_LOG=on``."""
    asked = uvicorn_options(load_settings({"VAR_DIR": str(tmp_path), "ACCESS_LOG": "on"}))
    assert asked["access_log"] is True


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("[::1]", True), ("LOCALHOST", True), ("0.0.0.0", False),  # noqa: S104
     ("10.0.0.1", False), ("", False), ("shop.example", False)],
)  # fmt: skip
def test_loopback_hosts(host: str, loopback: bool) -> None:
    """Only a loopback address or ``localhost`` counts as plain local use."""
    assert is_loopback(host) is loopback


def test_idle_outbound_connections_close_before_uvicorn_closes_them() -> None:
    """The engine's provider clients, and the sandboxes' webhook client, drop an idle
    connection before uvicorn's keep-alive timeout: a request never goes out on a connection
    the server is closing (a "connection reset" seen under load, both sides at 5 s)."""
    server_keeps = uvicorn.Config(app="entrypoints.cli:main").timeout_keep_alive
    assert HTTP_LIMITS.keepalive_expiry is not None
    assert HTTP_LIMITS.keepalive_expiry < server_keeps
    assert server_keeps > KEEPALIVE_EXPIRY_S
