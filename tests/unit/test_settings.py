"""Configuration: local defaults for the embedded wiring, clear errors naming bad variables."""

from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from adapters.signing import Ed25519Signer
from entrypoints.cli import _parser
from entrypoints.http.webhooks import ipn_secrets
from entrypoints.settings import ConfigError, load_settings


def test_embedded_defaults_are_generated_once(tmp_path: Path) -> None:
    """With no settings, secrets are generated, kept under VAR_DIR and reused next time."""
    first = load_settings({"VAR_DIR": str(tmp_path)})
    second = load_settings({"VAR_DIR": str(tmp_path)})
    assert first.jwt_secret == second.jwt_secret
    assert len(first.jwt_secret) >= 32
    assert first.master_keys == second.master_keys
    assert first.wiring == "sqlite+in-process"
    assert first.kinguin_url == "http://127.0.0.1:8000/sandbox/kinguin"
    assert first.nowpayments_url == "http://127.0.0.1:8000/sandbox/nowpayments/v1"
    assert "JWT_SECRET" in first.defaulted
    assert (tmp_path / "secrets.json").stat().st_mode & 0o777 == 0o600


def test_postgres_url_becomes_library_settings(tmp_path: Path) -> None:
    """DATABASE_URL is split into the event store library's settings."""
    settings = load_settings(
        {
            "VAR_DIR": str(tmp_path),
            "DATABASE_URL": "postgresql://u:p%40ss@db.local:6543/shop",
            "DATABASE_SCHEMA": "s1",
        }
    )
    env = settings.eventsourcing_env()
    assert env["POSTGRES_HOST"] == "db.local"
    assert env["POSTGRES_PORT"] == "6543"
    assert env["POSTGRES_PASSWORD"] == "p@ss"
    assert env["POSTGRES_DBNAME"] == "shop"
    assert env["POSTGRES_SCHEMA"] == "s1"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "eighty"),
        ("PORT", "70000"),
        ("REVEALS_PER_MINUTE", "0"),
        ("DOWNLOAD_LINK_SINGLE_USE", "maybe"),
        ("KINGUIN_SANDBOX_FAULTS", '{"error_rate": 2}'),
        ("NOWPAYMENTS_SANDBOX_FAULTS", "{not json"),
        ("JWT_SECRET", "too-short"),
        ("KEY_ENCRYPTION_KEY", "not base64!"),
        ("KEY_ENCRYPTION_KEY", base64.b64encode(b"16 bytes only...").decode()),
        ("KINGUIN_SANDBOX_DELAY", "-1"),
        ("STUCK_ORDER_AFTER_S", "soon"),
        ("PUBLIC_BASE_URL", "ftp://x"),
        ("DATABASE_URL", "mysql://x/y"),
        ("AUDIT_SIGNING_KEY", base64.b64encode(b"16 bytes only...").decode()),
        ("AUDIT_SIGNING_KEY", "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----"),
        ("AUDIT_CHECKPOINT_INTERVAL_S", "hourly"),
    ],
)
def test_malformed_values_name_the_variable(tmp_path: Path, name: str, value: str) -> None:
    """A malformed value stops start-up with a message that names the variable."""
    with pytest.raises(ConfigError, match=name):
        load_settings({"VAR_DIR": str(tmp_path), name: value})


def test_the_checkpoint_signing_key_is_a_seed_or_a_pem_block(tmp_path: Path) -> None:
    """The embedded default makes one key and keeps it; a configured key is read either way."""
    first, second = (load_settings({"VAR_DIR": str(tmp_path)}) for _ in range(2))
    assert first.audit_signing_key == second.audit_signing_key
    assert "AUDIT_SIGNING_KEY" in first.defaulted
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    seed = base64.b64encode(key.private_bytes_raw()).decode()
    signers = [
        Ed25519Signer.from_text(
            load_settings({"VAR_DIR": str(tmp_path), "AUDIT_SIGNING_KEY": text}).audit_signing_key
        )
        for text in (pem, seed)
    ]
    assert signers[0].public_key == signers[1].public_key == key.public_key().public_bytes_raw()


