"""compose.yaml's structure and pins: every image by version and digest, every secret required
from .env, PUBLIC_BASE_URL required, health checks on every service, and a .env from
``scripts/new-env.py`` that the engine's settings accept as is. ``docker compose config`` checks
the file too where Docker's compose plugin exists (this project's machines have none)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from entrypoints.settings import load_settings

ROOT = Path(__file__).parents[2]
COMPOSE = ROOT / "compose.yaml"
PINNED = re.compile(r"^[a-z0-9./-]+:[0-9][\w.-]*@sha256:[0-9a-f]{64}$")
REQUIRED = re.compile(r"^\$\{(\w+):\?[^}]+\}$")
SECRETS = {
    "JWT_SECRET": "JWT_SECRET",
    "KEY_ENCRYPTION_KEY": "KEY_ENCRYPTION_KEY",
    "AUDIT_SIGNING_KEY": "AUDIT_SIGNING_KEY",
    "KINGUIN_API_KEY": "KINGUIN_API_KEY",
    "KINGUIN_WEBHOOK_SECRET": "KINGUIN_WEBHOOK_SECRET",
    "NOWPAYMENTS_API_KEY": "NOWPAYMENTS_API_KEY",
    "NOWPAYMENTS_IPN_SECRET": "NOWPAYMENTS_IPN_SECRET",
    "R2_ACCESS_KEY_ID": "S3_ACCESS_KEY_ID",
    "R2_SECRET_ACCESS_KEY": "S3_SECRET_ACCESS_KEY",
    "PUBLIC_BASE_URL": "PUBLIC_BASE_URL",
}


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


def engine_environment() -> dict[str, str]:
    environment: dict[str, str] = compose()["x-engine"]["environment"]
    return environment


def test_every_image_is_pinned_by_version_and_digest() -> None:
    """No tag alone, no ``latest``, no MinIO; the engine's own image is built on a pinned base."""
    services = compose()["services"]
    external = {name: s["image"] for name, s in services.items() if "build" not in s}
    assert set(external) == {"postgres", "redis", "s3"}
    for name, image in external.items():
        assert PINNED.match(image), f"{name}: {image}"
        assert "minio" not in image
    bases = re.findall(r"^FROM (\S+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert bases
    assert all(PINNED.match(base) for base in bases), bases


def test_every_secret_is_required_from_the_env_file() -> None:
    """A missing secret stops ``docker compose up`` (``${NAME:?message}``); none falls back to a
    value generated into a volume, and nothing secret is written in the file."""
    environment = engine_environment()
    for variable, source in SECRETS.items():
        assert required_from(environment[variable]) == source, variable
    postgres = compose()["services"]["postgres"]["environment"]
    assert required_from(postgres["POSTGRES_PASSWORD"]) == "POSTGRES_PASSWORD"
    s3 = compose()["services"]["s3"]["environment"]
    assert required_from(s3["AWS_ACCESS_KEY_ID"]) == "S3_ACCESS_KEY_ID"
    assert required_from(s3["AWS_SECRET_ACCESS_KEY"]) == "S3_SECRET_ACCESS_KEY"


def required_from(value: str) -> str | None:
    """The variable a ``${NAME:?message}`` value requires (``None``: it requires none)."""
    required = REQUIRED.match(str(value))
    return required.group(1) if required else None


def test_processes_reach_the_sandboxes_inside_and_customers_outside() -> None:
    """The workers reach the mounted sandboxes at the API's name; links use PUBLIC_BASE_URL."""
    environment = engine_environment()
    assert environment["SANDBOX_BASE_URL"] == "http://api:8000"
    assert environment["R2_ENDPOINT"] == "http://s3:8333"
    assert "api:8000" not in environment["PUBLIC_BASE_URL"]


def test_every_service_has_a_health_check_and_waits_for_what_it_needs() -> None:
    services = compose()["services"]
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
    assert "9191/healthz" in " ".join(services["worker"]["healthcheck"]["test"])
    assert "--metrics-port" in services["worker"]["command"]
    assert services["api"]["depends_on"] == {
        dependency: {"condition": "service_healthy"} for dependency in ("postgres", "redis", "s3")
    }


def test_a_new_env_file_is_complete_and_accepted_by_the_engine(tmp_path: Path) -> None:
    """``scripts/new-env.py`` fills every variable compose requires, writes mode 600, refuses to
    overwrite; the engine loads those values with compose's own settings and generates none."""
    out = tmp_path / ".env"
    assert new_env(out).returncode == 0
    assert out.stat().st_mode & 0o777 == 0o600
    again = new_env(out)
    assert again.returncode == 2
    assert "exists" in again.stderr
    dotenv = dict(
        line.split("=", 1) for line in out.read_text().splitlines() if line and line[0] != "#"
    )
    required = set(re.findall(r"\$\{(\w+):\?", COMPOSE.read_text()))
    assert {name for name in required if not dotenv.get(name)} == set()
    environ = {name: value for name, value in dotenv.items() if value}
    environ.update(
        (name, interpolate(str(value), dotenv)) for name, value in engine_environment().items()
    )
    environ["VAR_DIR"] = str(tmp_path / "var")
    settings = load_settings(environ)
    assert set(SECRETS) & set(settings.defaulted) == set()
    assert settings.public_base_url == "http://localhost:8000"
    assert settings.kinguin_url == "http://api:8000/sandbox/kinguin"
    assert not (tmp_path / "var" / "secrets.json").exists()


def new_env(out: Path) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, str(ROOT / "scripts" / "new-env.py"), "--out", str(out)])


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603


def interpolate(value: str, dotenv: dict[str, str]) -> str:
    """Compose's ``${NAME:?…}`` and ``${NAME:-default}``, as ``docker compose`` fills them."""

    def fill(match: re.Match[str]) -> str:
        name, operator, fallback = match.group(1), match.group(2), match.group(3)
        given = dotenv.get(name, "")
        if given or operator == ":?":
            assert given, f"{name} is required"
            return given
        return fallback

    return re.sub(r"\$\{(\w+)(:\?|:-)([^}]*)\}", fill, value)


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker client")
def test_docker_compose_reads_the_file(tmp_path: Path) -> None:
    """Where the compose plugin exists: the file is valid, and refuses an empty .env."""
    docker = str(shutil.which("docker"))
    if run([docker, "compose", "version"]).returncode != 0:
        pytest.skip("the docker client here has no compose plugin")
    config = [docker, "compose", "--project-directory", str(tmp_path), "-f", str(COMPOSE)]
    config += ["config", "-q"]
    (tmp_path / ".env").write_text("")
    refused = run(config)
    assert refused.returncode != 0
    assert "missing a value" in refused.stderr
    (tmp_path / ".env").unlink()
    assert new_env(tmp_path / ".env").returncode == 0
    accepted = run(config)
    assert accepted.returncode == 0, accepted.stderr
