"""Prometheus metrics of one bot process (prometheus_client, one registry per app).

Every label takes its values from a small known set, never from outside text: a Slack outcome
is `ok` or an error name the gateway knows, else `other` (the gateway bounds it); a kie.ai code is
a documented code, else `other`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

#: Every metric name starts with this.
PREFIX = "kie_slack_"
#: The `Content-Type` of the `/metrics` page.
CONTENT_TYPE = CONTENT_TYPE_LATEST

#: kie.ai envelope codes kept as label values (kie-api README §1.3); others are `other`.
KIE_CODES = frozenset(
    str(code)
    for code in (200, 400, 401, 402, 404, 408, 409, 413, 422, 429, 451, 455, 500, 501, 505)
)
#: Poll outcomes: a task state or a kind of kie.ai error.
POLL_OUTCOMES = frozenset(
    {"running", "succeeded", "failed", "auth", "credits", "not_found", "invalid", "unavailable"}
)
OUTBOX_STATUSES = ("pending", "failed")


def bounded(value: str, known: Iterable[str]) -> str:
    """`value` when it is one of `known`, else `other`."""
    return value if value in known else "other"


class Metrics:
    """The bot's counters, histograms and gauges; `render` gives the `/metrics` page."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(namespace=PREFIX.rstrip("_"), registry=self.registry)
        r = self.registry
        self._callbacks = Counter(
            PREFIX + "callbacks",
            "Callbacks answered, by product and HTTP status.",
            ["product", "status"],
            registry=r,
        )
        self._callback_counters: dict[tuple[str, int], Counter] = {}
        self._callback_seconds = Histogram(
            PREFIX + "callback_seconds",
            "Time from a callback's arrival to its answer (stored and committed).",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self._slack_calls = Counter(
            PREFIX + "slack_calls",
            "Slack Web API calls, by method and outcome (Slack's error name).",
            ["method", "outcome"],
            registry=r,
        )
        self._slack_seconds = Histogram(
            PREFIX + "slack_call_seconds",
            "Duration of Slack Web API calls, by method.",
            ["method"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self._kie_requests = Counter(
            PREFIX + "kie_requests",
            "Requests to kie.ai's API, by path and envelope code.",
            ["path", "code"],
            registry=r,
        )
        self._polls = Counter(
            PREFIX + "polls",
            "Polls of kie.ai, by product and outcome.",
            ["product", "outcome"],
            registry=r,
        )
        self._outbox = Gauge(
            PREFIX + "outbox_rows",
            "Outbox rows waiting to be sent (pending) or refused for good (failed).",
            ["status"],
            registry=r,
        )
        self._oldest_pending = Gauge(
            PREFIX + "outbox_oldest_pending_seconds",
            "Age of the oldest pending outbox row (0 when none is pending).",
            registry=r,
        )
        self._store_up = Gauge(
            PREFIX + "store_up", "1 when the database answered the last scrape.", registry=r
        )

    def count_round_trips(self, read: Callable[[], int]) -> None:
        """Report the database's round trips so far, as `read` tells them on each scrape."""
        self.registry.register(_RoundTrips(read))

    def callback(self, product: str, status: int, seconds: float) -> None:
        """A callback answered with `status` after `seconds`; `product` is a known slug."""
        counter = self._callback_counters.get((product, status))
        if counter is None:  # each (product, status) is looked up once: callbacks are the hot path
            counter = self._callback_counters[product, status] = self._callbacks.labels(
                product, str(status)
            )
        counter.inc()
        self._callback_seconds.observe(seconds)

    def slack_call(self, method: str, outcome: str, seconds: float) -> None:
        """A Slack Web API call that ended with `outcome`: `ok`, a known error name or `other`."""
        self._slack_calls.labels(method, outcome).inc()
        self._slack_seconds.labels(method).observe(seconds)

    def kie_request(self, path: str, code: int | str | None) -> None:
        """A kie.ai API request to `path` (no query) answered with envelope `code`."""
        self._kie_requests.labels(path, bounded(str(code), KIE_CODES)).inc()

    def poll(self, product: str, outcome: str) -> None:
        """A poll of one task: its state, or the kind of kie.ai error."""
        self._polls.labels(product, bounded(outcome, POLL_OUTCOMES)).inc()

    def render(self, outbox: Mapping[str, int] | None, oldest_pending_age: float | None) -> bytes:
        """The text page; `outbox` is rows per status, None when the store did not answer."""
        self._store_up.set(0 if outbox is None else 1)
        if outbox is not None:
            for status in OUTBOX_STATUSES:
                self._outbox.labels(status).set(outbox.get(status, 0))
            self._oldest_pending.set(oldest_pending_age or 0.0)
        return generate_latest(self.registry)


class _RoundTrips(Collector):
    """`kie_slack_database_round_trips_total`: requests sent to the database server and
    answered (a statement, or a pipeline of them); 0 on SQLite, which runs in process."""

    def __init__(self, read: Callable[[], int]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            PREFIX + "database_round_trips",
            "Requests sent to the database server and answered (a statement or a pipeline).",
        )
        family.add_metric([], self._read())
        yield family
