"""``./run bench registry-size``: EnOS get and search p99 at 10,000 devices and at ``--devices``, in one run.

Issue 12's goal: latency stays flat as the registry grows, p99 at 1,000,000 devices ≤ 2× p99 at
10,000, for get and for a search on every field of the expression language. The reference is
Thingport itself at 10,000 devices, measured in the same run.

1. Start ``thingport serve`` on a temp data directory, SQLite unless ``--database-url``; create an
   organization, application and product through the admin and EnOS APIs (bench/__main__.py's
   ``Setup``), and 20 small products of 5 devices each, every one with a model of its own, the
   first a gateway product.
2. Fill the big product to 10,000 devices with ``thingport device import`` (every device has a
   name and an attribute of its own, a tag ``site`` shared by 5 devices, and one in 20 a rare time
   zone that 5 devices share), then time ``--requests`` signed v2.4 calls of each kind from
   ``--concurrency`` clients: get-device, and a search on each device field (``KINDS``). Every
   selective search matches 1 to 5 devices at both sizes, and each call asks for a different
   device, site or zone where the field has that many values; where it has fewer (products,
   models, the product type) calls of the same value differ by trailing blanks in the expression,
   so that no two share a signature. ``status = 'online'`` matches nothing but reads every device
   of the organization (no index answers a derived status): it gets ``--scan-requests`` calls.
   A kind's warm-up, and then its timed calls (signed after the warm-up), each stop after
   ``--time-limit`` seconds: a search that reads the whole registry is measured on the calls done.
3. Import the rest up to ``--devices`` (into the big product, time zone +08:00) and time fresh
   calls of the same kinds again.
4. Print p50/p99 at both sizes and the ratio of the p99s (goal ≤ 2), and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
import time
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.processes import free_port

from bench.__main__ import CREATE_PATH, Setup, measure
from bench.cluster import reset
from bench.common import ROOT, busy_processes, machine, ratio, run_loop, server, write_result
from bench.import_devices import cli
from bench.load import Result, apim_signature, signed_request

BASE = 10_000
SITE_SIZE = 5  # devices per site tag: a selective tag search finds 5 at any registry size
SEARCH_PATH = CREATE_PATH  # the v2.4 devices resource answers get and search
ZONE_EVERY = 20  # one device in 20 of the first 10,000 has a rare time zone ...
ZONES = sorted(zoneinfo.available_timezones())[:BASE // ZONE_EVERY // SITE_SIZE]  # ... 5 devices per zone
SMALL_PRODUCTS = 20  # products of SITE_SIZE devices each, a model each; the first a gateway product


def device_key(i: int) -> str:
    return f"meter-{i:08d}"


def timezone(i: int) -> str:
    return ZONES[i // ZONE_EVERY % len(ZONES)] if i < BASE and i % ZONE_EVERY == 0 else "+08:00"


def write_csv(path: Path, start: int, stop: int) -> None:
    with path.open("w") as out:
        out.write("deviceKey,name,timezone,tags,attributes\n")
        for lo in range(start, stop, 100_000):
            out.write("".join(f'{device_key(i)},Meter {i},{timezone(i)},"{{""site"": ""site-{i // SITE_SIZE:07d}""}}",'
                              f'"{{""serial"": ""sn-{i:08d}""}}"\n'
                              for i in range(lo, min(stop, lo + 100_000))))


def fill(tmp: Path, data_dir: Path, env: dict[str, str], setup: Setup, start: int, stop: int) -> None:
    csv_path = tmp / f"devices-{start}.csv"
    write_csv(csv_path, start, stop)
    report = cli(data_dir, env, "device", "import", "--org", setup.org_id, "--product", setup.product_keys[0],
                 str(csv_path))
    if report["created"] != stop - start or report["failed"]:
        raise RuntimeError(f"import created {report['created']} of {stop - start}: {report['errors'][:3]}")
    csv_path.unlink()


def enos_post(setup: Setup, path: str, params: dict[str, str], body: dict[str, Any]) -> Any:
    """One signed EnOS call through ``setup``'s client (set-up and checks, not timed)."""
    text = json.dumps(body)
    ts = str(int(time.time() * 1000))
    r = setup.http.post(path, params=params, content=text, headers={
        "Content-Type": "application/json;charset=UTF-8", "apim-accesstoken": setup.token, "apim-timestamp": ts,
        "apim-signature": apim_signature(setup.token, params, text, ts, setup.secret)}).json()
    if r["code"] != 0:
        raise RuntimeError(f"{path} {params}: {r}")
    return r


