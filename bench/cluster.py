"""``./run bench cluster``: creates/s and logins/s of two Thingport nodes against one, on one PostgreSQL.

1. Start node A (``thingport serve`` on PostgreSQL, a shared master key), make an organization,
   application and products, and ``--devices`` devices for the logins.
2. One node: ``--requests`` signed v2.4 create-device calls from ``--concurrency`` keep-alive clients,
   then a login storm of every device (each logged in once before, untimed, so both runs log in
   from memory, not activate).
3. Start node B on the same database and master key: the same load spread by the client, half
   the create calls and half the logins to each node, at the same total concurrency.
4. Print both, and the ratio two nodes / one node (the one-node run is the reference, measured in
   the same run on the same database); write JSON to bench/results/.

PostgreSQL runs on the same machine as both nodes and the load generator: on a small machine the
nodes share its cores with the database, so the ratio says where the next bottleneck is rather
than what separate machines would give (docs/benchmarks.md, "Two nodes against one").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import text
from tests.support.processes import free_port

from bench import lean
from bench.common import busy_processes, cpu_seconds, ratio, run_loop, server, settled, write_result
from bench.load import Result, run_load, signed_request
from thingport.app import open_services
from thingport.connect import sim
from thingport.crypto.keyring import Keyring
from thingport.settings import Settings
from thingport.store.db import Database
from thingport.testing.server import ThingportServer

CREATE_PATH = "/connect-service/v2.4/devices"
DEVICES_PER_PRODUCT = 5000


@contextmanager
def node(name: str, tmp: Path, db: str, key_file: Path, operator: str) -> Iterator[tuple[ThingportServer, int]]:
    """One ``thingport serve`` node; yields its client and process id."""
    http, mqtt = free_port(), free_port()
    env = {"THINGPORT_DATABASE_URL": db, "THINGPORT_MASTER_KEY_FILE": str(key_file),
           "THINGPORT_OPERATOR_TOKEN": operator, "THINGPORT_NODE_ID": f"bench-{name}",
           "THINGPORT_LOG_LEVEL": "warning", "THINGPORT_PRODUCT_DEVICE_LIMIT": str(DEVICES_PER_PRODUCT * 2)}
    argv = [sys.executable, "-m", "thingport.cli", "serve", "--data-dir", str(tmp / f"node-{name}"),
            "--http-port", str(http), "--mqtt-port", str(mqtt)]
    with server(argv, http, env, f"node {name}", tmp / f"node-{name}.log") as (url, proc):
        client = ThingportServer(url, mqtt, operator, tmp / f"node-{name}")
        try:
            yield client, proc.pid
        finally:
            client.close()


def http_port(node: ThingportServer) -> int:
    return int(node.url.rsplit(":", 1)[1])


def creates(a: ThingportServer, count: int, run: str) -> list[bytes]:
    """``count`` signed create-device calls (v2.4, APIM token) of one application."""
    app = a.create_app()
    products = [a.create_product(app, name=f"bench {i}") for i in range(-(-count // DEVICES_PER_PRODUCT))]
    client = a.enos(app)
    token = client.token()
    params = {"action": "create", "orgId": app.org_id}
    return [signed_request(CREATE_PATH, params, {
        "productKey": products[i // DEVICES_PER_PRODUCT].product_key, "deviceKey": f"{run}-{i:07d}",
        "deviceName": {"defaultValue": f"meter {i}"}, "timezone": "+08:00"}, token, app.secret)
        for i in range(count)]


async def fleet(tmp: Path, db: str, key_file: Path, n: int) -> list[sim.SimDevice]:
    services = await open_services(Settings(data_dir=tmp / "fleet", database_url=db, master_key_file=str(key_file),
                                            product_device_limit=max(n, 10_000)))
    try:
        org = "o-bench-cluster"
        if org not in {o.org_id for o in await services.accounts.list_orgs()}:
            await services.accounts.create_org("Bench cluster", org)
            await services.accounts.create_model(org, "bench-model")
        return await sim.create_fleet(services, org, devices=n)
    finally:
        await services.core.db.close()


async def reset(url: str) -> None:
    db = Database(url)
    async with db.engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await db.close()


async def spread_creates(ports: list[int], requests: list[bytes], concurrency: int) -> dict[str, Any]:
    """The calls dealt out to the nodes in turn, ``concurrency`` clients in all."""
    per = max(1, concurrency // len(ports))
    shares = [requests[i::len(ports)] for i in range(len(ports))]
    started = time.perf_counter()
    results: list[Result] = await asyncio.gather(*(run_load(p, s, per, 240) for p, s in zip(ports, shares,
                                                                                             strict=True)))
    seconds = time.perf_counter() - started
    ok = sum(r.ok for r in results)
    latencies = sorted(x for r in results for x in r.latencies_ms)
    return {"ok": ok, "failed": sum(r.failed for r in results), "seconds": round(seconds, 3),
            "creates_per_s": round(ok / seconds, 1),
            "p50_ms": round(latencies[len(latencies) // 2], 2) if latencies else 0.0,
            "p99_ms": round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 2) if latencies else 0.0,
            "first_failure": next((r.first_failure for r in results if r.first_failure), None)}


async def spread_logins(ports: list[int], pids: list[int], connects: list[bytes], concurrency: int
                        ) -> dict[str, Any]:
    """Every device logs in once, dealt out to the nodes' brokers in turn; then all leave. Each node
    is left to settle (its batch of online state written) before and after."""
    for pid in pids:
        await settled(pid)
    per = max(1, concurrency // len(ports))
    shares = [connects[i::len(ports)] for i in range(len(ports))]
    cpu = [cpu_seconds(p) for p in pids]
    started = time.perf_counter()
    storms = await asyncio.gather(*(lean.storm(p, s, concurrency=per) for p, s in zip(ports, shares, strict=True)))
    seconds = time.perf_counter() - started
    used = [cpu_seconds(p) - c for p, c in zip(pids, cpu, strict=True)]
    for s in storms:
        s.close()
    for pid in pids:
        await settled(pid)
    logged = sum(s.connected for s in storms)
    return {"logins": logged, "lost": sum(s.lost for s in storms), "seconds": round(seconds, 3),
            "logins_per_s": round(logged / seconds, 1),
            "cpu_ms_per_login": round(sum(used) / max(1, logged) * 1000, 3),
            "p99_ms": round(max(s.percentile(0.99) for s in storms), 2)}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="./run bench cluster", description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--database-url", default=os.environ.get("THINGPORT_TEST_DATABASE_URL", ""),
                   help="the PostgreSQL both nodes share (postgresql+asyncpg://…; default THINGPORT_TEST_DATABASE_URL)")
    p.add_argument("--requests", type=int, default=3000, help="timed create-device calls per run")
    p.add_argument("--concurrency", type=int, default=32, help="concurrent HTTP clients in all")
    p.add_argument("--devices", type=int, default=2000, help="devices logging in per storm")
    p.add_argument("--login-concurrency", type=int, default=64, help="logins in flight in all")
    p.add_argument("--reset", action="store_true",
                   help="empty the database first (DROP SCHEMA public CASCADE): its rows must be readable with "
                        "the run's new master key")
    p.add_argument("--no-json", action="store_true", help="do not write bench/results/*.json")
    args = p.parse_args(argv)
    if not args.database_url.startswith("postgresql"):
        p.error("two nodes share a PostgreSQL database: --database-url postgresql+asyncpg://…")
    print(f"two nodes against one on one PostgreSQL: {args.requests} creates (concurrency {args.concurrency}), "
          f"{args.devices} logins (concurrency {args.login_concurrency}), {os.cpu_count()} cores")
    run = secrets.token_hex(3)
    doc: dict[str, Any] = {"requests": args.requests, "concurrency": args.concurrency, "devices": args.devices,
                           "login_concurrency": args.login_concurrency}
    with tempfile.TemporaryDirectory(prefix="thingport-bench-cluster-") as tmp_name, ExitStack() as nodes:
        tmp = Path(tmp_name)
        key_file, operator = tmp / "master.key", secrets.token_urlsafe(16)
        Keyring.generate().save(key_file)
        if args.reset:
            asyncio.run(reset(args.database_url))
        devices = asyncio.run(fleet(tmp, args.database_url, key_file, args.devices))
        connects = [lean.connect_packet(cid, user, password, keep_alive=300)
                    for cid, user, password in (sim.enos_login(d) for d in devices)]
        a, pid_a = nodes.enter_context(node("A", tmp, args.database_url, key_file, operator))
        calls = creates(a, args.requests * 2, run)
        run_loop(spread_logins([a.mqtt_port], [pid_a], connects, args.login_concurrency))  # activations, untimed
        one = {"creates": run_loop(spread_creates([http_port(a)], calls[:args.requests], args.concurrency)),
               "logins": run_loop(spread_logins([a.mqtt_port], [pid_a], connects, args.login_concurrency))}
        b, pid_b = nodes.enter_context(node("B", tmp, args.database_url, key_file, operator))
        two = {"creates": run_loop(spread_creates([http_port(a), http_port(b)], calls[args.requests:],
                                                  args.concurrency)),
               "logins": run_loop(spread_logins([a.mqtt_port, b.mqtt_port], [pid_a, pid_b], connects,
                                                args.login_concurrency))}
    doc.update({"one_node": one, "two_nodes": two,
                "ratio_creates": round(ratio(two["creates"]["creates_per_s"], one["creates"]["creates_per_s"]), 3),
                "ratio_logins": round(ratio(two["logins"]["logins_per_s"], one["logins"]["logins_per_s"]), 3),
                "busy": busy_processes()})
    for label, r in (("one node", one), ("two nodes", two)):
        c, lg = r["creates"], r["logins"]
        print(f"{label:<10} creates {c['creates_per_s']:>8.1f}/s (p50 {c['p50_ms']} ms, p99 {c['p99_ms']} ms, "
              f"{c['failed']} failed)   logins {lg['logins_per_s']:>8.1f}/s ({lg['cpu_ms_per_login']} ms CPU each, "
              f"{lg['lost']} lost)")
    print(f"ratio two nodes / one node (the reference, same run): creates {doc['ratio_creates']:.2f}, "
          f"logins {doc['ratio_logins']:.2f}")
    if not args.no_json:
        print(f"wrote {write_result('cluster', doc)}")
    failed = sum(r["creates"]["failed"] + r["logins"]["lost"] for r in (one, two))
    return 1 if failed else 0
