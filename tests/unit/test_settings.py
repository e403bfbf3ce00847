"""Configuration: local defaults for the embedded wiring, clear errors naming bad variables."""

from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from entrypoints.cli import _parser
from entrypoints.http.app import nowpayments_sandbox_config
from entrypoints.processes import layout_refusal, usable_cores, worker_processes
from entrypoints.providers import real_money_refusal, supplier_must_identify
from entrypoints.settings import ConfigError, load_settings
from entrypoints.wiring import audit_signer

REAL_KINGUIN = "https://gateway.kinguin.net/esa/api"
REAL_NOWPAYMENTS = "https://api.nowpayments.io/v1"
STANDALONE = "http://127.0.0.1:8801/sandbox"  # a `bitloot sandbox`
ENV_EXAMPLE = Path(__file__).parents[2] / ".env.example"


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


def test_sandboxes_are_reached_at_their_own_address(tmp_path: Path) -> None:
    """SANDBOX_BASE_URL moves where processes reach the mounted sandboxes (compose's API inside
    its network); the customers' links and webhooks keep PUBLIC_BASE_URL."""
    settings = load_settings(
        {
            "VAR_DIR": str(tmp_path),
            "PUBLIC_BASE_URL": "https://shop.example.com",
            "SANDBOX_BASE_URL": "http://api:8000/",
        }
    )
    assert settings.kinguin_url == "http://api:8000/sandbox/kinguin"
    assert settings.nowpayments_url == "http://api:8000/sandbox/nowpayments/v1"
    assert settings.kinguin_webhook_url == "https://shop.example.com/kinguin/webhooks"
    with pytest.raises(ConfigError, match="SANDBOX_BASE_URL"):
        load_settings({"VAR_DIR": str(tmp_path), "SANDBOX_BASE_URL": "api:8000"})


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
        ("PORT", "0"),
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
        ("AUDIT_CHECKPOINT_INTERVAL_S", "hourly"),
        ("RETRY_BACKOFF_S", "nan"),
        ("STUCK_ORDER_AFTER_S", "inf"),
        ("TRUSTED_PROXIES", "10.0.0.1,proxy.local"),
        ("NOWPAYMENTS_SANDBOX_IPN_SECRET", "short"),
    ],
)
def test_malformed_values_name_the_variable(tmp_path: Path, name: str, value: str) -> None:
    """A malformed value stops start-up with a message that names the variable."""
    with pytest.raises(ConfigError, match=name):
        load_settings({"VAR_DIR": str(tmp_path), name: value})


@pytest.mark.parametrize(
    "value",
    [
        base64.b64encode(b"16 bytes only...").decode(),
        "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----",
    ],
)
def test_a_malformed_signing_key_is_refused_before_anything_connects(
    tmp_path: Path, value: str
) -> None:
    """The composition root reads the key first and names the variable (the CLI prints it and
    exits 2, as for every configuration error)."""
    settings = load_settings({"VAR_DIR": str(tmp_path), "AUDIT_SIGNING_KEY": value})
    with pytest.raises(ConfigError, match="AUDIT_SIGNING_KEY"):
        audit_signer(settings)


def test_the_checkpoint_signing_key_is_a_seed_or_a_pem_block(tmp_path: Path) -> None:
    """The embedded default makes one key and keeps it; a configured key is read either way."""
    first, second = (load_settings({"VAR_DIR": str(tmp_path)}) for _ in range(2))
    assert first.audit_signing_key == second.audit_signing_key
    assert "AUDIT_SIGNING_KEY" in first.defaulted
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    seed = base64.b64encode(key.private_bytes_raw()).decode()
    signers = [
        audit_signer(load_settings({"VAR_DIR": str(tmp_path), "AUDIT_SIGNING_KEY": text}))
        for text in (pem, seed)
    ]
    assert audit_signer(first).public_key != signers[0].public_key  # the generated one
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
    kinguin = {**base, "KINGUIN_BASE_URL": REAL_KINGUIN}
    with pytest.raises(ConfigError, match="NOWPAYMENTS_BASE_URL must be set"):
        load_settings(kinguin)
    with pytest.raises(ConfigError, match="refusing to pay a real Kinguin"):
        load_settings({**kinguin, "SANDBOXES": "nowpayments"})
    real = {**kinguin, "NOWPAYMENTS_BASE_URL": REAL_NOWPAYMENTS}
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
    assert mounted.ipn_secrets == (mounted.nowpayments_ipn_secret, mounted.sandbox_ipn_secret)
    real = load_settings({
        "VAR_DIR": str(tmp_path / "b"), "SANDBOXES": "kinguin",
        "NOWPAYMENTS_BASE_URL": "https://api.nowpayments.io/v1",
    })  # fmt: skip
    assert real.ipn_secrets == (real.nowpayments_ipn_secret,)