@dataclass(frozen=True, slots=True)
class Small:
    """The small products (key, model), for the product, model and product-type searches."""

    products: list[tuple[str, str]]

    @classmethod
    def create(cls, setup: Setup, operator: str) -> Small:
        admin = {"Authorization": f"Bearer {operator}"}
        products = []
        for k in range(SMALL_PRODUCTS):
            model = f"small-model-{k:02d}"
            setup.http.post(f"/admin/v1/orgs/{setup.org_id}/models", json={"modelId": model},
                            headers=admin).raise_for_status()
            key = str(enos_post(setup, "/connect-service/v2.1/products", {"action": "create", "orgId": setup.org_id}, {
                "productName": {"defaultValue": f"Small {k}"}, "productType": "Gateway" if k == 0 else "Device",
                "dataFormat": "Json", "modelId": model, "biDirectionalAuth": False})["data"])
            rows = "".join(f"small-{k:02d}-{j},Small {k} {j},+08:00\n" for j in range(SITE_SIZE))
            r = setup.http.post(f"/admin/v1/orgs/{setup.org_id}/products/{key}/devices/import",
                                content="deviceKey,name,timezone\n" + rows,
                                headers={**admin, "Content-Type": "text/csv"})
            r.raise_for_status()
            if r.json()["created"] != SITE_SIZE:
                raise RuntimeError(f"small product import: {r.json()}")
            products.append((key, model))
        return cls(products)


def asset_ids(setup: Setup, operator: str) -> list[str]:
    """The asset ids of the big product's first 10,000 devices, by device number (the admin export)."""
    r = setup.http.get(f"/admin/v1/orgs/{setup.org_id}/devices/export",
                       params={"productKey": setup.product_keys[0]},
                       headers={"Authorization": f"Bearer {operator}"}, timeout=120)
    r.raise_for_status()
    by_key = {d["deviceKey"]: d["assetId"] for d in (json.loads(line) for line in r.text.splitlines() if line.strip())}
    return [by_key[device_key(i)] for i in range(BASE)]


#: A search kind: the expression of call ``n`` of ``count`` and how many devices it matches.
Search = Callable[[int, int], str]


