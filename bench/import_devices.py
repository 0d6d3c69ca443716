"""``./run bench import``: ``thingport device import`` of N devices with generated secrets, against
bare ``sqlite3`` executemany of the same rows into tables of the same shape, in one run.

1. Write a CSV of ``--devices`` devices (key, name, time zone, one tag), as an operator would bring.
2. Create an organization, model and product in a fresh data directory (SQLite), then time the
   whole command, ``thingport device import --json`` as a subprocess: start-up, reading and
   validating every row, drawing and encrypting each secret (AES-GCM under the master key),
   writing the devices and their labels, the report. The goal (issue 12): 1,000,000 in ≤ 60 s.
3. The reference: the same number of device rows and label rows, built beforehand (secrets as
   plain text, nothing validated), inserted with ``executemany`` in transactions of the same batch
   size into a fresh database made from the same schema (tables, indexes, WAL, synchronous=NORMAL):
   what the rows cost SQLite alone, so the ratio shows what Thingport's own work adds. The
   connection is set up as the command's: WAL, synchronous=NORMAL, foreign keys checked, the
   import's page cache.
4. Print devices/s of both, the ratio and the load average (others share the machine's cores).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine

from bench.common import ROOT, busy_processes, machine, ratio, write_result
from thingport.crypto import ids
from thingport.services.bulk import COMMAND_BATCH as BATCH
from thingport.store.bulk import IMPORT_CACHE_KIB
from thingport.store.schema import metadata

THINGPORT = [sys.executable, "-m", "thingport.cli"]


def write_csv(path: Path, n: int) -> None:
    with path.open("w") as out:
        out.write("deviceKey,name,timezone,tags\n")
        for start in range(0, n, 100_000):
            out.write("".join(f'meter-{i:08d},Meter {i},+08:00,"{{""site"": ""s{i % 100}""}}"\n'
                              for i in range(start, min(n, start + 100_000))))


def cli(data_dir: Path, env: dict[str, str], *args: str) -> Any:
    done = subprocess.run([*THINGPORT, *args, "--data-dir", str(data_dir), "--json"], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"thingport {' '.join(args)}: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def thingport_import(tmp: Path, csv_path: Path, n: int) -> dict[str, Any]:
    data = tmp / "thingport"
    env = {**os.environ, "THINGPORT_PRODUCT_DEVICE_LIMIT": str(max(n, 10_000))}
    cli(data, env, "org", "create", "Bench", "--org-id", "bench")
    cli(data, env, "model", "create", "--org", "bench", "--model-id", "m")
    product = cli(data, env, "product", "create", "--org", "bench", "--name", "Meters")[0]["product_key"]
    started = time.perf_counter()
    report = cli(data, env, "device", "import", "--org", "bench", "--product", product, str(csv_path))
    seconds = time.perf_counter() - started
    if report["created"] != n or report["failed"]:
        raise RuntimeError(f"import created {report['created']} of {n}: {report['errors'][:3]}")
    return {"seconds": seconds, "per_s": n / seconds, "db_bytes": sum(p.stat().st_size for p in data.glob("*.db*"))}


def reference(tmp: Path, n: int) -> dict[str, Any]:
    """The same rows into the same tables, by the bare driver: what SQLite alone takes."""
    path = tmp / "reference.db"
    engine = create_engine(f"sqlite:///{path}")
    metadata.create_all(engine)
    engine.dispose()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=ON")  # as Thingport's connections: every row's references are checked
    db.execute(f"PRAGMA cache_size = -{IMPORT_CACHE_KIB}")  # as the import command's connection
    db.execute("INSERT INTO organizations VALUES ('bench', 'Bench', 0)")
    db.execute("INSERT INTO products (product_key, org_id, name_default, name_i18n, secret_enc, product_type, "
               "data_format, model_id, bidirectional_auth, dynamic_activate_enabled, tags, create_time, update_time, "
               "device_count) VALUES ('pk', 'bench', 'P', '{}', 'x', 'Device', 'Json', 'm', 0, 0, '{}', 0, 0, 0)")
    secret = "v1:abcd1234:" + "A" * 64  # a ciphertext's length: nonce, 20 characters and the tag, in base64
    insert = ("INSERT INTO devices (asset_id, org_id, product_key, device_key, name_default, name_i18n, secret_enc, "
              "description, timezone, attributes, tags, create_time, update_time, enabled, online) "
              "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
    seconds = 0.0
    for start in range(0, n, BATCH):
        # a batch's rows are built outside the clock (and one batch at a time, so memory stays small)
        span = range(start, min(n, start + BATCH))
        asset_ids = ids.alnum_many(len(span), 8)  # random, as Thingport's: where each row lands in the indexes
        devices = [(aid, "bench", "pk", f"meter-{i:08d}", f"Meter {i}", "{}", secret, None, "+08:00", "{}",
                    f'{{"site":"s{i % 100}"}}', 0, 0, 1, 0) for aid, i in zip(asset_ids, span, strict=True)]
        labels = [(aid, f, k, v) for aid, i in zip(asset_ids, span, strict=True)
                  for f, k, v in (("deviceName", "", f"Meter {i}"), ("deviceTags", "site", f"s{i % 100}"))]
        started = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        db.execute("UPDATE products SET device_count = device_count + ? WHERE product_key = 'pk'", (len(span),))
        db.executemany(insert, devices)
        db.executemany('INSERT INTO device_labels (asset_id, field, "key", "value") VALUES (?, ?, ?, ?)', labels)
        db.execute("COMMIT")
        seconds += time.perf_counter() - started
    db.close()
    return {"seconds": seconds, "per_s": n / seconds}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="./run bench import", description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1_000_000, help="devices to import (default 1,000,000)")
    parser.add_argument("--no-json", action="store_true", help="do not write bench/results/import-*.json")
    args = parser.parse_args(argv)
    print(f"import: {args.devices} devices with generated secrets; machine {machine()}")
    print(f"busiest processes before: {busy_processes()}")
    with tempfile.TemporaryDirectory(prefix="thingport-import-") as name:
        tmp = Path(name)
        csv_path = tmp / "devices.csv"
        write_csv(csv_path, args.devices)
        ours = thingport_import(tmp, csv_path, args.devices)
        theirs = reference(tmp, args.devices)
    r = ratio(ours["per_s"], theirs["per_s"])
    print(f"{'devices/s':30} thingport {ours['per_s']:10.0f} ({ours['seconds']:.1f} s, whole command)  "
          f"reference {theirs['per_s']:10.0f} ({theirs['seconds']:.1f} s, bare executemany)  ratio {r:5.2f}")
    print(f"load after the run: {machine()['loadavg']}")
    if not args.no_json:
        path = write_result("import", {"devices": args.devices, "thingport": ours, "reference": theirs, "ratio": r})
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
