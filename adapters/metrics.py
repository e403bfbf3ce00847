"""Prometheus metrics: a few counters kept in this process, rendered in the text exposition
format together with gauges read from the projections at scrape time."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable


class Counters:
    """Labelled counters and duration sums, safe to bump from any thread."""

    def __init__(self) -> None:
        self._values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = defaultdict(float)
        self._help: dict[str, tuple[str, str]] = {}
        self._lock = threading.Lock()

    def describe(self, name: str, kind: str, text: str) -> None:
        """Declare a metric's type and help line."""
        self._help[name] = (kind, text)

    def add(self, name: str, labels: dict[str, str] | None = None, amount: float = 1.0) -> None:
        """Increase a counter."""
        key = (name, tuple(sorted((labels or {}).items())))
        with self._lock:
            self._values[key] += amount

    def render(self) -> list[str]:
        """The counters as exposition lines."""
        with self._lock:
            values = dict(self._values)
        names = sorted({name for name, _ in values} | set(self._help))
        lines: list[str] = []
        for name in names:
            lines += self._header(name)
            lines += [
                sample(name, v, dict(labels))
                for (n, labels), v in sorted(values.items())
                if n == name
            ]
        return lines

    def _header(self, name: str) -> list[str]:
        kind, text = self._help.get(name, ("counter", name))
        return [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]


def sample(name: str, value: float, labels: dict[str, str] | None = None) -> str:
    """One exposition line."""
    if labels:
        inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
        return f"{name}{{{inner}}} {value:g}"
    return f"{name} {value:g}"


def gauge(name: str, text: str, samples: Iterable[tuple[dict[str, str], float]]) -> list[str]:
    """A gauge's header and samples."""
    return [f"# HELP {name} {text}", f"# TYPE {name} gauge"] + [
        sample(name, value, labels) for labels, value in samples
    ]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
