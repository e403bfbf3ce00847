#!/usr/bin/env bash
# Re-resolve the lock files from pyproject.toml: requirements.lock (what the engine runs on: the
# image) and requirements-dev.lock (that plus the test and lint tools: `make run`, `make test`,
# CI). Every pin carries its hashes. Run `make lock` after changing a dependency in
# pyproject.toml, or to take newer releases (`make lock UPGRADE=1`), and commit both files.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=${PIPTOOLS_VENV:-.venv-lock}
[ -x "$tools/bin/pip-compile" ] || { python3 -m venv "$tools" && "$tools/bin/pip" install --quiet pip-tools; }
options=(--quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url
         --no-emit-find-links --no-emit-trusted-host --resolver=backtracking)
[ -n "${UPGRADE:-}" ] && options+=(--upgrade)
"$tools/bin/pip-compile" "${options[@]}" --output-file requirements.lock pyproject.toml
"$tools/bin/pip-compile" "${options[@]}" --extra dev --output-file requirements-dev.lock pyproject.toml
