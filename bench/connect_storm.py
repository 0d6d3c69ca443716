"""``./run bench connect-storm``: N devices logging in with signed credentials, Thingport vs Mosquitto.

1. Create an organization and N devices in a fresh data directory (in-process, through the services).
2. Start ``thingport serve`` with its embedded broker; log all N in at once (EnOS securemode=2,
   sha256 signatures, ``--concurrency`` logins in flight) with :func:`thingport.connect.sim.storm`;
   read logins/s and the server's RSS growth per connected device while they stay connected.
3. Start a stock Mosquitto with a password file holding the very same user names and passwords
   (hashed by ``mosquitto_passwd -U``) and run the same storm against it.
4. Print both and the ratio thingport/mosquitto; write JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from tests.support.processes import free_port, stop

from bench.__main__ import RESULTS, ROOT, server
from bench.mqtt_broker import _rss_kib
from thingport.app import open_services
from thingport.connect import sim
from thingport.settings import Settings


def _raise_fd_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # children inherit it


async def _fleet(data_dir: Path, n: int) -> list[sim.SimDevice]:
    services = await open_services(Settings(data_dir=data_dir))
    try:
        await services.accounts.create_org("Storm", "o-storm")
        await services.accounts.create_model("o-storm", "storm-model")
        return await sim.create_fleet(services, "o-storm", devices=n)
    finally:
        await services.core.db.close()


async def _measure(port: int, pid: int, fleet: list[sim.SimDevice], concurrency: int,
                   credentials: dict[str, tuple[str, str, str]]) -> dict[str, float]:
    before = _rss_kib(pid)
    result = await sim.storm("127.0.0.1", port, fleet, concurrency=concurrency, credentials=credentials)
    await asyncio.sleep(0.5)  # let the server settle (state writes) before reading its memory
    after = _rss_kib(pid)
    await result.close()
    if result.connected != len(fleet):
        raise RuntimeError(f"only {result.connected} of {len(fleet)} logged in "
                           f"({result.refused} refused, {result.failed} failed)")
    return {"logins": result.connected, "seconds": round(result.seconds, 3),
            "logins_per_s": round(result.logins_per_s, 1),
            "kib_per_device": round((after - before) / len(fleet), 2)}


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 10) -> None:
    import socket

    deadline = time.monotonic() + timeout_s
    while proc.poll() is None and time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("mosquitto did not start")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="./run bench connect-storm", description=__doc__.splitlines()[0])
    p.add_argument("-n", "--devices", type=int, default=2000, help="devices logging in")
    p.add_argument("--concurrency", type=int, default=200, help="logins in flight at once")
    p.add_argument("--no-json", action="store_true", help="do not write bench/results/*.json")
    args = p.parse_args(argv)
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(mosquitto).exists():
        print("mosquitto is not installed (apt-get install mosquitto)", file=sys.stderr)
        return 2
    _raise_fd_limit()
    with tempfile.TemporaryDirectory(prefix="thingport-storm-") as tmp:
        data = Path(tmp) / "thingport"
        fleet = asyncio.run(_fleet(data, args.devices))
        creds = {d.device_key: sim.enos_login(d) for d in fleet}

        http_port, mqtt_port = free_port(), free_port()
        argv_serve = [sys.executable, "-m", "thingport.cli", "serve", "--data-dir", str(data),
                      "--http-port", str(http_port), "--mqtt-port", str(mqtt_port)]
        with server(argv_serve, http_port, {"THINGPORT_LOG_LEVEL": "warning"}, "thingport",
                    Path(tmp) / "thingport.log") as (_, proc):
            ours = asyncio.run(_measure(mqtt_port, proc.pid, fleet, args.concurrency, creds))

        passwd = Path(tmp) / "passwd"
        passwd.write_text("".join(f"{user}:{password}\n" for _, user, password in creds.values()))
        subprocess.run(["mosquitto_passwd", "-U", str(passwd)], check=True)
        port = free_port()
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {passwd}\n"
                        "max_connections -1\npersistence false\nlog_dest none\n"
                        # as root, mosquitto would switch to user "mosquitto", who cannot read tmp
                        + ("user root\n" if os.geteuid() == 0 else ""))
        proc_m = subprocess.Popen([mosquitto, "-c", str(conf)], cwd=ROOT, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            _wait_port(port, proc_m)
            theirs = asyncio.run(_measure(port, proc_m.pid, fleet, args.concurrency, creds))
        finally:
            stop(proc_m, signal.SIGTERM)
    version = subprocess.run([mosquitto, "-h"], capture_output=True, text=True).stdout.splitlines()[0]
    ratio = ours["logins_per_s"] / theirs["logins_per_s"]
    print(f"connect storm: {args.devices} devices, {args.concurrency} in flight, {os.cpu_count()} cores")
    for name, r in (("thingport", ours), ("mosquitto", theirs)):
        print(f"{name:10} {r['logins']:6} logins {r['logins_per_s']:9.1f} logins/s "
              f"{r['kib_per_device']:7.2f} KiB per connected device")
    print(f"ratio thingport/mosquitto: {ratio:.2f} (logins/s)   [{version}]")
    if not args.no_json:
        RESULTS.mkdir(exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        (RESULTS / f"connect-storm-{stamp}.json").write_text(json.dumps(
            {"devices": args.devices, "concurrency": args.concurrency, "thingport": ours, "mosquitto": theirs,
             "ratio": round(ratio, 3), "mosquitto_version": version, "machine": platform.platform()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
