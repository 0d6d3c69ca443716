"""``./run bench connect-storm``: N devices logging in at once with signed credentials, Thingport vs Mosquitto.

For each fleet size (``-n``, 2,000 and 10,000 by default):

1. Create an organization and N devices in a fresh data directory (in-process, through the services),
   and every device's EnOS static login (securemode=2, sha256 signature).
2. Start ``thingport serve`` (SQLite, embedded broker) and log all N in at once, ``--concurrency``
   logins in flight, with the lean client of ``bench/lean.py``: each connection sends its CONNECT,
   waits for CONNACK and stays open. These are the devices' first logins, so each activates its
   device, which is written before its CONNACK. Then every device disconnects and all log in again
   (a restarted node's fleet coming back: no activation).
3. Start a stock Mosquitto with a password file holding the very same user names and passwords
   (hashed by ``mosquitto_passwd -U``) and run the same storms against it.
4. Repeat for ``--rounds`` (each Thingport round restarts it with every device never activated again)
   and print the medians of logins/s and the ratio, the server CPU per login, RSS per connection,
   the kernel's dropped connection attempts, and fail if a single login was refused, timed out or
   never answered, on either side: the client retries nothing. (A connection attempt the kernel
   drops is retried by TCP itself after a second: it shows as latency and in the kernel counters.)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import update
from tests.support.processes import free_port

from bench import lean
from bench.common import (
    ROOT,
    busy_processes,
    counters_since,
    cpu_seconds,
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
    settled,
    tcp_counters,
    write_result,
)
from thingport.app import open_services
from thingport.connect import sim
from thingport.settings import Settings
from thingport.store.schema import devices as devices_table


async def _storms(port: int, pid: int, connects: list[bytes], concurrency: int) -> dict[str, Any]:
    """The first storm, the RSS its connections hold, then all again after every device left."""
    out: dict[str, Any] = {}
    await settled(pid)
    before_rss, before_cpu, kernel = rss_kib(pid), cpu_seconds(pid), tcp_counters()
    first = await lean.storm(port, connects, concurrency=concurrency)
    first_cpu, first_kernel = cpu_seconds(pid) - before_cpu, counters_since(kernel)
    await settled(pid)  # the last batch of online state, then the memory settles
    held = rss_kib(pid) - before_rss
    first.close()
    out["first"] = _summary(first, first_cpu, first_kernel)
    out["kib_per_connection"] = round(held / max(1, first.connected), 2)
    await asyncio.sleep(0.5)
    await settled(pid)  # every device offline again, written
    before_cpu, kernel = cpu_seconds(pid), tcp_counters()
    again = await lean.storm(port, connects, concurrency=concurrency)
    out["again"] = _summary(again, cpu_seconds(pid) - before_cpu, counters_since(kernel))
    again.close()
    return out


def _summary(s: lean.Storm, cpu: float, kernel: dict[str, int]) -> dict[str, Any]:
    return {"logins": s.connected, "lost": s.lost, "refused": s.refused, "failed": s.failed, "kernel": kernel,
            "seconds": round(s.seconds, 3), "logins_per_s": round(s.per_second, 1),
            "cpu_ms_per_login": round(cpu / max(1, s.connected) * 1000, 3),
            "p50_ms": round(s.percentile(0.5), 2), "p99_ms": round(s.percentile(0.99), 2),
            "max_ms": round(s.percentile(1.0), 1)}


async def _reset(data_dir: Path) -> None:
    """Every device never activated and offline again, for the next round's first logins."""
    services = await open_services(Settings(data_dir=data_dir))
    try:
        async with services.core.write() as tx:
            await tx.conn.execute(update(devices_table).values(active_time=None, online=False))
    finally:
        await services.core.db.close()


def _round(n: int, concurrency: int, tmp: Path, connects: list[bytes], passwd: Path) -> dict[str, Any]:
    """One round: Thingport freshly started (its devices never activated), then a fresh Mosquitto."""
    data = tmp / f"thingport-{n}"
    asyncio.run(_reset(data))
    http_port, mqtt_port = free_port(), free_port()
    argv = [sys.executable, "-m", "thingport.cli", "serve", "--data-dir", str(data),
            "--http-port", str(http_port), "--mqtt-port", str(mqtt_port)]
    log = tmp / f"thingport-{n}.log"
    with server(argv, http_port, {"THINGPORT_LOG_LEVEL": "warning"}, "thingport", log) as (_, proc):
        ours = run_loop(_storms(mqtt_port, proc.pid, connects, concurrency))
    ours["server_log"] = [line for line in log.read_text(errors="replace").splitlines() if "MQTT" in line][:20]
    with mosquitto(tmp, f"allow_anonymous false\npassword_file {passwd}\n") as (port, proc_m):
        theirs = run_loop(_storms(port, proc_m.pid, connects, concurrency))
    return {"thingport": ours, "mosquitto": theirs,
            "ratio": round(ratio(ours["first"]["logins_per_s"], theirs["first"]["logins_per_s"]), 3),
            "ratio_again": round(ratio(ours["again"]["logins_per_s"], theirs["again"]["logins_per_s"]), 3)}


