"""The data directory and its files are owner-only whatever the umask, and one others can write is refused."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import serve_argv
from thingport import datadir
from thingport.app import ensure_initialised
from thingport.settings import Settings
from thingport.store.db import Database


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The loosest umask: nothing Thingport creates may rely on the process's."""
    old = os.umask(0)
    yield
    os.umask(old)


@pytest.mark.usefixtures("open_umask")
async def test_every_file_is_created_owner_only_in_an_owner_only_directory(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    ensure_initialised(settings)
    db = Database(settings.db_url)
    await db.migrate()
    async with db.write() as conn:  # the WAL and shared-memory files exist while the database is open
        await conn.exec_driver_sql("CREATE TABLE probe (x INTEGER)")
    files = sorted(p.name for p in settings.data_dir.iterdir())
    assert {"master.key", "operator.token", "thingport.db", "thingport.db-wal", "thingport.db-shm"} <= set(files)
    assert {name: mode(settings.data_dir / name) for name in files} == dict.fromkeys(files, 0o600)
    assert mode(settings.data_dir) == 0o700
    await db.close()


def test_files_an_older_version_left_readable_are_made_owner_only(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    ensure_initialised(settings)
    for name in ("master.key", "operator.token"):
        os.chmod(settings.data_dir / name, 0o644)
    (settings.data_dir / "thingport.db-wal").touch(mode=0o644)
    os.chmod(settings.data_dir / "thingport.db-wal", 0o664)
    ensure_initialised(settings)
    assert {mode(p) for p in settings.data_dir.iterdir()} == {0o600}


@pytest.mark.parametrize("unsafe", [0o770, 0o702, 0o777])
def test_a_data_directory_others_can_write_is_refused_naming_it_and_the_fix(tmp_path: Path, unsafe: int) -> None:
    data = tmp_path / "data"
    data.mkdir()
    os.chmod(data, unsafe)
    with pytest.raises(datadir.UnsafeDataDir) as refused:
        ensure_initialised(Settings(data_dir=data))
    message = str(refused.value)
    assert str(data) in message and f"chmod 700 {data}" in message
    assert not (data / "master.key").exists()


def test_a_readable_directory_is_the_operators_choice(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    os.chmod(data, 0o750)
    ensure_initialised(Settings(data_dir=data))
    assert mode(data) == 0o750 and mode(data / "master.key") == 0o600


def test_the_server_refuses_to_start_with_one_message(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    os.chmod(data, 0o777)
    run = subprocess.run(serve_argv(data, 0), capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [
        f"thingport: the data directory {data} is writable by group or others (mode 0777), so they could "
        f"replace its master key or database. Make it owner-only: chmod 700 {data}"]


def test_init_under_an_open_umask_creates_owner_only_files(tmp_path: Path) -> None:
    data = tmp_path / "fresh" / "data"
    exe = Path(sys.executable).with_name("thingport")
    run = subprocess.run([str(exe), "init", "--data-dir", str(data)], capture_output=True, text=True, timeout=60,
                         umask=0)
    assert run.returncode == 0, run.stderr
    assert mode(data) == 0o700
    assert {p.name: mode(p) for p in data.iterdir()} == {p.name: 0o600 for p in data.iterdir()}
    assert (data / "thingport.db").exists()