def test_serve_without_followers_is_refused_on_the_embedded_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without Redis no ``bitloot worker`` can run the log followers: an API that leaves them
    out would never fulfil an order, so it does not start."""
    args = _parser().parse_args(["serve", "--no-followers"])
    assert args.run(load_settings({"VAR_DIR": str(tmp_path)}), args) == 2
    assert "needs PostgreSQL and Redis" in capsys.readouterr().err


def test_worker_processes_are_the_default_on_postgresql_and_redis_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``bitloot serve`` starts a worker process per usable core but one (at least one) on
    PostgreSQL + Redis, none on the embedded default, which refuses ``--workers N``;
    ``--no-worker`` starts none, and does not go with ``--workers``."""
    embedded = load_settings({"VAR_DIR": str(tmp_path / "a")})
    distributed = load_settings({"VAR_DIR": str(tmp_path / "b"),
                                 "DATABASE_URL": "postgresql://u@db/shop",
                                 "REDIS_URL": "redis://cache:6379/0"})  # fmt: skip
    assert worker_processes(embedded, None, no_worker=False) == 0
    assert worker_processes(distributed, None, no_worker=False) == max(1, usable_cores() - 1)
    assert worker_processes(distributed, 3, no_worker=False) == 3
    assert worker_processes(distributed, None, no_worker=True) == 0
    args = _parser().parse_args(["serve", "--workers", "1"])
    assert args.run(embedded, args) == 2
    assert "--workers N needs Redis" in capsys.readouterr().err
    assert layout_refusal(embedded, 0) is None
    with pytest.raises(SystemExit):
        _parser().parse_args(["serve", "--workers", "2", "--no-worker"])


def test_processes_starting_together_on_one_folder_agree_on_its_secrets(tmp_path: Path) -> None:
    """An API and a worker started at once on a fresh folder generate nothing twice: both read
    the same secrets (else the worker's calls to the API's sandboxes would be refused)."""
    with ThreadPoolExecutor(8) as pool:
        loaded = list(pool.map(lambda _: load_settings({"VAR_DIR": str(tmp_path)}), range(8)))
    assert len({(s.jwt_secret, s.kinguin_api_key, s.nowpayments_ipn_secret) for s in loaded}) == 1
    assert json.loads((tmp_path / "secrets.json").read_text())["JWT_SECRET"] == loaded[0].jwt_secret


@pytest.mark.parametrize(
    ("kinguin", "payments"),
    [
        (REAL_KINGUIN, {"SANDBOXES": "nowpayments"}),  # the mounted payment sandbox
        (REAL_KINGUIN, {"NOWPAYMENTS_BASE_URL": f"{STANDALONE}/nowpayments/v1"}),
        (REAL_KINGUIN, {"NOWPAYMENTS_BASE_URL": "https://api-sandbox.nowpayments.io/v1"}),
        (REAL_KINGUIN, {"NOWPAYMENTS_BASE_URL": "http://api.nowpayments.io/v1"}),
        (REAL_KINGUIN, {"NOWPAYMENTS_BASE_URL": "https://api.nowpayments.io.example/v1"}),
        (REAL_KINGUIN, {"NOWPAYMENTS_BASE_URL": "https://api.nowpayments.io:8443/v1"}),
        ("https://GATEWAY.Kinguin.NET./esa/api", {"SANDBOXES": "nowpayments"}),
        ("https://api2.kinguin.net/integration", {"NOWPAYMENTS_BASE_URL": STANDALONE}),
    ],
)
def test_a_real_kinguin_is_paid_only_through_the_real_nowpayments(
    tmp_path: Path, kinguin: str, payments: dict[str, str]
) -> None:
    """A Kinguin host is refused with any payments but NOWPayments' production API, in a
    message naming both variables: anyone could otherwise buy real keys with simulated
    payments."""
    with pytest.raises(ConfigError, match="refusing to pay a real Kinguin") as refused:
        load_settings({"VAR_DIR": str(tmp_path), "KINGUIN_BASE_URL": kinguin, **payments})
    assert "KINGUIN_BASE_URL" in str(refused.value)
    assert "NOWPAYMENTS_BASE_URL" in str(refused.value)


