"""Prometheus counters, rendered in the text exposition format."""

from __future__ import annotations

from collections import Counter
from typing import ClassVar


class Metrics:
    """Labelled counters kept in memory; `render` gives the `/metrics` page."""

    _HELP: ClassVar[dict[str, str]] = {
        "kie_callbacks_total": "Callbacks answered, by product and answer.",
        "kie_polls_total": "Polls of kie.ai, by product and outcome.",
        "kie_requests_total": "Requests to kie.ai's API, by path and envelope code.",
        "slack_calls_total": "Slack Web API calls, by method and outcome.",
    }

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()

    def inc(self, name: str, **labels: str) -> None:
        self._counts[(name, tuple(sorted(labels.items())))] += 1

    def render(self, gauges: dict[str, float] | None = None) -> str:
        lines: list[str] = []
        for name, help_text in self._HELP.items():
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
            for (metric, labels), count in sorted(self._counts.items()):
                if metric == name:
                    lines.append(f"{name}{_labels(labels)} {count}")
        for name, value in sorted((gauges or {}).items()):
            lines += [f"# TYPE {name} gauge", f"{name} {value:g}"]
        return "\n".join(lines) + "\n"


def _labels(labels: tuple[tuple[str, str], ...]) -> str:
    if not labels:
        return ""
    escaped = (
        f'{key}="{value.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for key, value in labels
    )
    return "{" + ",".join(escaped) + "}"
