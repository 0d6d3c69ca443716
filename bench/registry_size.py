"""``./run bench registry-size``: EnOS get and search p99 at 10,000 devices and at ``--devices``, in one run.

Issue 12's goal: latency stays flat as the registry grows, p99 at 1,000,000 devices ≤ 2× p99 at
10,000. The reference is Thingport itself at 10,000 devices, measured in the same run.

1. Start ``thingport serve`` on a temp SQLite data directory; create an organization, application
   and product through the admin and EnOS APIs (bench/__main__.py's ``Setup``).
2. Fill the registry to 10,000 devices with ``thingport device import`` (every device has a tag
   ``site`` shared by 5 devices), then time ``--requests`` signed v2.4 calls of each kind from
   ``--concurrency`` clients: get-device, search ``deviceKey = x``, search ``deviceTags.site = x``
   (each call asks for a different device or site among the first 10,000, so the work per call is
   the same at both sizes and no two calls share a signature).
3. Import the rest up to ``--devices`` and time fresh calls of the same three kinds again.
4. Print p50/p99 at both sizes and the ratio of the p99s (goal ≤ 2), and the load average.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
from pathlib import Path

from tests.support.processes import free_port

from bench.__main__ import CREATE_PATH, Setup, measure
from bench.common import ROOT, busy_processes, machine, ratio, server, write_result
from bench.import_devices import cli
from bench.load import Result, signed_request

BASE = 10_000
SITE_SIZE = 5  # devices per site tag: a selective tag search finds 5 at any registry size
SEARCH_PATH = CREATE_PATH  # the v2.4 devices resource answers get and search


def device_key(i: int) -> str:
    return f"meter-{i:08d}"


def write_csv(path: Path, start: int, stop: int) -> None:
    with path.open("w") as out:
        out.write("deviceKey,name,timezone,tags\n")
        for lo in range(start, stop, 100_000):
            out.write("".join(f'{device_key(i)},Meter {i},+08:00,"{{""site"": ""site-{i // SITE_SIZE:07d}""}}"\n'
                              for i in range(lo, min(stop, lo + 100_000))))


def fill(tmp: Path, data_dir: Path, env: dict[str, str], setup: Setup, start: int, stop: int) -> None:
    csv_path = tmp / f"devices-{start}.csv"
    write_csv(csv_path, start, stop)
    report = cli(data_dir, env, "device", "import", "--org", setup.org_id, "--product", setup.product_keys[0],
                 str(csv_path))
    if report["created"] != stop - start or report["failed"]:
        raise RuntimeError(f"import created {report['created']} of {stop - start}: {report['errors'][:3]}")
    csv_path.unlink()


def calls(setup: Setup, kind: str, count: int) -> list[bytes]:
    """``count`` signed calls of ``kind``, each for a different device (or site) among the first 10,000."""
    out = []
    for n in range(count):
        if kind == "get":
            params = {"action": "get", "orgId": setup.org_id, "productKey": setup.product_keys[0],
                      "deviceKey": device_key(n * BASE // count)}
            out.append(signed_request(CREATE_PATH, params, None, setup.token, setup.secret))
            continue
        expr = (f"deviceKey = '{device_key(n * BASE // count)}'" if kind == "search-key"
                else f"deviceTags.site = 'site-{n * (BASE // SITE_SIZE) // count:07d}'")
        body = {"expression": expr, "pagination": {"pageNo": 1, "pageSize": 10}}
        out.append(signed_request(SEARCH_PATH, {"action": "search", "orgId": setup.org_id}, body,
                                  setup.token, setup.secret))
    return out


KINDS = ("get", "search-key", "search-tag")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="./run bench registry-size", description=__doc__.split("\n")[0])
    p.add_argument("--devices", type=int, default=1_000_000, help="the large registry (the small one is 10,000)")
    p.add_argument("--requests", type=int, default=1000, help="timed calls of each kind at each size")
    p.add_argument("--warmup", type=int, default=100, help="untimed calls of each kind sent first")
    p.add_argument("--concurrency", type=int, default=8, help="concurrent keep-alive clients")
    p.add_argument("--no-json", action="store_true", help="do not write bench/results/registry-size-*.json")
    args = p.parse_args(argv)
    per_kind = args.warmup + args.requests
    if args.devices <= BASE or not 0 < per_kind <= BASE // SITE_SIZE:
        p.error(f"--devices must exceed {BASE}; warm-up + requests must be 1..{BASE // SITE_SIZE}")
    print(f"registry-size: get / search p99 at {BASE} and {args.devices} devices, {args.requests} calls "
          f"(+{args.warmup} warm-up) of each kind, concurrency {args.concurrency}; machine {machine()}")
    print(f"busiest processes before: {busy_processes()}")
    results: dict[int, dict[str, Result]] = {}
    with tempfile.TemporaryDirectory(prefix="thingport-registry-") as name:
        tmp = Path(name)
        data_dir = tmp / "thingport"
        operator = secrets.token_urlsafe(16)
        env = {"THINGPORT_OPERATOR_TOKEN": operator, "THINGPORT_LOG_LEVEL": "warning",
               "THINGPORT_PRODUCT_DEVICE_LIMIT": str(args.devices)}
        cli_env = {**os.environ, **env}
        port = free_port()
        argv_ = [sys.executable, "-m", "thingport.cli", "serve", "--data-dir", str(data_dir),
                 "--host", "127.0.0.1", "--http-port", str(port), "--mqtt-port", str(free_port())]
        with server(argv_, port, env, "thingport", tmp / "thingport.log") as (url, proc):
            setup = Setup(url, operator, products=1)
            filled = 0
            for size in (BASE, args.devices):
                fill(tmp, data_dir, cli_env, setup, filled, size)
                filled = size
                setup.token = setup._token()
                results[size] = {kind: measure(port, calls(setup, kind, per_kind), args.warmup, args.concurrency,
                                               240.0, proc.pid) for kind in KINDS}
                for kind, r in results[size].items():
                    s = r.summary()
                    print(f"{size:>9} devices  {kind:<11} {s['ok']:>6} ok {s['failed']:>4} failed  "
                          f"p50 {s['p50_ms']:7.2f} ms  p99 {s['p99_ms']:7.2f} ms")
                    if r.first_failure:
                        print(f"           first failure: {r.first_failure}")
    ratios = {kind: ratio(results[args.devices][kind].percentile(99), results[BASE][kind].percentile(99))
              for kind in KINDS}
    for kind, r in ratios.items():
        print(f"{kind:<11} p99 at {args.devices} / p99 at {BASE}: {r:5.2f}  (goal ≤ 2)")
    print(f"load after the run: {machine()['loadavg']}")
    if not args.no_json:
        path = write_result("registry-size", {
            "devices": args.devices, "base": BASE, "requests": args.requests, "concurrency": args.concurrency,
            "results": {str(size): {k: r.summary() for k, r in rs.items()} for size, rs in results.items()},
            "p99_ratio": ratios})
        print(f"wrote {path.relative_to(ROOT)}")
    failed = sum(r.failed for rs in results.values() for r in rs.values())
    return 1 if failed else 0
