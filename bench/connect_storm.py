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
4. Print logins/s of both and the ratio, the server CPU per login and RSS per connection, and fail
   if a single login was refused, timed out or never answered, on either side: the client retries
   nothing, so a connection the kernel dropped shows as a failure here.
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
    tcp_counters,
    write_result,
)
from thingport.connect import sim


async def _storms(port: int, pid: int, connects: list[bytes], concurrency: int) -> dict[str, Any]:
    """The first storm, the RSS its connections hold, then all again after every device left."""
    out: dict[str, Any] = {}
    before_rss, before_cpu, kernel = rss_kib(pid), cpu_seconds(pid), tcp_counters()
    first = await lean.storm(port, connects, concurrency=concurrency)
    first_cpu, first_kernel = cpu_seconds(pid) - before_cpu, counters_since(kernel)
    await asyncio.sleep(1.0)  # the last batch of online state, then the memory settles
    held = rss_kib(pid) - before_rss
    first.close()
    out["first"] = _summary(first, first_cpu, first_kernel)
    out["kib_per_connection"] = round(held / max(1, first.connected), 2)
    await asyncio.sleep(2.0)  # every device offline again
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


def run_size(n: int, concurrency: int, tmp: Path) -> dict[str, Any]:
    data = tmp / f"thingport-{n}"
    devices = asyncio.run(fleet(data, n))
    logins = [sim.enos_login(d) for d in devices]
    connects = [lean.connect_packet(cid, user, password, keep_alive=300) for cid, user, password in logins]

    http_port, mqtt_port = free_port(), free_port()
    argv = [sys.executable, "-m", "thingport.cli", "serve", "--data-dir", str(data),
            "--http-port", str(http_port), "--mqtt-port", str(mqtt_port)]
    log = tmp / f"thingport-{n}.log"
    with server(argv, http_port, {"THINGPORT_LOG_LEVEL": "warning"}, "thingport", log) as (_, proc):
        ours = run_loop(_storms(mqtt_port, proc.pid, connects, concurrency))
    complaints = [line for line in log.read_text(errors="replace").splitlines() if "MQTT" in line]
    ours["server_log"] = complaints[:20]

    passwd = tmp / f"passwd-{n}"
    passwd.write_text("".join(f"{user}:{password}\n" for _, user, password in logins))
    subprocess.run(["mosquitto_passwd", "-U", str(passwd)], check=True)
    with mosquitto(tmp, f"allow_anonymous false\npassword_file {passwd}\n") as (port, proc_m):
        theirs = run_loop(_storms(port, proc_m.pid, connects, concurrency))
    return {"devices": n, "concurrency": concurrency, "thingport": ours, "mosquitto": theirs,
            "ratio": round(ratio(ours["first"]["logins_per_s"], theirs["first"]["logins_per_s"]), 3),
            "ratio_again": round(ratio(ours["again"]["logins_per_s"], theirs["again"]["logins_per_s"]), 3)}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="./run bench connect-storm", description=__doc__.splitlines()[0])
    p.add_argument("-n", "--devices", type=int, nargs="+", default=[2000, 10000], help="fleet sizes")
    p.add_argument("--concurrency", type=int, default=200, help="logins in flight at once")
    p.add_argument("--no-json", action="store_true", help="do not write bench/results/*.json")
    args = p.parse_args(argv)
    limit = raise_fd_limit()
    if max(args.devices) + 100 > limit:
        p.error(f"{max(args.devices)} devices need more open files than this machine's limit of {limit}")
    print(f"connect storm: {args.devices} devices, {args.concurrency} in flight; machine {machine()}")
    print(f"busiest processes before: {busy_processes()}")
    results = []
    lost = 0
    with tempfile.TemporaryDirectory(prefix="thingport-storm-") as tmp:
        for n in args.devices:
            r = run_size(n, args.concurrency, Path(tmp))
            results.append(r)
            ours, theirs = r["thingport"], r["mosquitto"]
            for storm in ("first", "again"):
                label = f"{n} {'first logins' if storm == 'first' else 'logins again'}"
                print(row(label, ours[storm]["logins_per_s"], theirs[storm]["logins_per_s"], "logins/s")
                      + f"   lost {ours[storm]['lost']}/{theirs[storm]['lost']}, CPU per login "
                        f"{ours[storm]['cpu_ms_per_login']}/{theirs[storm]['cpu_ms_per_login']} ms, p99 "
                        f"{ours[storm]['p99_ms']}/{theirs[storm]['p99_ms']} ms; kernel {ours[storm]['kernel']} / "
                        f"{theirs[storm]['kernel']}")
                lost += ours[storm]["lost"] + theirs[storm]["lost"]
                for side, res in (("thingport", ours[storm]), ("mosquitto", theirs[storm])):
                    if res["lost"]:
                        print(f"  {side} lost logins: refused {res['refused']}, failed {res['failed']}")
            print(row(f"{n} RSS per connection", ours["kib_per_connection"], theirs["kib_per_connection"], "KiB"))
            for line in ours["server_log"]:
                print(f"  thingport log: {line}")
    print(f"[{mosquitto_version()}]; load after the run: {machine()['loadavg']}")
    if not args.no_json:
        path = write_result("connect-storm", {"mosquitto_version": mosquitto_version(), "results": results})
        print(f"wrote {path.relative_to(ROOT)}")
    if lost:
        print(f"FAILED: {lost} logins lost", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
