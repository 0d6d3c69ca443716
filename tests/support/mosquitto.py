"""A stock Mosquitto on a free loopback port, with its own generated configuration file."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.processes import free_port, stop


def binary() -> str | None:
    """The mosquitto executable (Debian installs it in /usr/sbin, often not on a user's PATH)."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None


@contextmanager
def running(workdir: Path, *, port: int | None = None, extra_config: str = "",
            timeout_s: float = 10.0) -> Iterator[int]:
    """Start Mosquitto (anonymous clients allowed, no persistence) and yield its port."""
    exe = binary()
    if exe is None:
        raise RuntimeError("mosquitto is not installed")
    port = port or free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    f"log_dest stderr\n{extra_config}")
    log = (workdir / "mosquitto.log").open("wb")
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {(workdir / 'mosquitto.log').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError("mosquitto did not open its port") from None
                time.sleep(0.05)
        yield port
    finally:
        stop(proc)
        log.close()
