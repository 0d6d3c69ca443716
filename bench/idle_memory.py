"""``./run bench idle-memory``: RSS per idle connected device, Thingport vs Mosquitto, and 100,000 extrapolated.

For each fleet size (10,000 and the largest the machine's open-file limit allows, by default):

1. Create N devices in a fresh data directory and start ``thingport serve`` (SQLite, embedded
   broker); its RSS once it is up (every device's login credentials in memory) is the baseline.
2. Log all N in with their EnOS credentials (``bench/lean.py``: each connection sends its CONNECT and
   keeps the socket, keep-alive 300 s) and read the server's RSS once they are idle. The difference
   divided by N is the KiB per idle connection; the total is what N devices cost the node.
3. The same against a stock Mosquitto with a password file of the same users.

A node cannot hold more connections than its open-file limit; one client address cannot make more
than the ephemeral ports (about 28,000) to one port, so beyond that the client binds 127.0.0.x
source addresses in turn. Where the limit forbids 100,000, the total RSS at 100,000 is extrapolated
linearly from the two measured sizes (per device: its credentials, its connection, its session),
and the output says so.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.support.processes import free_port

from bench import lean
from bench.common import (
    ROOT,
    busy_processes,
    fleet,
    machine,
    mosquitto,
    mosquitto_version,
    raise_fd_limit,
    ratio,
    row,
    rss_kib,
    run_loop,
    server,
    write_result,
)
from thingport.connect import sim

TARGET = 100_000
#: Open files the server needs besides its clients (listeners, database, logs …).
SPARE_FILES = 200
PORTS_PER_SOURCE = 25_000


async def _hold(port: int, pid: int, connects: list[bytes]) -> dict[str, Any]:
    before = rss_kib(pid)
    storm = await lean.storm(port, connects, concurrency=200, sources=1 + len(connects) // PORTS_PER_SOURCE)
    try:
        await asyncio.sleep(3.0)  # the last batch of online state, then the memory settles
        after = rss_kib(pid)
    finally:
        storm.close()
    if storm.lost:
        raise RuntimeError(f"{storm.lost} logins lost: refused {storm.refused}, failed {storm.failed}")
    return {"connections": storm.connected, "rss_before_kib": before, "rss_kib": after,
            "kib_per_connection": round((after - before) / storm.connected, 3)}


def measure(n: int, tmp: Path) -> dict[str, Any]:
    data = tmp / f"thingport-{n}"
    devices = asyncio.run(fleet(data, n))
    logins = [sim.enos_login(d) for d in devices]
    connects = [lean.connect_packet(cid, user, password, keep_alive=300) for cid, user, password in logins]
    http_port, mqtt_port = free_port(), free_port()
    argv = [sys.executable, "-m", "thingport.cli", "serve", "--data-dir", str(data),
            "--http-port", str(http_port), "--mqtt-port", str(mqtt_port)]
    with server(argv, http_port, {"THINGPORT_LOG_LEVEL": "warning"}, "thingport", tmp / f"thingport-{n}.log") as (
            _, proc):
        ours = run_loop(_hold(mqtt_port, proc.pid, connects))
    passwd = tmp / f"passwd-{n}"
    passwd.write_text("".join(f"{user}:{password}\n" for _, user, password in logins))
    subprocess.run(["mosquitto_passwd", "-U", str(passwd)], check=True)
    with mosquitto(tmp, f"allow_anonymous false\npassword_file {passwd}\n") as (port, proc_m):
        theirs = run_loop(_hold(port, proc_m.pid, connects))
    return {"devices": n, "thingport": ours, "mosquitto": theirs,
            "ratio": round(ratio(ours["kib_per_connection"], theirs["kib_per_connection"]), 3)}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="./run bench idle-memory", description=__doc__.splitlines()[0])
    p.add_argument("-n", "--devices", type=int, nargs="+", help="fleet sizes (default: 10,000 and the most "
                                                                    "this machine's open-file limit allows)")
    p.add_argument("--no-json", action="store_true", help="do not write bench/results/*.json")
    args = p.parse_args(argv)
    limit = raise_fd_limit()
    largest = min(TARGET, limit - SPARE_FILES)
    sizes = args.devices or sorted({10_000, largest})
    if max(sizes) > largest:
        p.error(f"{max(sizes)} devices need more open files than this machine's limit of {limit}")
    print(f"idle memory: {sizes} devices; open-file limit {limit}; machine {machine()}")
    print(f"busiest processes before: {busy_processes()}")
    results = []
    with tempfile.TemporaryDirectory(prefix="thingport-idle-") as tmp:
        for n in sizes:
            r = measure(n, Path(tmp))
            results.append(r)
            ours, theirs = r["thingport"], r["mosquitto"]
            print(row(f"{n} idle: KiB per connection", ours["kib_per_connection"], theirs["kib_per_connection"],
                      "KiB") + f"   total RSS {ours['rss_kib'] / 1024:.0f} / {theirs['rss_kib'] / 1024:.0f} MiB")
    doc: dict[str, Any] = {"open_file_limit": limit, "results": results, "mosquitto_version": mosquitto_version()}
    if max(sizes) >= TARGET:
        at_target = next(r for r in results if r["devices"] >= TARGET)["thingport"]["rss_kib"] / 1024
        print(f"{TARGET} idle devices: {at_target:.0f} MiB RSS, measured")
        doc["rss_mib_at_100k"] = {"value": round(at_target), "measured": True}
    elif len(results) >= 2:
        low, high = results[0], results[-1]
        slope = (high["thingport"]["rss_kib"] - low["thingport"]["rss_kib"]) / (high["devices"] - low["devices"])
        at_target = (high["thingport"]["rss_kib"] + slope * (TARGET - high["devices"])) / 1024
        print(f"{TARGET} idle devices: {at_target:.0f} MiB RSS, extrapolated from {low['devices']} and "
              f"{high['devices']} ({slope:.2f} KiB per device, credentials and connection); the open-file "
              f"limit ({limit}) forbids measuring it")
        doc["rss_mib_at_100k"] = {"value": round(at_target), "measured": False,
                                  "kib_per_device": round(slope, 3)}
    print(f"[{mosquitto_version()}]; load after the run: {machine()['loadavg']}")
    if not args.no_json:
        path = write_result("idle-memory", doc)
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