@pytest.mark.parametrize(
    "providers",
    [
        {"KINGUIN_BASE_URL": REAL_KINGUIN, "NOWPAYMENTS_BASE_URL": REAL_NOWPAYMENTS},
        {},  # both sandboxes mounted
        {"KINGUIN_BASE_URL": "https://gateway.sandbox.kinguin.net/esa/api",
         "NOWPAYMENTS_BASE_URL": "https://api-sandbox.nowpayments.io/v1"},
        {"SANDBOXES": "kinguin", "NOWPAYMENTS_BASE_URL": f"{STANDALONE}/nowpayments/v1"},
        {"KINGUIN_BASE_URL": f"{STANDALONE}/kinguin", "NOWPAYMENTS_BASE_URL": REAL_NOWPAYMENTS},
    ],
)  # fmt: skip
def test_real_with_real_and_sandbox_suppliers_start(
    tmp_path: Path, providers: dict[str, str]
) -> None:
    """A real Kinguin with the real NOWPayments, or a sandbox Kinguin with any payments,
    starts without asking anyone."""
    settings = load_settings({"VAR_DIR": str(tmp_path), **providers})
    assert not supplier_must_identify(settings)
    assert real_money_refusal(settings) is None


@pytest.mark.parametrize(
    "payments",
    [{"NOWPAYMENTS_BASE_URL": f"{STANDALONE}/nowpayments/v1"}, {"SANDBOXES": "nowpayments"}],
)
def test_another_kinguin_host_must_say_it_is_a_sandbox(
    tmp_path: Path, payments: dict[str, str]
) -> None:
    """Kinguin at a host the URL does not tell about, with payments that are not real: start-up
    asks it, and only a BitLoot sandbox's answer lets the engine start."""
    settings = load_settings(
        {"VAR_DIR": str(tmp_path), "KINGUIN_BASE_URL": f"{STANDALONE}/kinguin", **payments}
    )
    assert supplier_must_identify(settings)
    assert real_money_refusal(settings, supplier_identified=True) is None
    refusal = real_money_refusal(settings, supplier_identified=False)
    assert refusal is not None
    assert "did not identify itself" in refusal
    assert "KINGUIN_BASE_URL" in refusal
    assert "NOWPAYMENTS_BASE_URL" in refusal


@pytest.mark.parametrize(
    ("name", "lowest", "highest"),
    [
        ("PORT", 1, 65535),
        ("REVEALS_PER_MINUTE", 1, 1_000_000),
        ("ORDERS_PER_MINUTE", 1, 1_000_000),
        ("ORDERS_PER_MINUTE_PER_IP", 1, 1_000_000),
        ("KINGUIN_SANDBOX_PRODUCTS", 0, 100_000),
        ("FULFILLMENT_ATTEMPTS", 1, 1_000),
    ],
)
def test_each_whole_number_setting_has_bounds_of_its_own(
    tmp_path: Path, name: str, lowest: int, highest: int
) -> None:
    """A whole-number setting takes its own range, both ends included, and a value past
    either end stops start-up naming the setting (ORDERS_PER_MINUTE=100000 is fine)."""
    for value in (lowest, highest):
        settings = load_settings({"VAR_DIR": str(tmp_path), name: str(value)})
        assert getattr(settings, name.lower()) == value
    for value in (lowest - 1, highest + 1):
        with pytest.raises(ConfigError, match=f"{name} must be between {lowest} and"):
            load_settings({"VAR_DIR": str(tmp_path), name: str(value)})


