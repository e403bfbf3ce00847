"""Limits that hold across API processes (PostgreSQL + Redis): a reveal limit of 5 a minute is
one budget for the user, whichever process each reveal reaches; download links and downloads
are limited the same way."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import RunningEngine, another_api_process
from tests.e2e.test_admin import fulfilled_and_revealed

LIMIT = 5


@pytest.fixture
def engine_settings() -> dict[str, str]:
    return {"REVEALS_PER_MINUTE": str(LIMIT)}


@pytest.mark.parametrize("engine", ["postgresql+redis"], indirect=True)
def test_a_reveal_limit_holds_across_two_api_processes(
    engine: RunningEngine, tmp_path: Path
) -> None:
    bearer = {"Authorization": f"Bearer {engine.token('rhea')}"}
    with (
        another_api_process(engine, tmp_path / "serve-2.log") as second_url,
        httpx.Client(base_url=second_url, headers=bearer, timeout=10) as second,
        httpx.Client(base_url=engine.url, headers=bearer, timeout=10) as first,
    ):
        order_id = fulfilled_and_revealed(engine, first)  # reveal 1
        apis = [second, first]

        reveal = f"/fulfillment/{order_id}/reveal"
        answers = [apis[i % 2].post(reveal) for i in range(LIMIT)]  # reveals 2 … 6
        assert [a.status_code for a in answers] == [200] * (LIMIT - 1) + [429]
        assert 1 <= int(answers[-1].headers["retry-after"]) <= 61
        assert [api.post(reveal).status_code for api in apis] == [429, 429]

        link_path = f"/fulfillment/{order_id}/download-link"
        links = [apis[i % 2].get(link_path) for i in range(LIMIT + 1)]
        assert [a.status_code for a in links] == [200] * LIMIT + [429]

        url = links[0].json()["url"]
        through = [url, url.replace(engine.url, second_url)]
        downloads = [httpx.get(through[i % 2]) for i in range(LIMIT + 1)]
        assert [d.status_code for d in downloads] == [200] * LIMIT + [429]
