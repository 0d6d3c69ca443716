"""``./run bench``: create-device and get-device load against Thingport and a bare reference, in one run.

1. Start ``thingport serve`` (a subprocess, temp data dir, SQLite unless ``--database-url``),
   create an organization, model, application and products through the admin and EnOS APIs.
2. Build ``--requests`` signed v2.4 create-device calls (APIM token scheme) and send them from
   ``--concurrency`` keep-alive clients; a warm-up batch goes first and is not counted. Then
   ``--get-requests`` signed v2.4 get-device calls for the devices just created, from
   ``--get-concurrency`` clients.
3. Send the very same requests to ``bench/reference_app.py`` (uvicorn, one insert or one select
   each, on SQLite, or on the same PostgreSQL through asyncpg when Thingport runs on PostgreSQL).
4. Print throughput, p50/p99 latency and the ratio thingport/reference of each scenario; write JSON
   to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import importlib
import json
import os
import platform
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from tests.support.processes import free_port

from bench.common import RESULTS, ROOT, run_loop, server, settled
from bench.load import Result, apim_signature, run_load, signed_request

DEVICES_PER_PRODUCT = 5000  # under the per-product device limit (10,000)
CREATE_PATH = "/connect-service/v2.4/devices"

#: The other scenarios, ``./run bench {name} [args]``: the module whose ``main(argv)`` runs each.
SCENARIOS = {
    "connect-storm": "bench.connect_storm",
    "idle-memory": "bench.idle_memory",
    "broker-cpu": "bench.broker_cpu",
    "cluster": "bench.cluster",
    "import": "bench.import_devices",
    "registry-size": "bench.registry_size",
}


class Setup:
    """An organization, application and products in the running Thingport, and its APIM token."""

    def __init__(self, url: str, operator_token: str, products: int) -> None:
        self.http = httpx.Client(base_url=url, timeout=30)
        admin = {"Authorization": f"Bearer {operator_token}"}
        self.org_id = "bench-" + secrets.token_hex(4)
        for path, body in (("/admin/v1/orgs", {"name": "Bench", "orgId": self.org_id}),
                           (f"/admin/v1/orgs/{self.org_id}/models", {"modelId": "bench-model"})):
            self.http.post(path, json=body, headers=admin).raise_for_status()
        app = self.http.post(f"/admin/v1/orgs/{self.org_id}/apps", json={"name": "bench"}, headers=admin)
        app.raise_for_status()
        self.app_key, self.secret = app.json()["appKey"], app.json()["appSecret"]
        self.token = self._token()
        self.product_keys = [self._create_product(i) for i in range(products)]

    def _token(self) -> str:
        ts = int(time.time() * 1000)
        enc = hashlib.sha256(f"{self.app_key}{ts}{self.secret}".encode()).hexdigest()
        r = self.http.post("/apim-token-service/v2.0/token/get",
                           json={"appKey": self.app_key, "encryption": enc, "timestamp": ts}).json()
        if r["status"] != 0:
            raise RuntimeError(f"token: {r}")
        return str(r["data"]["accessToken"])

    def _create_product(self, i: int) -> str:
        params = {"action": "create", "orgId": self.org_id}
        body = json.dumps({"productName": {"defaultValue": f"Bench {i}"}, "productType": "Device",
                           "dataFormat": "Json", "modelId": "bench-model", "biDirectionalAuth": False})
        ts = str(int(time.time() * 1000))
        r = self.http.post("/connect-service/v2.1/products", params=params, content=body, headers={
            "Content-Type": "application/json;charset=UTF-8", "apim-accesstoken": self.token,
            "apim-timestamp": ts, "apim-signature": apim_signature(self.token, params, body, ts, self.secret)}).json()
        if r["code"] != 0:
            raise RuntimeError(f"create product: {r}")
        return str(r["data"])

    def requests(self, count: int, run: str) -> list[bytes]:
        params = {"action": "create", "orgId": self.org_id}
        out = []
        for i in range(count):
            body = {"productKey": self.product_keys[i // DEVICES_PER_PRODUCT], "deviceKey": f"{run}-{i:07d}",
                    "deviceName": {"defaultValue": f"meter {i}"}, "timezone": "+08:00"}
            out.append(signed_request(CREATE_PATH, params, body, self.token, self.secret))
        return out

    def gets(self, count: int, created: int, run: str) -> list[bytes]:
        """Signed get-device calls for devices the create requests made (each a different device,
        so no two share a signature)."""
        out = []
        for n in range(count):
            i = n % created
            params = {"action": "get", "orgId": self.org_id, "productKey": self.product_keys[i // DEVICES_PER_PRODUCT],
                      "deviceKey": f"{run}-{i:07d}"}
            out.append(signed_request(CREATE_PATH, params, None, self.token, self.secret))
        return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (Linux ``/proc``; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(port: int, requests: list[bytes], warmup: int, concurrency: int, time_limit_s: float,
            pid: int) -> Result:
    async def go() -> Result:
        if warmup:
            await run_load(port, requests[:warmup], concurrency, time_limit_s)
        before = cpu_seconds(pid)
        result = await run_load(port, requests[warmup:], concurrency, time_limit_s)
        return dataclasses.replace(result, server_cpu_s=cpu_seconds(pid) - before)

    try:
        import uvloop
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(go())
    except ImportError:
        return asyncio.run(go())


def settle(wanted: bool, pid: int) -> None:
    """With ``--settle``: wait until the server has done what the creates left it (the event feed,
    the used-signature batches, the collector), so the get run measures gets alone."""
    if wanted:
        print(f"settled after {run_loop(settled(pid)):.1f} s")


def show(name: str, r: Result) -> None:
    s = r.summary()
    print(f"{name:<20} {s['ok']:>7} ok {s['failed']:>5} failed  {s['throughput_rps']:>8.1f} req/s  "
          f"p50 {s['p50_ms']:>7.2f} ms  p99 {s['p99_ms']:>7.2f} ms  "
          f"server CPU {s['server_cpu_ms_per_request']:.2f} ms/req")
    if r.first_failure:
        print(f"           first failure: {r.first_failure}")


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] in SCENARIOS:
        return int(importlib.import_module(SCENARIOS[sys.argv[1]]).main(sys.argv[2:]))
    p = argparse.ArgumentParser(prog="./run bench", description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--requests", type=int, default=3000, help="timed create-device requests per target")
    p.add_argument("--concurrency", type=int, default=32, help="concurrent keep-alive clients")
    p.add_argument("--warmup", type=int, default=200, help="untimed requests sent first to each target")
    p.add_argument("--time-limit", type=float, default=120.0, help="stop a target's run after this many seconds")
    p.add_argument("--database-url", default="", help="bench Thingport on this database (postgresql+asyncpg://…); "
                                                      "default SQLite in a temp dir")
    p.add_argument("--get-requests", type=int, default=3000, help="timed get-device requests per target "
                                                                    "(at most the devices created)")
    p.add_argument("--get-concurrency", type=int, default=50, help="concurrent clients of the get-device run")
    p.add_argument("--settle", action="store_true", help="before each get run, wait until the server is idle "
                                                           "(the creates' left-over work done)")
    p.add_argument("--no-reference", action="store_true", help="skip the bare reference")
    p.add_argument("--no-json", action="store_true", help="do not write bench/results/*.json")
    p.add_argument("--profile", metavar="FILE", help="run Thingport under cProfile and write its stats to FILE")
    args = p.parse_args()
    if args.requests < 1 or args.concurrency < 1 or args.warmup < 0:
        p.error("--requests and --concurrency must be positive, --warmup not negative")
    # signatures are only valid within the server's window (300 s) of when they were built
    args.time_limit = min(args.time_limit, 240.0)

    total = args.warmup + args.requests
    gets = min(args.get_requests, total - args.warmup)
    run_id = secrets.token_hex(3)
    engine = "postgresql" if args.database_url else "sqlite"
    print(f"create-device v2.4 (APIM token), {args.requests} requests + {args.warmup} warm-up, "
          f"concurrency {args.concurrency}; get-device v2.4, {gets} requests, concurrency {args.get_concurrency}; "
          f"Thingport on {engine}, {os.cpu_count()} cores")
    results: dict[str, Any] = {"create": {}, "get": {}}
    with tempfile.TemporaryDirectory(prefix="thingport-bench-") as tmp:
        operator = secrets.token_urlsafe(16)
        env = {"THINGPORT_OPERATOR_TOKEN": operator, "THINGPORT_LOG_LEVEL": "warning",
               "THINGPORT_DATABASE_URL": args.database_url}
        port = free_port()
        profile = ["-m", "cProfile", "-o", str(Path(args.profile).resolve())] if args.profile else []
        argv = [sys.executable, *profile, "-m", "thingport.cli", "serve", "--data-dir", f"{tmp}/thingport",
                "--host", "127.0.0.1", "--http-port", str(port), "--mqtt-port", str(free_port())]
        with server(argv, port, env, "thingport", Path(tmp) / "thingport.log") as (url, proc):
            setup = Setup(url, operator, products=-(-total // DEVICES_PER_PRODUCT))
            requests = setup.requests(total, run_id)
            thingport = {"create": measure(port, requests, args.warmup, args.concurrency, args.time_limit, proc.pid)}
            get_requests = setup.gets(args.warmup + gets, total, run_id)
            settle(args.settle, proc.pid)
            thingport["get"] = measure(port, get_requests, args.warmup, args.get_concurrency, args.time_limit,
                                       proc.pid)
        for scenario, r in thingport.items():
            show(f"{scenario} thingport", r)
            results[scenario]["thingport"] = r.summary()
        if not args.no_reference:
            port = free_port()
            store = ["--pg", args.database_url.replace("+asyncpg", "")] if args.database_url else \
                ["--db", f"{tmp}/reference.db"]
            argv = [sys.executable, "-m", "bench.reference_app", "--port", str(port), *store]
            with server(argv, port, {}, "reference", Path(tmp) / "reference.log") as (_, ref):
                reference = {"create": measure(port, requests, args.warmup, args.concurrency, args.time_limit, ref.pid)}
                settle(args.settle, ref.pid)
                reference["get"] = measure(port, get_requests, args.warmup, args.get_concurrency, args.time_limit,
                                           ref.pid)
            for scenario, r in reference.items():
                show(f"{scenario} reference", r)
                results[scenario]["reference"] = r.summary()
                if r.throughput:
                    ratio = thingport[scenario].throughput / r.throughput
                    results[scenario]["ratio"] = round(ratio, 3)
                    print(f"{scenario}: ratio thingport/reference {ratio:.2f} (throughput)")
                if r.server_cpu_s and thingport[scenario].server_cpu_s:
                    per = thingport[scenario].server_cpu_s / thingport[scenario].ok / (r.server_cpu_s / r.ok)
                    results[scenario]["cpu_per_request_ratio"] = round(per, 2)
                    print(f"{scenario}: server CPU per request thingport/reference {per:.1f}x")
    if not args.no_json:
        RESULTS.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        doc = {"scenario": "create-get-device-v2.4-apim", "time": stamp, "requests": args.requests,
               "warmup": args.warmup, "concurrency": args.concurrency, "get_requests": gets,
               "get_concurrency": args.get_concurrency, "settle": args.settle, "engine": engine,
               "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                           "platform": platform.platform()},
               **results}
        path = RESULTS / f"create-device-{engine}-{stamp}.json"
        path.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {path.relative_to(ROOT)}")
    failed = sum(r.get(side, {}).get("failed", 0) for r in results.values() for side in ("thingport", "reference"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
