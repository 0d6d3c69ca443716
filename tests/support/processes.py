"""Starting and stopping real servers on loopback, shared by the tests and the benchmarks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_health(url: str, alive: Callable[[], bool], *, what: str = "the server",
                    timeout_s: float = 30.0) -> httpx.Response:
    """Poll ``url/health`` until it answers 200; fail early if ``alive()`` turns false."""
    deadline = time.monotonic() + timeout_s
    while True:
        if not alive():
            raise RuntimeError(f"{what} stopped during start-up")
        try:
            r = httpx.get(f"{url}/health", timeout=1.0)
            if r.status_code == 200:
                return r
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not answer /health within {timeout_s:g} s")
        time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> None:
    """Ask a server process to stop; kill it if it has not within ``timeout_s``."""
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def serve_argv(data_dir: Path, http_port: int, mqtt_port: int | None = None) -> list[str]:
    """``thingport serve`` on free ports only: tests never take a default port a user's server may hold."""
    exe = Path(sys.executable).with_name("thingport")
    return [str(exe), "serve", "--data-dir", str(data_dir), "--http-port", str(http_port),
            "--mqtt-port", str(mqtt_port if mqtt_port is not None else free_port())]


def start_thingport(data_dir: Path, port: int, env: dict[str, str] | None = None,
                    mqtt_port: int | None = None) -> subprocess.Popen[bytes]:
    """``thingport serve`` as a real process on ``port`` (and ``mqtt_port``, else a free one),
    returned once it answers /health.

    Its output goes to ``serve.log`` beside the data directory, and is shown when it fails to start.
    """
    log_path = data_dir.parent / f"serve-{port}.log"
    with log_path.open("ab") as out:
        proc = subprocess.Popen(serve_argv(data_dir, port, mqtt_port), stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})})
    try:
        wait_for_health(f"http://127.0.0.1:{port}", lambda: proc.poll() is None, what="thingport serve")
    except (RuntimeError, TimeoutError) as exc:
        proc.kill()
        proc.wait()
        tail = log_path.read_text(errors="replace")[-4000:]
        raise RuntimeError(f"{exc}; its output:\n{tail}") from exc
    return proc
