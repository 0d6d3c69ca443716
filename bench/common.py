"""What every benchmark scenario shares: paths, servers as subprocesses, Mosquitto, /proc readings, results.

The scenarios import this module and never each other or ``bench/__main__.py``, which only
registers them, so the package has no import cycle.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.support.processes import free_port, stop, wait_for_health

from thingport.app import open_services
from thingport.connect import sim
from thingport.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


@contextmanager
def server(argv: list[str], port: int, env: dict[str, str], name: str, log: Path
           ) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run a server subprocess until the block ends; yields its base URL and process once /health answers."""
    url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
        try:
            try:
                wait_for_health(url, lambda: proc.poll() is None, what=name, timeout_s=300)
            except (RuntimeError, TimeoutError) as exc:
                raise RuntimeError(f"{exc}:\n{log.read_text()[-2000:]}") from exc
            yield url, proc
        finally:
            stop(proc, signal.SIGINT, timeout_s=60)


def run_loop(coro: Any) -> Any:
    """Run a coroutine on uvloop, as ``thingport serve`` runs (plain asyncio where it is missing)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


async def fleet(data_dir: Path, n: int) -> list[sim.SimDevice]:
    """An organization and ``n`` devices in a fresh data directory (in-process, through the services; one
    product, so its device limit is lifted for the creation)."""
    services = await open_services(Settings(data_dir=data_dir, product_device_limit=max(n, 10_000)))
    try:
        await services.accounts.create_org("Bench", "o-bench")
        await services.accounts.create_model("o-bench", "bench-model")
        return await sim.create_fleet(services, "o-bench", devices=n)
    finally:
        await services.core.db.close()


# --- Mosquitto, the reference ------------------------------------------------------------------

def mosquitto_binary() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None


def mosquitto_version() -> str:
    exe = mosquitto_binary()
    if exe is None:
        return "mosquitto (not installed)"
    return subprocess.run([exe, "-h"], capture_output=True, text=True).stdout.splitlines()[0]


@contextmanager
def mosquitto(workdir: Path, config: str) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """A stock Mosquitto on a free loopback port with ``config`` lines added; yields port and process."""
    exe = mosquitto_binary()
    if exe is None:
        raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nmax_connections -1\npersistence false\nlog_dest none\n{config}"
                    # as root, mosquitto would switch to user "mosquitto", who cannot read the work dir
                    + ("user root\n" if os.geteuid() == 0 else ""))
    proc = subprocess.Popen([exe, "-c", str(conf)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc)
        yield port, proc
    finally:
        stop(proc, signal.SIGTERM)


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while proc.poll() is None and time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


# --- the machine and its processes ------------------------------------------------------------

def raise_fd_limit() -> int:
    """Raise this process's (and its children's) open-file limit to the hard limit; returns it."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    """CPU time of every thread of ``pid`` so far, from the scheduler's nanosecond counters."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # a thread that just ended
    return total / 1e9


def tcp_counters() -> dict[str, int]:
    """The kernel's counters of connection attempts it dropped (system-wide: ``/proc/net/netstat``).

    ``ListenOverflows``/``ListenDrops``: a listener's accept queue was full; ``TCPSynRetrans``: a SYN
    had to be sent again (a dropped attempt, seen from the client). Read before and after a storm.
    """
    lines = [line.split() for line in Path("/proc/net/netstat").read_text().splitlines() if line.startswith("TcpExt:")]
    values = dict(zip(lines[0][1:], map(int, lines[1][1:]), strict=True))
    return {k: values.get(k, 0) for k in ("ListenOverflows", "ListenDrops", "TCPSynRetrans")}


def counters_since(before: dict[str, int]) -> dict[str, int]:
    now = tcp_counters()
    return {k: now[k] - before[k] for k in before}


async def settled(pid: int, *, idle: float = 0.05, step_s: float = 0.3, most_s: float = 15.0) -> float:
    """Wait until ``pid`` uses less than ``idle`` of a core (it has done what the last step left it);
    returns how long that took."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while loop.time() - started < most_s:
        before = cpu_seconds(pid)
        await asyncio.sleep(step_s)
        if cpu_seconds(pid) - before < idle * step_s:
            break
    return loop.time() - started


def machine() -> dict[str, Any]:
    """What the results depend on: cores, Python, platform, and the load others put on the machine."""
    return {"cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "loadavg": os.getloadavg()}


def busy_processes(limit: int = 5) -> list[str]:
    """The processes using the most CPU right now (``ps``), to say what else ran during a measurement."""
    out = subprocess.run(["ps", "-eo", "pcpu,comm", "--sort=-pcpu", "--no-headers"], capture_output=True,
                         text=True).stdout.splitlines()
    return [" ".join(line.split()) for line in out[:limit]]


def quiet_enough(max_load: float) -> bool:
    """Whether the 1-minute load average is at most ``max_load`` (others' test runs share the cores)."""
    return os.getloadavg()[0] <= max_load


def write_result(scenario: str, doc: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{scenario}-{stamp}.json"
    path.write_text(json.dumps({"scenario": scenario, "time": stamp, "machine": machine(), **doc}, indent=2) + "\n")
    return path


def ratio(ours: float, theirs: float) -> float:
    """Thingport / the reference of the same run (logins/s: higher is better; KiB, CPU: lower)."""
    return ours / theirs if theirs else float("nan")


def row(name: str, ours: float, theirs: float, unit: str) -> str:
    """One line of a scenario's table: Thingport, the reference of the same run, the ratio."""
    return (f"{name:30} thingport {ours:10.2f} {unit:10}  mosquitto {theirs:10.2f} {unit:10}  "
            f"ratio {ratio(ours, theirs):5.2f}")
