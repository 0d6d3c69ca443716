"""Connect storm against our MQTT broker core and against amqtt: connects/s and RSS per connection.

Each broker runs in its own process (so its RSS is its own) with allow-all authentication; this
process opens N raw-socket connections, each sending a CONNECT and waiting for its CONNACK, with a
bounded number in flight, and keeps them open while the broker's RSS is read.

    python bench/mqtt_broker.py -n 2000                       # ours only
    python bench/mqtt_broker.py -n 2000 --amqtt-python /tmp/amqtt-venv/bin/python

amqtt (0.12.1 was measured) is installed for the measurement only, in its own virtualenv when
its pins would disturb ours; it is not a Thingport dependency.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path


def _connect_packet(client_id: str) -> bytes:
    def s(v: bytes) -> bytes:
        return struct.pack("!H", len(v)) + v

    body = s(b"MQTT") + bytes((4, 0x02 | 0x80 | 0x40)) + struct.pack("!H", 60)
    body += s(client_id.encode()) + s(b"bench") + s(b"secret")
    return bytes((0x10, len(body))) + body


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _serve_ours(port: int) -> None:
    from thingport.connect.mqtt import Broker, BrokerLimits

    broker = Broker(limits=BrokerLimits())
    await broker.start("127.0.0.1", port)
    print("ready", flush=True)
    await asyncio.Event().wait()


async def _serve_amqtt(port: int) -> None:
    import logging

    from amqtt.broker import Broker  # type: ignore[import-not-found]

    logging.disable(logging.WARNING)  # amqtt logs each connection at INFO
    config = {  # the leanest setup: no packet/event logging or $SYS plugins, anyone may connect
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}", "max_connections": 0}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    broker = Broker(config)
    await broker.start()
    print("ready", flush=True)
    await asyncio.Event().wait()


async def _storm(port: int, n: int, concurrency: int) -> tuple[float, list[asyncio.StreamWriter]]:
    gate = asyncio.Semaphore(concurrency)
    writers: list[asyncio.StreamWriter] = []

    async def one(i: int) -> None:
        async with gate:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(_connect_packet(f"bench-{i}"))
            ack = await reader.readexactly(4)
            if ack[0] != 0x20 or ack[3] != 0:
                raise RuntimeError(f"connect {i} refused: {ack!r}")
            writers.append(writer)

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return time.perf_counter() - started, writers


def measure(name: str, python: str, n: int, concurrency: int) -> dict[str, float]:
    port = _free_port()
    proc = subprocess.Popen([python, __file__, "--serve", name, "--port", str(port)], stdout=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")})
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"{name} broker did not start")
        time.sleep(0.3)
        idle = _rss_kib(proc.pid)

        async def run() -> tuple[float, int]:
            elapsed, writers = await _storm(port, n, concurrency)
            await asyncio.sleep(0.5)
            rss = _rss_kib(proc.pid)
            for w in writers:
                w.close()
            return elapsed, rss

        elapsed, loaded = asyncio.run(run())
        return {"connects_per_s": n / elapsed, "idle_rss_mib": idle / 1024,
                "rss_per_conn_kib": (loaded - idle) / n}
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        proc.kill()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("-n", type=int, default=2000, help="connections")
    p.add_argument("-c", "--concurrency", type=int, default=100, help="CONNECTs in flight")
    p.add_argument("--amqtt-python", help="a Python with amqtt installed, to measure it too")
    p.add_argument("--serve", choices=["ours", "amqtt"], help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        asyncio.run(_serve_ours(args.port) if args.serve == "ours" else _serve_amqtt(args.port))
        return
    runs = [("ours", sys.executable)] + ([("amqtt", args.amqtt_python)] if args.amqtt_python else [])
    print(f"{'broker':8} {'connects/s':>11} {'idle RSS MiB':>13} {'RSS/conn KiB':>13}   (n={args.n})")
    for name, python in runs:
        r = measure(name, python, args.n, args.concurrency)
        print(f"{name:8} {r['connects_per_s']:11.0f} {r['idle_rss_mib']:13.1f} {r['rss_per_conn_kib']:13.1f}")


if __name__ == "__main__":
    main()
