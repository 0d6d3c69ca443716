"""``GET /metrics``: names and labels pinned, read with Prometheus' own parser after real traffic
(issue 14 §5). Dashboards (docs/grafana-dashboard.json) use these names: a rename fails here."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.enos_client import EnosClient
from thingport.app import create_app
from thingport.connect.frontdoor import FrontDoor
from thingport.connect.mqtt.broker import Broker, ConnectInfo
from thingport.services.container import Services
from thingport.settings import Settings

#: name → label names of each sample family (a histogram's ``le`` included).
PINNED = {
    "thingport_http_requests_total": {"dialect", "route", "code"},
    "thingport_http_request_duration_seconds_bucket": {"dialect", "route", "le"},
    "thingport_db_transaction_duration_seconds_bucket": {"kind", "le"},
    "thingport_push_deliveries_total": {"result"},
    "thingport_push_queue_depth": set(),
    "thingport_push_oldest_age_seconds": set(),
    "thingport_outbox_lag_events": set(),
    "thingport_outbox_lag_seconds": set(),
    "thingport_mqtt_broker_events_total": {"event"},
    "thingport_mqtt_connections": set(),
    "thingport_mqtt_sessions": set(),
    "thingport_mqtt_logins_total": {"result", "family", "reason"},
    "process_resident_memory_bytes": set(),
}


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((dict(s.labels), s.value))
    return out


async def scrape(http: httpx.AsyncClient, **headers: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    r = await http.get("/metrics", headers=headers)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain"), r.text
    return samples(r.text)


async def test_names_and_labels_after_real_traffic(settings: Settings, services: Services, enos: EnosClient,
                                                   http: httpx.AsyncClient) -> None:
    pk = await enos.create_product()
    await enos.create_device(pk, "meter-1")
    assert (await http.post("/admin/v1/orgs", json={"name": "x"})).status_code == 401
    door = FrontDoor(services)
    door.authenticate_now(ConnectInfo("not-a-device", "u", b"p", True, 60, ("10.0.0.1", 1), False))
    app = create_app(settings, services)
    app.state.metrics.attach(services, SimpleNamespace(broker=Broker(), door=door))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        await client.get("/health")
        r = await client.post("/admin/v1/orgs", json={"name": "m"},
                              headers={"Authorization": "Bearer operator-secret-token"})
        assert r.status_code == 201
        got = await scrape(client)
    for name, labels in PINNED.items():
        assert name in got, name
        assert all(set(s[0]) == labels for s in got[name]), (name, got[name][:3])
    http_total = {(s["dialect"], s["route"], s["code"]): v for s, v in got["thingport_http_requests_total"]}
    assert http_total[("service", "/health", "200")] == 1
    refused = [s for s, v in got["thingport_mqtt_logins_total"] if s["result"] == "refused" and v == 1]
    assert refused and refused[0]["reason"] == "unreadable"
    writes = [v for s, v in got["thingport_db_transaction_duration_seconds_count"] if s["kind"] == "write"]
    assert writes and writes[0] >= 1


async def test_routes_are_templates_and_enos_actions(http: httpx.AsyncClient, enos: EnosClient) -> None:
    pk = await enos.create_product()
    await enos.call("GET", "/connect-service/v2.1/products", {"action": "get", "productKey": pk})
    await enos.call("GET", "/connect-service/v2.1/products", {"action": "nonsense-" + "x" * 50})
    await http.get("/no/such/path/12345")
    routes = {s["route"] for s, _ in (await scrape(http))["thingport_http_requests_total"]}
    assert "/connect-service/{version}/products?action=get" in routes, routes
    assert "/connect-service/{version}/products" in routes and "unmatched" in routes
    assert not any("nonsense" in r or "12345" in r for r in routes)


async def test_the_metrics_token(settings: Settings, services: Services) -> None:
    app = create_app(replace(settings, metrics_token="m-tok"), services)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        assert (await client.get("/metrics")).status_code == 401
        assert (await client.get("/metrics", headers={"Authorization": "Bearer nope"})).status_code == 401
        assert (await client.get("/metrics", headers={"Authorization": "Bearer m-tok"})).status_code == 200


def test_the_grafana_dashboard_uses_only_pinned_names() -> None:
    dashboard = json.loads((Path(__file__).parents[2] / "docs" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert exprs
    known = {n.removesuffix("_bucket").removesuffix("_total") for n in PINNED} | {
        "thingport_mqtt_kicks", "thingport_mqtt_downlinks", "thingport_mqtt_device_requests",
        "thingport_http_request_duration_seconds", "thingport_db_transaction_duration_seconds",
        "process_cpu_seconds", "process_open_fds"}
    for expr in exprs:
        for name in re.findall(r"\b(thingport_[a-z_]+|process_[a-z_]+)", expr):
            base = re.sub(r"_(total|bucket|count|sum)$", "", name)
            assert base in known, (name, expr)


def test_the_plain_families_expose_what_prometheus_client_would() -> None:
    """``Tally`` and ``Timings`` (plain numbers on the request path) against prometheus_client's
    own ``Counter`` and ``Histogram`` fed the same values: the same samples, ``_created`` aside."""
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

    from thingport.observe.metrics import HTTP_BUCKETS, Tally, Timings

    ours, theirs = CollectorRegistry(), CollectorRegistry()
    tally = Tally("t_requests", "doc", ("route", "code"))
    timings = Timings("t_seconds", "doc", ("route",), HTTP_BUCKETS)
    ours.register(tally)
    ours.register(timings)
    counter = Counter("t_requests", "doc", ["route", "code"], registry=theirs)
    histogram = Histogram("t_seconds", "doc", ["route"], buckets=HTTP_BUCKETS, registry=theirs)
    for i, value in enumerate([0.0005, 0.0004, 0.001, 0.3, 7.0, 11.0, 0.0, 2.5, 0.0101]):
        route = f"/r{i % 3}"
        tally.inc((route, "200"))
        timings.observe((route,), value)
        counter.labels(route, "200").inc()
        histogram.labels(route).observe(value)

    def plain(registry: CollectorRegistry) -> list[tuple[str, tuple[tuple[str, str], ...], float]]:
        return sorted((s.name, tuple(sorted(s.labels.items())), round(s.value, 9))
                      for family in text_string_to_metric_families(generate_latest(registry).decode())
                      for s in family.samples if not s.name.endswith("_created"))

    assert plain(ours) == plain(theirs)
