"""HAProxy running ``deploy/haproxy/haproxy.cfg`` itself, its addresses given through the environment."""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.processes import stop
from tests.support.rabbitmq import wait_port

CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "haproxy" / "haproxy.cfg"


def binary() -> str | None:
    """The haproxy executable (Debian installs it in /usr/sbin, often not on a user's PATH)."""
    return shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.access("/usr/sbin/haproxy", os.X_OK) else None)


def check(env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``haproxy -c`` on the deploy configuration."""
    exe = binary()
    if exe is None:
        raise RuntimeError("haproxy is not installed")
    return subprocess.run([exe, "-c", "-f", str(CONFIG)], env={**os.environ, **(env or {})}, capture_output=True,
                          text=True, timeout=30, check=False)


@contextmanager
def running(workdir: Path, env: dict[str, str], wait_for: int) -> Iterator[None]:
    """HAProxy in the foreground with ``env`` (the config's variables), until the block ends;
    returns once ``wait_for`` (one of its ports) accepts connections."""
    exe = binary()
    if exe is None:
        raise RuntimeError("haproxy is not installed")
    log_path = workdir / "haproxy.log"
    with log_path.open("wb") as out:
        proc = subprocess.Popen([exe, "-db", "-f", str(CONFIG)], stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "HAPROXY_LOG": "stdout", "HAPROXY_MAXCONN": "2000", **env})
    try:
        try:
            wait_port(wait_for, timeout_s=10)
        except TimeoutError as exc:
            raise RuntimeError(f"haproxy did not start: {log_path.read_text(errors='replace')[-3000:]}") from exc
        yield
    finally:
        stop(proc)


def server_states(stats_url: str) -> dict[str, str]:
    """``backend/server`` → ``UP``/``DOWN``/… from the stats page's CSV."""
    rows = csv.DictReader(io.StringIO(httpx.get(f"{stats_url}/;csv", timeout=2).text.lstrip("# ")))
    return {f"{r['pxname']}/{r['svname']}": r["status"] for r in rows if r["svname"] not in ("FRONTEND", "BACKEND")}
