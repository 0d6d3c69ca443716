"""Every command in README.md and docs/ runs, as a newcomer would paste it.

For each page, a Thingport is started on free ports (``thingport serve`` as a child process, data
in ``./data`` of a temporary directory), and the page's ```` ```sh ```` blocks run in order in one
``bash -e`` shell in that directory, where ``./run`` and ``.venv`` lead to this checkout. The shell
finds the server as a person's would: ``./data`` is its data directory, ``$THINGPORT_URL`` its HTTP
address (the pages default it to http://127.0.0.1:8080) and ``$THINGPORT_MQTT_PORT`` its broker
(the ``mqtt_port`` setting, default 1883); its TLS listener is ``$THINGPORT_MQTT_TLS_PORT`` with the
certificate ``$THINGPORT_MQTT_TLS_CERT`` (for ``localhost``). Nothing binds a default port, so this
runs beside a ``./run serve``.

Fence languages: ``sh`` runs; ``console`` is shell a person runs that this test does not (it runs
for ever, needs another machine or service, or takes minutes; the page says why); ``text`` is
output; ``toml``, ``json``, ``python``, ``sql``, ``hocon`` are what they say. A fence without a
language is refused, and a page with blocks but no ``sh`` block says so with
``<!-- docs-test: no runnable blocks: <why> -->``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.processes import free_port
from tests.support.tls import self_signed
from thingport.testing.server import start_server

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
RUN, NOT_RUN = "sh", {"console", "text", "toml", "json", "python", "sql", "hocon"}
NO_BLOCKS = "<!-- docs-test: no runnable blocks:"
FENCE = re.compile(r"^( *)```(\S*)[^\n]*\n(.*?)^\1```[ \t]*$", re.M | re.S)
PAGE_TIMEOUT_S = 150


def blocks(page: Path) -> list[tuple[str, int, str]]:
    """(language, line, code) of every fenced block."""
    text = page.read_text()
    return [(m.group(2), text.count("\n", 0, m.start()) + 1,
             "\n".join(line[len(m.group(1)):] for line in m.group(3).splitlines()))
            for m in FENCE.finditer(text)]


def script(page: Path) -> str:
    parts = ["set -eo pipefail"]
    for lang, line, code in blocks(page):
        if lang == RUN:
            parts.append(f"echo '>>> {page.relative_to(ROOT)}:{line}' >&2\n{code}")
    return "\n".join(parts) + "\n"


def rel(page: Path) -> str:
    return str(page.relative_to(ROOT))


def test_every_page_labels_its_blocks() -> None:
    wrong = []
    for page in PAGES:
        found = blocks(page)
        for lang, line, _ in found:
            if lang != RUN and lang not in NOT_RUN:
                wrong.append(f"{rel(page)}:{line}: fence language {lang or '(none)'!r}; use sh (run by "
                             f"tests/docs) or one of {', '.join(sorted(NOT_RUN))}")
        if found and not any(lang == RUN for lang, _, _ in found) and NO_BLOCKS not in page.read_text():
            wrong.append(f"{rel(page)}: no sh block; say why with {NO_BLOCKS} <why> -->")
    assert not wrong, "\n".join(wrong)


def test_the_pages_that_should_run_something_do() -> None:
    runnable = {rel(p) for p in PAGES if any(lang == RUN for lang, _, _ in blocks(p))}
    assert {"README.md", "docs/quickstart.md", "docs/mqtt.md", "docs/walkthrough-oceanconnect.md",
            "docs/walkthrough-living.md", "docs/testing.md"} <= runnable


@pytest.mark.parametrize("page", [p for p in PAGES if any(lang == RUN for lang, _, _ in blocks(p))], ids=rel)
def test_page(page: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "run").symlink_to(ROOT / "run")
    (work / ".venv").symlink_to(Path(sys.executable).parent.parent)
    (work / "examples").symlink_to(ROOT / "examples")
    # the TLS listener, as docs/certificates.md has a person start it (a certificate for localhost)
    tls = work / "tls"
    tls.mkdir()
    cert, key = self_signed(tls)
    tls_port = free_port()
    # operator_token "": the server writes data/operator.token, as a person's first start does
    with start_server(work, settings={"operator_token": "", "mqtt_tls_cert": str(cert), "mqtt_tls_key": str(key),
                                      "mqtt_tls_port": tls_port}) as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("THINGPORT_", "PYTEST_"))}
        env.update(THINGPORT_URL=server.url, THINGPORT_MQTT_PORT=str(server.mqtt_port), COLUMNS="80",
                   THINGPORT_MQTT_TLS_PORT=str(tls_port), THINGPORT_MQTT_TLS_CERT=str(cert))
        started = time.monotonic()
        try:
            done = subprocess.run(["bash", "-c", script(page)], cwd=work, env=env, capture_output=True,
                                  text=True, timeout=PAGE_TIMEOUT_S, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"{rel(page)} ran over {PAGE_TIMEOUT_S} s; output:\n{exc.stdout}\n{exc.stderr}")
        took = time.monotonic() - started
    output = done.stdout + done.stderr
    last = ([line for line in done.stderr.splitlines() if line.startswith(">>> ")] or ["(before any block)"])[-1]
    assert done.returncode == 0, f"{rel(page)}: the block at {last[4:]} failed:\n{output[-6000:]}"
    assert "Traceback (most recent call last)" not in output, f"{rel(page)} printed a traceback:\n{output[-6000:]}"
    print(f"{rel(page)}: {sum(lang == RUN for lang, _, _ in blocks(page))} blocks in {took:.1f} s")
