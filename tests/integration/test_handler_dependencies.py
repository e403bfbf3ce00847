"""Every route handler of the app asks Litestar for one dependency at most: two or more are
resolved in an anyio task group per request, which cost about a tenth of the API process's
interpreter time under load (``entrypoints/http/deps.py``)."""

from __future__ import annotations

from pathlib import Path

from litestar.handlers import HTTPRouteHandler, WebsocketRouteHandler

from entrypoints.bootstrap import bootstrap
from entrypoints.http.app import create_app
from entrypoints.settings import load_settings


def test_no_handler_asks_for_two_dependencies(tmp_path: Path) -> None:
    """The engine's handlers (the mounted sandboxes' included) each take at most one."""
    settings = load_settings({"VAR_DIR": str(tmp_path), "JWT_SECRET": "deps-" + "0" * 40})
    engine = bootstrap(settings)
    try:
        app = create_app(engine)
    finally:
        engine.stop()
    asked: dict[str, list[str]] = {}
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            assert isinstance(handler, HTTPRouteHandler | WebsocketRouteHandler)
            provided = handler.resolve_dependencies()
            names = sorted(set(handler.parsed_fn_signature.parameters) & set(provided))
            asked[f"{route.path} {handler.handler_name}"] = names
    assert any(names == ["engine"] for names in asked.values())  # the check sees dependencies
    assert {where: names for where, names in asked.items() if len(names) > 1} == {}