def test_key_list_allows_rotation(tmp_path: Path) -> None:
    """KEY_ENCRYPTION_KEY takes a comma-separated list; the first one encrypts."""
    keys = [base64.b64encode(bytes([i]) * 32).decode() for i in (1, 2)]
    settings = load_settings({"VAR_DIR": str(tmp_path), "KEY_ENCRYPTION_KEY": ",".join(keys)})
    assert settings.master_keys == (bytes([1]) * 32, bytes([2]) * 32)


def test_sandboxes_are_all_or_nothing(tmp_path: Path) -> None:
    """Both sandboxes without real providers; none once one is configured, unless named; a real
    Kinguin paid through the NOWPayments sandbox is refused at start-up."""
    base = {"VAR_DIR": str(tmp_path)}
    assert load_settings(base).sandboxes == {"kinguin", "nowpayments"}
    kinguin = {**base, "KINGUIN_BASE_URL": "https://gateway.kinguin.net/esa/api"}
    with pytest.raises(ConfigError, match="NOWPAYMENTS_BASE_URL must be set"):
        load_settings(kinguin)
    with pytest.raises(ConfigError, match="refusing to pay a real Kinguin"):
        load_settings({**kinguin, "SANDBOXES": "nowpayments"})
    real = {**kinguin, "NOWPAYMENTS_BASE_URL": "https://api.nowpayments.io/v1"}
    assert load_settings(real).sandboxes == frozenset()
    fake_supplier = {**base, "NOWPAYMENTS_BASE_URL": "https://api.nowpayments.io/v1",
                     "SANDBOXES": "kinguin"}  # fmt: skip
    assert load_settings(fake_supplier).sandboxes == {"kinguin"}
    with pytest.raises(ConfigError, match="SANDBOXES names"):
        load_settings({**base, "SANDBOXES": "kinguin,stripe"})
    with pytest.raises(ConfigError, match="choose one"):
        load_settings({**real, "SANDBOXES": "kinguin,nowpayments"})


def test_the_mounted_payment_sandbox_signs_with_a_secret_of_its_own(tmp_path: Path) -> None:
    """Its IPN secret is accepted only while it is mounted."""
    mounted = load_settings({"VAR_DIR": str(tmp_path / "a")})
    assert mounted.sandbox_ipn_secret not in ("", mounted.nowpayments_ipn_secret)
    assert ipn_secrets(mounted) == (mounted.nowpayments_ipn_secret, mounted.sandbox_ipn_secret)
    real = load_settings({
        "VAR_DIR": str(tmp_path / "b"), "SANDBOXES": "kinguin",
        "NOWPAYMENTS_BASE_URL": "https://api.nowpayments.io/v1",
    })  # fmt: skip
    assert ipn_secrets(real) == (real.nowpayments_ipn_secret,)


def test_serve_without_followers_is_refused_on_the_embedded_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without Redis no ``bitloot worker`` can run the log followers: an API that leaves them
    out would never fulfil an order, so it does not start."""
    args = _parser().parse_args(["serve", "--no-followers"])
    assert args.run(load_settings({"VAR_DIR": str(tmp_path)}), args) == 2
    assert "needs PostgreSQL and Redis" in capsys.readouterr().err


def test_processes_starting_together_on_one_folder_agree_on_its_secrets(tmp_path: Path) -> None:
    """An API and a worker started at once on a fresh folder generate nothing twice: both read
    the same secrets (else the worker's calls to the API's sandboxes would be refused)."""
    with ThreadPoolExecutor(8) as pool:
        loaded = list(pool.map(lambda _: load_settings({"VAR_DIR": str(tmp_path)}), range(8)))
    assert len({(s.jwt_secret, s.kinguin_api_key, s.nowpayments_ipn_secret) for s in loaded}) == 1
    assert json.loads((tmp_path / "secrets.json").read_text())["JWT_SECRET"] == loaded[0].jwt_secret
