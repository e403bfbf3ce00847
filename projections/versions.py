"""Which version of its projection's schema each generation's table was built at.

A projection declares its version (``Projection.version``); raising it says that its table's
shape, or what it writes there, changed. ``projection_versions`` keeps, per generation, the
version its table was built at (a generation built before versions were kept counts as 1). When
an engine starts and finds the live generation built at another version than its own, it asks
for a rebuild: the new generation is built beside the live one, at the engine's version, and
swapped in when it has caught up, as an admin's rebuild is.
"""

from __future__ import annotations

from adapters.views import Tx, ViewDatabase

VERSIONS_TABLE = "projection_versions"
VERSIONS_DDL = (
    f"CREATE TABLE IF NOT EXISTS {VERSIONS_TABLE} ("
    "name TEXT NOT NULL, generation INTEGER NOT NULL, version INTEGER NOT NULL, "
    "PRIMARY KEY (name, generation))"
)
BEFORE_VERSIONS = 1  # the version of a table built before versions were kept
_SELECT_VERSION = (
    f"SELECT version FROM {VERSIONS_TABLE} "  # noqa: S608
    "WHERE name = %s AND generation = %s"
)


def built_version(tx: Tx, name: str, generation: int) -> int | None:
    """The version a generation's table was built at, if it was recorded."""
    rows = tx.execute(_SELECT_VERSION, (name, generation))
    return int(rows[0][0]) if rows else None


def record_version(tx: Tx, name: str, generation: int, version: int) -> None:
    """Say that a generation's table is (being) built at ``version``."""
    tx.execute(
        f"INSERT INTO {VERSIONS_TABLE} (name, generation, version) VALUES (%s, %s, %s) "  # noqa: S608
        "ON CONFLICT (name, generation) DO UPDATE SET version = excluded.version",
        (name, generation, version),
    )


def live_version(views: ViewDatabase, name: str, generation: int) -> int:
    """The version the projection's live generation was built at (1 if none was recorded)."""
    rows = views.query(_SELECT_VERSION, (name, generation))
    return int(rows[0][0]) if rows else BEFORE_VERSIONS
