"""The house's layering, read from the imports of every module: ``domain`` → ``application`` →
``adapters`` → ``projections`` → ``entrypoints``, each layer importing only the ones before it
(and the simulators in ``sandboxes`` none of the engine's but the signature code they share with
its NOWPayments adapter). Entrypoints reach adapters only where the engine is composed
(``entrypoints/bootstrap.py`` and ``entrypoints/wiring.py``) and in the command line
(``entrypoints/cli.py``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("domain", "application", "adapters", "projections", "entrypoints")
COMPOSITION = {"entrypoints/bootstrap.py", "entrypoints/wiring.py", "entrypoints/cli.py"}
SANDBOXES_MAY = {"adapters.nowpayments_signature"}


def imported(path: Path) -> set[str]:
    """The modules a file imports (absolute imports only: the project uses no other)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def layer_of(module: str) -> str | None:
    top = module.split(".", maxsplit=1)[0]
    return top if top in (*LAYERS, "sandboxes") else None


@pytest.mark.parametrize("layer", LAYERS)
def test_each_layer_imports_only_the_ones_before_it(layer: str) -> None:
    allowed = set(LAYERS[: LAYERS.index(layer) + 1]) | (
        {"sandboxes"} if layer == "entrypoints" else set()
    )
    wrong = {
        f"{path.relative_to(ROOT)} imports {module}"
        for path in files(layer)
        for module in imported(path)
        if (found := layer_of(module)) is not None and found not in allowed
    }
    assert sorted(wrong) == []


def test_entrypoints_reach_adapters_only_where_the_engine_is_composed() -> None:
    wrong = {
        f"{path.relative_to(ROOT)} imports {module}"
        for path in files("entrypoints")
        if str(path.relative_to(ROOT)) not in COMPOSITION
        for module in imported(path)
        if layer_of(module) == "adapters"
    }
    assert sorted(wrong) == []


def test_the_simulators_stand_apart_from_the_engine() -> None:
    wrong = {
        f"{path.relative_to(ROOT)} imports {module}"
        for path in files("sandboxes")
        for module in imported(path)
        if layer_of(module) not in (None, "sandboxes")
        and not any(module == m or module.startswith(f"{m}.") for m in SANDBOXES_MAY)
    }
    assert sorted(wrong) == []


def test_the_checks_see_a_violation() -> None:
    """The reading of imports finds what it must (a check that cannot fail is no check)."""
    here = imported(Path(__file__))
    assert "pytest" in here
    assert layer_of("adapters.vault") == "adapters"
    assert layer_of("litestar") is None