@pytest.mark.parametrize(
    ("name", "lowest", "highest", "beside"),
    [
        ("KINGUIN_SANDBOX_DELAY", 0, 3_600, {}),
        ("STUCK_ORDER_AFTER_S", 1, 86_400, {}),
        ("CATALOG_SYNC_INTERVAL_S", 10, 604_800, {}),
        ("SUPPLIER_PRICE_TOLERANCE_PERCENT", 0, 100, {}),
        ("RETRY_BACKOFF_S", 0, 3_600, {"RETRY_BACKOFF_MAX_S": "86400"}),
        ("RETRY_BACKOFF_MAX_S", 0, 86_400, {"RETRY_BACKOFF_S": "0"}),
        ("AUDIT_CHECKPOINT_INTERVAL_S", 1, 86_400, {}),
    ],
)
def test_each_number_setting_has_bounds_of_its_own(
    tmp_path: Path, name: str, lowest: float, highest: float, beside: dict[str, str]
) -> None:
    """An interval, delay or percentage takes its own range; a negative, absurdly large or
    infinite value stops start-up naming the setting."""
    base = {"VAR_DIR": str(tmp_path), **beside}
    for value in (lowest, highest):
        assert getattr(load_settings({**base, name: str(value)}), name.lower()) == value
    for text in (str(lowest - 0.5), str(highest + 1), "inf", "-inf", "nan"):
        with pytest.raises(ConfigError, match=name):
            load_settings({**base, name: text})


def test_the_retry_wait_never_starts_above_its_cap(tmp_path: Path) -> None:
    """RETRY_BACKOFF_MAX_S below RETRY_BACKOFF_S is refused, naming both."""
    with pytest.raises(ConfigError, match="RETRY_BACKOFF_MAX_S must not be below RETRY_BACKOFF_S"):
        load_settings(
            {"VAR_DIR": str(tmp_path), "RETRY_BACKOFF_S": "10", "RETRY_BACKOFF_MAX_S": "5"}
        )


def test_trusted_proxies_are_addresses_or_networks(tmp_path: Path) -> None:
    """TRUSTED_PROXIES takes IP addresses and networks, written the one canonical way."""
    settings = load_settings(
        {"VAR_DIR": str(tmp_path), "TRUSTED_PROXIES": " 10.0.0.1, 10.1.2.3/8 ,0:0::1,"}
    )
    assert settings.trusted_proxies == {"10.0.0.1", "10.0.0.0/8", "::1"}
    assert load_settings({"VAR_DIR": str(tmp_path)}).trusted_proxies == frozenset()


def test_no_sandbox_signs_with_the_real_ipn_secret(tmp_path: Path) -> None:
    """The NOWPayments sandbox, mounted or standalone, signs with NOWPAYMENTS_SANDBOX_IPN_SECRET
    (generated, or from the environment), never with NOWPAYMENTS_IPN_SECRET."""
    generated = load_settings({"VAR_DIR": str(tmp_path / "a")})
    assert nowpayments_sandbox_config(generated).ipn_secret == generated.sandbox_ipn_secret
    assert generated.sandbox_ipn_secret != generated.nowpayments_ipn_secret
    stored = json.loads((tmp_path / "a" / "secrets.json").read_text())
    assert stored["NOWPAYMENTS_SANDBOX_IPN_SECRET"] == generated.sandbox_ipn_secret
    given = load_settings({"VAR_DIR": str(tmp_path / "b"),
                           "NOWPAYMENTS_SANDBOX_IPN_SECRET": "sandbox-ipn-secret-0123456789",
                           "NOWPAYMENTS_IPN_SECRET": "real-ipn-secret-0123456789"})  # fmt: skip
    assert nowpayments_sandbox_config(given).ipn_secret == "sandbox-ipn-secret-0123456789"


class _Recording(dict[str, str]):
    """An environment that remembers every variable asked for."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.asked.add(str(key))
        return super().__contains__(key)


def test_every_setting_is_described_in_the_env_example(tmp_path: Path) -> None:
    """Each variable the engine reads has its line in .env.example (SANDBOXES was missing)."""
    environ = _Recording({"VAR_DIR": str(tmp_path)})
    load_settings(environ)
    listed = {line.split("=", 1)[0] for line in ENV_EXAMPLE.read_text().splitlines()
              if line and not line.startswith("#")}  # fmt: skip
    assert environ.asked - listed == set()
