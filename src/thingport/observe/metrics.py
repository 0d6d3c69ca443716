"""``GET /metrics``: the Prometheus text format, from one registry per app (no global state).

What the request path measures itself is little: one counter and one histogram observation per
HTTP request (:mod:`thingport.observe.http`) and one histogram observation per database
transaction, kept as plain numbers (:class:`Tally`, :class:`Timings`) and made into Prometheus
families at the scrape. Everything else is read when Prometheus scrapes, by :class:`LiveCollector`: the
embedded broker's counters (``Broker.stats()``, which it keeps anyway), the front door's login,
request and downlink counts, the push service's counts, and the push queue and outbox backlog
(two small queries, made by :meth:`Metrics.refresh` before the text is written). The login hot
path pays nothing for metrics beyond a ``Counter`` increment.

Names and labels are pinned by ``tests/observe/test_metrics.py`` and used by
``docs/grafana-dashboard.json``: renaming one breaks dashboards, so it is a breaking change.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import fields
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from thingport.services.container import Services
from thingport.services.oceanconnect.pushes import Backlog

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: HTTP latency buckets, seconds: a cached signed read is well under a millisecond, a batch create
#: of a thousand devices can take seconds.
HTTP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DB_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

#: Broker counters exported as ``thingport_mqtt_broker_events_total{event=…}`` (the rest are gauges).
BROKER_GAUGES = ("connections", "sessions")


class Tally(Collector):
    """A counter family the request path increments: plain numbers per label set, made into a
    Prometheus family only when scraped. ``prometheus_client``'s own counter takes a lock per
    increment (and ``labels()`` a lookup), which cost about as much as a signed read's statement;
    everything here runs on the event loop's thread."""

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...]) -> None:
        self.name, self.documentation, self.labels = name, documentation, labels
        self.counts: dict[tuple[str, ...], float] = {}

    def inc(self, key: tuple[str, ...], amount: float = 1.0) -> None:
        self.counts[key] = self.counts.get(key, 0.0) + amount

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        for key, value in sorted(self.counts.items()):
            family.add_metric(key, value)
        yield family


class Timings(Collector):
    """A histogram family the same way (see :class:`Tally`): per label set, one count per bucket
    (the value's own, found by bisection) and the sum; made cumulative when scraped."""

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...], buckets: tuple[float, ...]) -> None:
        self.name, self.documentation, self.labels, self.buckets = name, documentation, labels, buckets
        self.series: dict[tuple[str, ...], list[float]] = {}  # len(buckets) + 1 counts (+Inf last), then the sum

    def observe(self, key: tuple[str, ...], value: float) -> None:
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = [0.0] * (len(self.buckets) + 2)
        series[bisect_left(self.buckets, value)] += 1  # ``le``: a value equal to a bound is in its bucket
        series[-1] += value

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        bounds = [*(floatToGoString(b) for b in self.buckets), "+Inf"]  # type: ignore[no-untyped-call]
        for key, series in sorted(self.series.items()):
            total, cumulative = 0.0, []
            for bound, count in zip(bounds, series[:-1], strict=True):
                total += count
                cumulative.append((bound, total))
            family.add_metric(list(key), cumulative, sum_value=series[-1])
        yield family