def searches(small: Small, assets: list[str]) -> dict[str, tuple[Search, int]]:
    def device(n: int, count: int) -> int:
        return n * BASE // count

    def cycle(values: list[str], template: str) -> Search:
        """Few values: calls cycle through them, the same value padded by one more blank each round."""
        return lambda n, count: template.format(values[n % len(values)]) + " " * (n // len(values))

    return {
        "search-key": (lambda n, c: f"deviceKey = '{device_key(device(n, c))}'", 1),
        "search-tag": (lambda n, c: f"deviceTags.site = 'site-{n * (BASE // SITE_SIZE) // c:07d}'", SITE_SIZE),
        "search-name": (lambda n, c: f"deviceName = 'Meter {device(n, c)}'", 1),
        "search-attr": (lambda n, c: f"deviceAttributes.serial = 'sn-{device(n, c):08d}'", 1),
        "search-asset": (lambda n, c: f"assetId = '{assets[device(n, c)]}'", 1),
        "search-tz": (cycle(ZONES, "timezone = '{}'"), SITE_SIZE),
        "search-product": (cycle([p for p, _ in small.products], "productKey = '{}'"), SITE_SIZE),
        "search-model": (cycle([m for _, m in small.products], "modelId = '{}'"), SITE_SIZE),
        "search-type": (cycle(["Gateway"], "productType = '{}'"), SITE_SIZE),
        "search-status": (cycle(["online"], "status = '{}'"), 0),
    }


SCANS = ("search-status",)  # kinds that read the organization's devices by design (docs/enos.md#search)


def search_body(expression: str) -> dict[str, Any]:
    return {"expression": expression, "pagination": {"pageNo": 1, "pageSize": 10}}


def calls(setup: Setup, kind: str, search: Search | None, count: int) -> list[bytes]:
    """``count`` signed calls of ``kind``, each for a different device (or site) among the first 10,000."""
    out = []
    for n in range(count):
        if search is None:
            params = {"action": "get", "orgId": setup.org_id, "productKey": setup.product_keys[0],
                      "deviceKey": device_key(n * BASE // count)}
            out.append(signed_request(CREATE_PATH, params, None, setup.token, setup.secret))
            continue
        out.append(signed_request(SEARCH_PATH, {"action": "search", "orgId": setup.org_id},
                                  search_body(search(n, count)), setup.token, setup.secret))
    return out


def check(setup: Setup, kinds: dict[str, tuple[Search, int]]) -> None:
    """Each search matches what it is meant to (untimed): a kind that matched thousands would not be
    measuring an index."""
    for kind, (search, expected) in kinds.items():
        for n in (0, 1):
            total = enos_post(setup, SEARCH_PATH, {"action": "search", "orgId": setup.org_id},
                              search_body(search(n, 2)))["pagination"]["totalSize"]
            if total != expected:
                raise RuntimeError(f"{kind}: {search(n, 2)!r} matched {total} devices, not {expected}")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="./run bench registry-size", description=__doc__.split("\n")[0])
    p.add_argument("--devices", type=int, default=1_000_000, help="the large registry (the small one is 10,000)")
    p.add_argument("--requests", type=int, default=1000, help="timed calls of each kind at each size")
    p.add_argument("--warmup", type=int, default=100, help="untimed calls of each kind sent first")
    p.add_argument("--scan-requests", type=int, default=100,
                   help=f"timed calls of the kinds that read the whole organization ({', '.join(SCANS)}); "
                        "a tenth as many untimed first")
    p.add_argument("--concurrency", type=int, default=8, help="concurrent keep-alive clients")
    p.add_argument("--time-limit", type=float, default=120.0,
                   help="stop a kind's warm-up, and then its timed calls, after this many seconds (≤ 240, the "
                        "signature window): a search that reads the whole registry is measured on the calls done")
    p.add_argument("--database-url", default="", help="Thingport on this database (postgresql+asyncpg://…); "
                                                      "default SQLite in a temp dir")
    p.add_argument("--reset", action="store_true",
                   help="empty --database-url first (DROP SCHEMA public CASCADE): never a database you keep")
    p.add_argument("--kinds", default="", help="comma-separated kinds to time (default all: get, "
                                                 "search-key, search-tag, …, search-status)")
    p.add_argument("--no-json", action="store_true", help="do not write bench/results/registry-size-*.json")
    args = p.parse_args(argv)
    per_kind = args.warmup + args.requests
    if args.devices <= BASE or not 0 < per_kind <= BASE // SITE_SIZE or args.scan_requests < 1:
        p.error(f"--devices must exceed {BASE}; warm-up + requests must be 1..{BASE // SITE_SIZE}")
    if not 0 < args.time_limit <= 240:
        p.error("--time-limit must be 1..240 s: the calls are signed before they are sent")
    if args.reset and not args.database_url:
        p.error("--reset empties a --database-url")
    known = ["get", *searches(Small([]), []).keys()]
    chosen = [k for k in args.kinds.split(",") if k] or known
    if set(chosen) - set(known):
        p.error(f"--kinds: unknown {', '.join(sorted(set(chosen) - set(known)))} (known: {', '.join(known)})")
    engine = "postgresql" if args.database_url else "sqlite"
    print(f"registry-size: {', '.join(chosen)}: p99 at {BASE} and {args.devices} devices on {engine}, "
          f"{args.requests} calls (+{args.warmup} warm-up) of each kind, {args.scan_requests} of {', '.join(SCANS)}, "
          f"concurrency {args.concurrency}; machine {machine()}")
    print(f"busiest processes before: {busy_processes()}")
    if args.reset:
        run_loop(reset(args.database_url))
    results: dict[int, dict[str, Result]] = {}
    with tempfile.TemporaryDirectory(prefix="thingport-registry-") as name:
        tmp = Path(name)
        data_dir = tmp / "thingport"
        operator = secrets.token_urlsafe(16)
        env = {"THINGPORT_OPERATOR_TOKEN": operator, "THINGPORT_LOG_LEVEL": "warning",
               "THINGPORT_PRODUCT_DEVICE_LIMIT": str(args.devices), "THINGPORT_DATABASE_URL": args.database_url}
        cli_env = {**os.environ, **env}  # the import command writes to the server's database
        port = free_port()
        argv_ = [sys.executable, "-m", "thingport.cli", "serve", "--data-dir", str(data_dir),
                 "--host", "127.0.0.1", "--http-port", str(port), "--mqtt-port", str(free_port())]
        with server(argv_, port, env, "thingport", tmp / "thingport.log") as (url, proc):
            setup = Setup(url, operator, products=1)
            small = Small.create(setup, operator)
            filled = 0
            kinds: dict[str, tuple[Search, int]] = {}
            for size in (BASE, args.devices):
                started = time.perf_counter()
                fill(tmp, data_dir, cli_env, setup, filled, size)
                print(f"imported {size - filled} devices in {time.perf_counter() - started:.1f} s")
                filled = size
                setup.token = setup._token()
                kinds = kinds or searches(small, asset_ids(setup, operator))
                check(setup, {k: v for k, v in kinds.items() if k in chosen})
                results[size] = {}
                for kind, search in [("get", None), *((k, s) for k, (s, _) in kinds.items())]:
                    if kind not in chosen:
                        continue
                    timed, warmup = ((args.scan_requests, args.scan_requests // 10) if kind in SCANS
                                     else (args.requests, args.warmup))
                    # the timed calls are signed after the warm-up: a slow kind's warm-up must not age
                    # them past the signature window (300 s)
                    measure(port, calls(setup, kind, search, warmup), 0, args.concurrency, args.time_limit, proc.pid)
                    r = results[size][kind] = measure(port, calls(setup, kind, search, timed), 0, args.concurrency,
                                                      args.time_limit, proc.pid)
                    s = r.summary()
                    print(f"{size:>9} devices  {kind:<14} {s['ok']:>6} ok {s['failed']:>4} failed  "
                          f"p50 {s['p50_ms']:8.2f} ms  p99 {s['p99_ms']:8.2f} ms", flush=True)
                    if r.first_failure:
                        print(f"           first failure: {r.first_failure}")
    ratios = {kind: ratio(results[args.devices][kind].percentile(99), results[BASE][kind].percentile(99))
              for kind in results[BASE]}
    for kind, value in ratios.items():
        print(f"{kind:<14} p99 at {args.devices} / p99 at {BASE}: {value:6.2f}  (goal ≤ 2)")
    print(f"load after the run: {machine()['loadavg']}")
    if not args.no_json:
        path = write_result("registry-size", {
            "devices": args.devices, "base": BASE, "requests": args.requests, "concurrency": args.concurrency,
            "database": engine, "scan_requests": args.scan_requests, "time_limit_s": args.time_limit,
            "results": {str(size): {k: r.summary() for k, r in rs.items()} for size, rs in results.items()},
            "p99_ratio": ratios})
        print(f"wrote {path.relative_to(ROOT)}")
    failed = sum(r.failed for rs in results.values() for r in rs.values())
    return 1 if failed else 0
