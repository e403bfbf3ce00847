"""What `make run` and `make test` install: the engine's runtime lock alone for `make run`, the
development lock added for `make test`, and the build backend from a lock of its own."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).parent.parent.parent


def planned(target: str, tmp_path: Path) -> str:
    """The commands ``make`` would run for ``target`` on a machine without a virtualenv."""
    return subprocess.run(  # noqa: S603
        ["make", "--dry-run", "--always-make", target, f"VENV={tmp_path / 'venv'}"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_make_run_installs_the_runtime_lock_only(tmp_path: Path) -> None:
    commands = planned("run", tmp_path)
    assert "-r requirements-build.lock" in commands
    assert "-r requirements.lock" in commands
    assert "requirements-dev.lock" not in commands
    assert "--no-build-isolation -e ." in commands
    assert commands.count("--require-hashes") == 2


def test_make_test_adds_the_development_lock(tmp_path: Path) -> None:
    commands = planned("test", tmp_path)
    assert "-r requirements.lock" in commands
    assert "--require-hashes --no-deps -r requirements-dev.lock" in commands
    assert "--require-hashes --no-deps -r requirements-installer.lock" in commands  # uv