class Metrics:
    """The registry of one app and what the request path observes into it."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.http_requests = Tally("thingport_http_requests", "HTTP requests answered, by dialect, route "
                                   "template (EnOS: with its action) and HTTP status", ("dialect", "route", "code"))
        self.http_duration = Timings("thingport_http_request_duration_seconds", "Time to answer an HTTP request",
                                     ("dialect", "route"), HTTP_BUCKETS)
        self.db_transactions = Timings("thingport_db_transaction_duration_seconds",
                                       "Database transactions, from begin to commit or rollback", ("kind",),
                                       DB_BUCKETS)
        for own in (self.http_requests, self.http_duration, self.db_transactions):
            self.registry.register(own)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.live = LiveCollector()
        self.registry.register(self.live)

    def http_answered(self, dialect: str, route: str, status: int, seconds: float) -> None:
        """Count one HTTP answer and its duration."""
        self.http_requests.inc((dialect, route, str(status)))
        self.http_duration.observe((dialect, route), seconds)

    def transaction(self, kind: str, seconds: float) -> None:
        """Time one database transaction (``Database.on_transaction``)."""
        self.db_transactions.observe((kind,), seconds)

    def attach(self, services: Services, mqtt: Any = None) -> None:
        """Read ``services`` (and the broker of ``mqtt``, embedded or external) at each scrape."""
        self.live.services = services
        self.live.mqtt = mqtt
        db = services.core.db
        db.on_transaction = self.transaction

    async def render(self) -> bytes:
        """The text Prometheus reads, with the backlog just queried."""
        if self.live.services is not None:
            self.live.backlog = await self.live.services.oceanconnect.pushes.backlog()
        return generate_latest(self.registry)


class LiveCollector(Collector):
    """What the running parts already count, read at scrape time."""

    def __init__(self) -> None:
        self.services: Services | None = None
        self.mqtt: Any = None
        self.backlog: Backlog | None = None

    def describe(self) -> list[Metric]:
        return []  # no fixed set: the families depend on what runs (embedded broker or not)

    def collect(self) -> Iterator[Metric]:
        yield from self._broker()
        yield from self._door()
        yield from self._pushes()

    def _broker(self) -> Iterator[Metric]:
        broker = getattr(self.mqtt, "broker", None)
        stats = getattr(broker, "stats", None)
        if stats is None:
            return
        snapshot = stats()
        events = CounterMetricFamily("thingport_mqtt_broker_events", "What the embedded broker counted since "
                                     "it started: accepted TCP connections, connects, refusals, timeouts …",
                                     labels=["event"])
        for f in fields(snapshot):
            if f.name not in BROKER_GAUGES:
                events.add_metric([f.name], getattr(snapshot, f.name))
        yield events
        yield GaugeMetricFamily("thingport_mqtt_connections", "Open MQTT connections", value=snapshot.connections)
        yield GaugeMetricFamily("thingport_mqtt_sessions", "MQTT sessions (live and persistent)",
                                value=snapshot.sessions)

    def _door(self) -> Iterator[Metric]:
        door = getattr(self.mqtt, "door", None)
        if door is None:
            return
        logins = CounterMetricFamily("thingport_mqtt_logins", "MQTT logins decided, by topic family (accepted) or "
                                     "reason (refused)", labels=["result", "family", "reason"])
        downlinks = CounterMetricFamily("thingport_mqtt_downlinks", "Messages the platform sent devices",
                                        labels=["family"])
        for (what, name), count in sorted(door.counts.items()):
            if what == "accepted":
                logins.add_metric(["accepted", name, ""], count)
            elif what == "refused":
                logins.add_metric(["refused", "", name], count)
            elif what == "downlink":
                downlinks.add_metric([name], count)
        yield logins
        yield downlinks
        kicks = CounterMetricFamily("thingport_mqtt_kicks", "Device sessions closed by a registry change",
                                    labels=["event"])
        for event, count in sorted(door.downlinks.kicks.items()):
            kicks.add_metric([event], count)
        yield kicks
        requests = CounterMetricFamily("thingport_mqtt_device_requests", "Device requests handled, by topic family "
                                       "and request topic", labels=["family", "request"])
        for (family, request), count in sorted(door.requests.counts.items()):
            requests.add_metric([family, request], count)
        yield requests

    def _pushes(self) -> Iterator[Metric]:
        if self.services is None:
            return
        pushes = CounterMetricFamily("thingport_push_deliveries", "OceanConnect push attempts: delivered, retried "
                                     "(failed, another attempt to come) and dropped (out of attempts)",
                                     labels=["result"])
        counts = self.services.oceanconnect.pushes.counts
        for result in ("delivered", "retried", "dropped"):
            pushes.add_metric([result], counts[result])
        yield pushes
        b = self.backlog
        if b is None:
            return
        yield GaugeMetricFamily("thingport_push_queue_depth", "Pushes waiting to be sent or retried", value=b.queued)
        yield GaugeMetricFamily("thingport_push_oldest_age_seconds", "Age of the oldest queued push",
                                value=b.oldest_age_ms / 1000)
        yield GaugeMetricFamily("thingport_outbox_lag_events", "Events not yet fanned out to pushes",
                                value=b.outbox_unread)
        yield GaugeMetricFamily("thingport_outbox_lag_seconds", "Age of the oldest event not yet fanned out",
                                value=b.outbox_oldest_age_ms / 1000)