def run_size(n: int, concurrency: int, rounds: int, tmp: Path) -> dict[str, Any]:
    devices = asyncio.run(fleet(tmp / f"thingport-{n}", n))
    logins = [sim.enos_login(d) for d in devices]
    connects = [lean.connect_packet(cid, user, password, keep_alive=300) for cid, user, password in logins]
    passwd = tmp / f"passwd-{n}"
    passwd.write_text("".join(f"{user}:{password}\n" for _, user, password in logins))
    subprocess.run(["mosquitto_passwd", "-U", str(passwd)], check=True)
    done = [_round(n, concurrency, tmp, connects, passwd) for _ in range(rounds)]
    return {"devices": n, "concurrency": concurrency, "rounds": done,
            "ratio": statistics.median(r["ratio"] for r in done),
            "ratio_again": statistics.median(r["ratio_again"] for r in done)}


def _median(rounds: list[dict[str, Any]], side: str, storm: str, key: str) -> float:
    return float(statistics.median(r[side][storm][key] for r in rounds))


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="./run bench connect-storm", description=__doc__.splitlines()[0])
    p.add_argument("-n", "--devices", type=int, nargs="+", default=[2000, 10000], help="fleet sizes")
    p.add_argument("--concurrency", type=int, default=200, help="logins in flight at once")
    p.add_argument("--rounds", type=int, default=3, help="rounds per size; medians are shown")
    p.add_argument("--no-json", action="store_true", help="do not write bench/results/*.json")
    args = p.parse_args(argv)
    limit = raise_fd_limit()
    if max(args.devices) + 100 > limit:
        p.error(f"{max(args.devices)} devices need more open files than this machine's limit of {limit}")
    print(f"connect storm: {args.devices} devices, {args.concurrency} in flight, {args.rounds} rounds; "
          f"machine {machine()}")
    print(f"busiest processes before: {busy_processes()}")
    results = []
    lost = 0
    with tempfile.TemporaryDirectory(prefix="thingport-storm-") as tmp:
        for n in args.devices:
            r = run_size(n, args.concurrency, args.rounds, Path(tmp))
            results.append(r)
            rounds = r["rounds"]
            for storm in ("first", "again"):
                label = f"{n} {'first logins' if storm == 'first' else 'logins again'}"
                ours = _median(rounds, "thingport", storm, "logins_per_s")
                theirs = _median(rounds, "mosquitto", storm, "logins_per_s")
                ratios = [x["ratio" if storm == "first" else "ratio_again"] for x in rounds]
                print(row(label, ours, theirs, "logins/s") + f"   (medians; ratio per round {ratios}) CPU per login "
                      f"{_median(rounds, 'thingport', storm, 'cpu_ms_per_login')}/"
                      f"{_median(rounds, 'mosquitto', storm, 'cpu_ms_per_login')} ms, p99 "
                      f"{_median(rounds, 'thingport', storm, 'p99_ms')}/"
                      f"{_median(rounds, 'mosquitto', storm, 'p99_ms')} ms")
                for x in rounds:
                    for side in ("thingport", "mosquitto"):
                        res = x[side][storm]
                        lost += res["lost"]
                        if res["lost"]:
                            print(f"  {side} lost logins: refused {res['refused']}, failed {res['failed']}")
                        if any(res["kernel"].values()):
                            print(f"  {side} kernel: {res['kernel']}")
            print(row(f"{n} RSS per connection", _kib(rounds, "thingport"), _kib(rounds, "mosquitto"), "KiB"))
            for line in rounds[-1]["thingport"]["server_log"]:
                print(f"  thingport log: {line}")
    print(f"[{mosquitto_version()}]; load after the run: {machine()['loadavg']}")
    if not args.no_json:
        path = write_result("connect-storm", {"mosquitto_version": mosquitto_version(), "results": results})
        print(f"wrote {path.relative_to(ROOT)}")
    if lost:
        print(f"FAILED: {lost} logins lost", file=sys.stderr)
        return 1
    return 0


def _kib(rounds: list[dict[str, Any]], side: str) -> float:
    return float(statistics.median(r[side]["kib_per_connection"] for r in rounds))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
