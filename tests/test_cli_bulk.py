"""``thingport device import`` and ``device export`` (cli.py), driven in-process; in a file of their own."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_cli import data_dir, rsa_key, run, run_json  # noqa: F401  (fixtures)
from thingport.crypto import caller_secret


def setup(d: str) -> str:
    run("org", "create", "Acme", "--org-id", "acme", "--data-dir", d)
    run("model", "create", "--org", "acme", "--model-id", "m", "--data-dir", d)
    return str(run_json("product", "create", "--org", "acme", "--name", "Meters", "--data-dir", d)[0]["product_key"])


def test_import_reports_and_reruns(data_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    d = str(data_dir)
    pk = setup(d)
    f = tmp_path / "fleet.csv"
    f.write_text("deviceKey,name,tags\ncli-0001,One,\"{\"\"site\"\": \"\"n\"\"}\"\nbad key,Two,\ncli-0003,,\n")
    first = run("device", "import", "--org", "acme", "--product", pk, str(f), "--data-dir", d, ok=False)
    assert first.exit_code == 1  # a failed row: scripts can tell
    assert "created 2, existing 0, failed 1" in first.stdout and "line 3: deviceKey:" in first.stdout
    again = run("device", "import", "--org", "acme", "--product", pk, str(f), "--data-dir", d, "--json", ok=False)
    report = json.loads(again.stdout)
    assert (report["created"], report["existing"], report["failed"]) == (0, 2, 1)
    assert report["errors"][0]["line"] == 3 and report["errors"][0]["field"] == "deviceKey"
    listed = run_json("device", "list", "--org", "acme", 'deviceTags.site = "n"', "--data-dir", d)
    assert [x["device_key"] for x in listed] == ["cli-0001"]


def test_import_refusals(data_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    d = str(data_dir)
    pk = setup(d)
    f = tmp_path / "fleet.txt"
    f.write_text("deviceKey\nk-0001\n")
    r = run("device", "import", "--org", "acme", "--product", pk, str(f), "--data-dir", d, ok=False)
    assert r.exit_code == 2 and "neither CSV" in r.stderr
    r = run("device", "import", "--org", "acme", "--product", pk, str(f), "--format", "csv", "--data-dir", d)
    assert "created 1" in r.stdout
    r = run("device", "import", "--org", "acme", "--product", "nosuch", str(f), "--format", "csv", "--data-dir", d,
            ok=False)
    assert r.exit_code != 0 and "nosuch" in r.stderr


def test_export_with_secrets_round_trips(data_dir: Path, tmp_path: Path, rsa_key: tuple[Path, Path]  # noqa: F811
                                         ) -> None:
    private, public = rsa_key
    d = str(data_dir)
    pk = setup(d)
    f = tmp_path / "fleet.jsonl"
    f.write_text(json.dumps({"deviceKey": "exp-0001", "secret": "Brought-Secret-1"}) + "\n"
                 + json.dumps({"deviceKey": "exp-0002", "nameI18n": {"fr_FR": "deux"}}) + "\n")
    run("device", "import", "--org", "acme", "--product", pk, str(f), "--data-dir", d)
    plain = run("device", "export", "--org", "acme", "--data-dir", d).stdout
    assert "secret" not in plain and [json.loads(x)["deviceKey"] for x in plain.splitlines()] == ["exp-0001",
                                                                                                   "exp-0002"]
    r = run("device", "export", "--org", "acme", "--with-secrets", "--data-dir", d, ok=False)
    assert r.exit_code == 2 and "--public-key" in r.stderr
    out = tmp_path / "out.csv"
    run("device", "export", "--org", "acme", "--product", pk, "--format", "csv", "--with-secrets", "--public-key",
        str(public), "-o", str(out), "--data-dir", d)
    text = out.read_text()
    assert "Brought-Secret-1" not in text and text.startswith("assetId,productKey,deviceKey")
    first = json.loads(run("device", "export", "--org", "acme", "--with-secrets", "--public-key", str(public),
                           "--data-dir", d).stdout.splitlines()[0])
    assert caller_secret.decrypt(private.read_text(), first["secret"], first["sessionKey"]) == "Brought-Secret-1"
    pk2 = str(run_json("product", "create", "--org", "acme", "--name", "Copy", "--data-dir", d)[0]["product_key"])
    r = run("device", "import", "--org", "acme", "--product", pk2, str(out), "--private-key", str(private),
            "--data-dir", d, "--json")
    assert json.loads(r.stdout)["created"] == 2
    shown = run("device", "get", "--org", "acme", f"{pk2}/exp-0001", "--show-secret", "--data-dir", d).stdout
    assert "device secret: Brought-Secret-1" in shown
