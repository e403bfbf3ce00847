"""Capture a corpus of stored events, byte for byte, from the SQLite event stores that a run of
the engine leaves behind (``make test`` leaves one per end-to-end engine under pytest's
temporary directory), for ``tests/corpus``.

It takes whole aggregates (every event of one order, product or delivery), so that the corpus
can be folded as well as decoded: first the aggregate that covers most of the event types not
yet covered, and so on until every type found is in. A release that adds an event type or a
version runs it after its own ``make test`` and commits the new file beside the older ones.

    python scripts/capture_corpus.py tests/corpus/<date>.jsonl /tmp/pytest-of-$USER/pytest-N
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections import defaultdict
from pathlib import Path

Record = tuple[str, int, str, bytes]  # originator id, version, stored name, state


def aggregates(databases: list[Path]) -> dict[str, list[Record]]:
    """Every aggregate of every database, by originator id (products have the same id in every
    store: the stream with the most event types wins)."""
    found: dict[str, list[Record]] = {}
    for database in databases:
        rows = sqlite3.connect(database).execute(
            "SELECT originator_id, originator_version, topic, state FROM stored_events "
            "ORDER BY originator_id, originator_version"
        )
        mine: dict[str, list[Record]] = defaultdict(list)
        for originator_id, version, topic, state in rows:
            mine[originator_id].append((originator_id, version, topic, bytes(state)))
        for originator_id, records in mine.items():
            if _types(records) > _types(found.get(originator_id, [])):
                found[originator_id] = records
    return found


def covering(found: dict[str, list[Record]]) -> list[list[Record]]:
    """Whole aggregates, greedily, until every stored name found is covered once."""
    missing = {record[2] for records in found.values() for record in records}
    chosen: list[list[Record]] = []
    while missing:
        best = max(found.values(), key=lambda rs: (len(missing & {r[2] for r in rs}), -len(rs)))
        chosen.append(best)
        missing -= {record[2] for record in best}
    return chosen


def main(out: Path, roots: list[Path]) -> None:
    databases = [db for root in roots for db in _stores(root)]
    chosen = covering(aggregates(databases))
    with out.open("w") as corpus:
        for records in chosen:
            for originator_id, version, topic, state in records:
                line = {"originator_id": originator_id, "originator_version": version,
                        "topic": topic, "state": state.decode()}  # fmt: skip
                corpus.write(json.dumps(line, sort_keys=True) + "\n")
    names = sorted({r[2] for records in chosen for r in records})
    sys.stdout.write(f"{sum(map(len, chosen))} events of {len(chosen)} aggregates, "
                     f"{len(names)} types\n")  # fmt: skip


def _types(records: list[Record]) -> int:
    return len({record[2] for record in records})


def _stores(root: Path) -> list[Path]:
    """The engines' event stores under a directory (``<VAR_DIR>/bitloot.db``; the stores that
    tests build by hand hold made-up types), or one store named on its own."""
    return sorted(root.rglob("bitloot.db")) if root.is_dir() else [root]


if __name__ == "__main__":
    main(Path(sys.argv[1]), [Path(arg) for arg in sys.argv[2:]])
