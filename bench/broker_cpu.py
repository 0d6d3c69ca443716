"""``./run bench broker-cpu``: CPU the broker spends per delivered message, Thingport's broker vs Mosquitto.

Four scenarios, each against both brokers in the same run, driven by the same lean client
(``bench/lean.py``) in this process:

* **fan-in**: ``--publishers`` clients (devices) each publish one message to ``bench/{i}`` at once,
  one subscriber (an application) on ``bench/#`` receives them all; repeated for ``--rounds``.
* **fan-out**: one publisher, ``--subscribers`` clients on ``bench/#``: each message goes to all.

at QoS 0 and at QoS 1 (publishers wait for their PUBACKs, subscribers acknowledge), with 256-byte
payloads. A round ends when every subscriber has its messages, so neither broker is ever
overloaded and the load is the same for both. The broker's CPU time (every thread, from
``/proc/{pid}/task/*/schedstat``) over the measured rounds, divided by the messages delivered, is the
figure; warm-up rounds go first. Thingport's broker is the core of ``connect/mqtt/`` with hooks that
allow everything (as Mosquitto with ``allow_anonymous``), on uvloop as ``thingport serve`` runs it.

    ./run bench broker-cpu
    ./run bench broker-cpu --rounds 2000 --publishers 200 --subscribers 200
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.processes import free_port, stop

from bench import lean
from bench.common import (
    ROOT,
    busy_processes,
    cpu_seconds,
    machine,
    mosquitto,
    mosquitto_version,
    ratio,
    row,
    run_loop,
    wait_port,
    write_result,
)

SCENARIOS = [("fan-in", 0), ("fan-in", 1), ("fan-out", 0), ("fan-out", 1)]
MAX_INFLIGHT = 100  # both brokers: QoS 1 messages in flight per client


async def _serve(port: int) -> None:
    from thingport.connect.mqtt import Broker, BrokerLimits

    broker = Broker(limits=BrokerLimits(max_inflight=MAX_INFLIGHT))
    await broker.start("127.0.0.1", port)
    print("ready", flush=True)
    await asyncio.Event().wait()


@contextmanager
def thingport_broker() -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bench.broker_cpu", "--serve", str(port)], cwd=ROOT)
    try:
        wait_port(port, proc)
        yield port, proc
    finally:
        stop(proc)


async def _measure(port: int, pid: int, kind: str, qos: int, args: argparse.Namespace) -> dict[str, float]:
    fan = await lean.fan(port, publishers=args.publishers if kind == "fan-in" else 1,
                         subscribers=1 if kind == "fan-in" else args.subscribers, qos=qos,
                         payload_size=args.payload)
    try:
        await fan.rounds(args.warmup)
        loop = asyncio.get_running_loop()
        cpu, wall = cpu_seconds(pid), loop.time()
        delivered = await fan.rounds(args.rounds)
        cpu, wall = cpu_seconds(pid) - cpu, loop.time() - wall
    finally:
        fan.close()
    return {"delivered": delivered, "cpu_s": round(cpu, 4), "us_per_message": round(cpu / delivered * 1e6, 3),
            "messages_per_s": round(delivered / wall)}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="./run bench broker-cpu", description=__doc__.splitlines()[0])
    p.add_argument("--publishers", type=int, default=100, help="fan-in: publishers")
    p.add_argument("--subscribers", type=int, default=100, help="fan-out: subscribers")
    p.add_argument("--rounds", type=int, default=1000, help="measured rounds per scenario")
    p.add_argument("--warmup", type=int, default=100, help="rounds before the measurement")
    p.add_argument("--payload", type=int, default=256, help="payload bytes")
    p.add_argument("--only", choices=[f"{k}-qos{q}" for k, q in SCENARIOS], action="append",
                   help="run only this scenario (repeatable)")
    p.add_argument("--no-json", action="store_true")
    p.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        run_loop(_serve(args.serve))
        return 0
    print(f"broker CPU per delivered message, {args.payload}-byte payloads, {args.rounds} rounds "
          f"(+{args.warmup} warm-up); fan-in {args.publishers} publishers -> 1, fan-out 1 -> {args.subscribers}")
    print(f"machine: {machine()}; busiest processes: {busy_processes()}")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="thingport-cpu-") as tmp:
        for kind, qos in SCENARIOS:
            name = f"{kind}-qos{qos}"
            if args.only and name not in args.only:
                continue
            with thingport_broker() as (port, proc):
                ours = run_loop(_measure(port, proc.pid, kind, qos, args))
            with mosquitto(Path(tmp), f"allow_anonymous true\nmax_inflight_messages {MAX_INFLIGHT}\n") as (port, proc):
                theirs = run_loop(_measure(port, proc.pid, kind, qos, args))
            results[name] = {"thingport": ours, "mosquitto": theirs,
                             "ratio": round(ratio(ours["us_per_message"], theirs["us_per_message"]), 3)}
            print(row(name, ours["us_per_message"], theirs["us_per_message"], "µs/msg")
                  + f"   ({ours['messages_per_s']}/{theirs['messages_per_s']} msg/s)")
    print(f"[{mosquitto_version()}]; load after the run: {machine()['loadavg']}")
    if not args.no_json:
        path = write_result("broker-cpu", {"args": vars(args), "mosquitto_version": mosquitto_version(),
                                           "results": results})
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
